"""Backend delivery against the stand-in: outages, crashes, refusals and training notifications."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from events import DeadLettered, LogForwarded, LogForwardFailed, LogWritten, ModelSaved, TrainingFinished
from events.bus import Publisher, read_history
from lumia.standin import StandInServer
from tests.conftest import REPO, eventually, running_services
from vault import DataDir, atomic_write, sha256

USERS = [f"{i:024x}" for i in range(1, 6)]


def _log(user: str, message: str = "win") -> bytes:
    return json.dumps({"timestamp": "2026-12-03 10:00:00", "gameType": "snake", "userId": "NA", "gameId": 1,
                       "message": message, "gameStates": [{"timestamp": "2026-12-03 10:00:00", "itemType": "score",
                                                           "int": 0}]}, indent=4).encode()


async def _drop_log(publisher: Publisher, data: DataDir, user: str, run_id: str | None = None,
                    body: bytes | None = None) -> LogWritten:
    raw = body if body is not None else _log(user)
    path = data.log_path(user, "snake")
    atomic_write(path, raw)
    event = LogWritten(run_id=run_id, user_id=user, game="snake", path=data.relative(path), size=len(raw),
                       sha256=sha256(raw))
    await publisher.publish(event)
    return event


async def _events(js, kind: type) -> list:
    return [s.event async for s in read_history(js, "LUMIA") if isinstance(s.event, kind)]


async def test_backend_down_then_up_every_log_delivered_once(js, publisher, settings_for) -> None:
    stand_in = StandInServer()  # not started yet: connections are refused
    settings = settings_for(backend_url=stand_in.url)
    data = DataDir(settings.data_dir)
    async with running_services(settings, ("forwarder",)):
        for user in USERS:
            await _drop_log(publisher, data, user)
        await asyncio.sleep(10)  # refused connections
        stand_in.start()
        stand_in.backend.fail(503, seconds=10)  # then up but failing
        await asyncio.sleep(10)
        recovered = time.monotonic()
        await eventually(lambda: _all_delivered(stand_in), timeout=40)
        delivery_time = time.monotonic() - recovered
        await asyncio.sleep(1)
    stand_in.stop()
    uploads = stand_in.backend.uploads()
    assert sorted(u.fields["userId"] for u in uploads) == sorted(USERS)
    keys = Counter(u.idempotency_key for u in uploads)
    assert all(count == 1 for count in keys.values()) and len(keys) == len(USERS)
    assert all(u.document["userId"] == u.fields["userId"] for u in uploads)  # NA replaced by the real id
    assert delivery_time < 30, f"took {delivery_time:.1f} s after recovery"
    forwarded = await _events(js, LogForwarded)
    assert len(forwarded) == len(USERS) and all(event.attempts > 1 for event in forwarded)


async def _all_delivered(stand_in: StandInServer) -> bool:
    return len(stand_in.backend.uploads()) >= len(USERS)


async def test_forwarder_killed_mid_delivery_backend_sees_one_idempotency_key(js, publisher, nats_server, backend,
                                                                              tmp_path: Path) -> None:
    data = DataDir(tmp_path / "fwd")
    backend.backend.fail(200, count=1, delay_s=4.0, message="slow")  # the first call hangs for 4 s
    event = await _drop_log(publisher, data, USERS[0], run_id="killed1")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUMIA_NATS_URL": nats_server.url,
           "LUMIA_BACKEND_URL": backend.url, "LUMIA_DATA_DIR": str(data.root), "LUMIA_NODE": "fwd"}
    command = [sys.executable, "-m", "lumia.cli", "forwarder"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    try:
        await eventually(lambda: _requests(backend), timeout=20)  # the request is in flight
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    try:
        await eventually(lambda: _events(js, LogForwarded), timeout=60)
    finally:
        second.terminate()
        second.wait(10)
    keys = {r.idempotency_key for r in backend.backend.requests if r.path == "/api/game/upload"}
    assert keys == {event.event_id}  # a redelivery is recognisable by its key
    forwarded = await _events(js, LogForwarded)
    assert len(forwarded) == 1 and forwarded[0].run_id == "killed1" and forwarded[0].attempts == 2


async def _requests(stand_in: StandInServer) -> bool:
    return bool(stand_in.backend.requests)


async def test_a_400_is_dead_lettered_with_the_reason_and_can_be_re_driven(js, publisher, nats_server, backend,
                                                                           settings_for) -> None:
    settings = settings_for(backend_url=backend.url)
    data = DataDir(settings.data_dir)
    backend.backend.fail(400, count=1, message="UserId invalide")
    async with running_services(settings, ("forwarder",)):
        event = await _drop_log(publisher, data, USERS[1], run_id="refused1")
        letters = await eventually(lambda: _events(js, DeadLettered), timeout=20)
        failed = await _events(js, LogForwardFailed)
        assert "UserId invalide" in letters[0].reason and letters[0].consumer == "forwarder"
        assert failed[0].status == 400 and failed[0].cause_id == event.event_id
        env = {**os.environ, "PYTHONPATH": str(REPO), "LUMIA_NATS_URL": nats_server.url}
        listing = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "lumia.cli", "dlq", "ls"], env=env,
                                          capture_output=True, text=True, timeout=30)
        assert "UserId invalide" in listing.stdout and str(letters[0].stream_seq) in listing.stdout
        retried = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "lumia.cli", "dlq", "retry",
                                                           str(letters[0].stream_seq)],
                                          env=env, capture_output=True, text=True, timeout=30)
        assert retried.returncode == 0, retried.stderr
        await eventually(lambda: _events(js, LogForwarded), timeout=20)
    assert len(backend.backend.uploads(USERS[1])) == 1


async def test_one_training_run_one_notification_and_one_finished_event(js, publisher, backend,
                                                                        settings_for) -> None:
    settings = settings_for(backend_url=backend.url)
    data = DataDir(settings.data_dir)
    user = USERS[2]
    path = data.model_path(7, "image", user)
    async with running_services(settings, ("forwarder",)):
        for attempt in range(3):  # three saves of one model during one training run
            content = b"PK" + bytes([attempt]) * 1000
            atomic_write(path, content)
            await publisher.publish(ModelSaved(run_id="train1", docker_id=7, game="image", user_id=user,
                                               path=data.relative(path), size=len(content), sha256=sha256(content)))
        await eventually(lambda: _events(js, TrainingFinished), timeout=20)
        await asyncio.sleep(1.5)
    calls = backend.backend.status_changes()
    assert len(calls) == 1
    assert calls[0].fields == {"dockerId": "7", "userId": user, "gameName": "IMAGE", "status": "True"}
    finished = await _events(js, TrainingFinished)
    assert len(finished) == 1 and finished[0].docker_id == 7
    subjects = [s.subject async for s in read_history(js, "LUMIA", "lumia.training.finished.>")]
    assert subjects == [f"lumia.training.finished.image.{user}"]
