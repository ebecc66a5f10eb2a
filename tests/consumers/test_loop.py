"""The shared consume loop against a real nats-server: ack, retry, dead letters, crashes, sharing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig

from consumers.deadletters import DeadLetterDeps, ensure_advisory_stream
from consumers.deadletters import consumer_specs as deadletter_specs
from consumers.loop import ConsumerSpec, Reject, Retry, delivery_attempt, run_consumer
from events import DeadLettered, RunRequested
from events.bus import Publisher, connect, read_history
from events.subjects import DEAD_LETTERS
from tests.conftest import REPO, eventually

USER = "65a1f0c2e4b0a1b2c3d4e5f6"


def _requested(run_id: str) -> RunRequested:
    return RunRequested(run_id=run_id, user_id=USER, game="snake", script_name="b.py", script="x=1",
                        script_sha256="0" * 64)


def _spec(handler, **kw) -> ConsumerSpec:
    defaults = {"durable": "t", "filter_subjects": ("lumia.run.*.requested",), "handlers": {RunRequested: handler},
                "ack_wait_s": 2.0, "max_deliver": 3, "backoff_s": (0.1,)}
    return ConsumerSpec(**{**defaults, **kw})


class Running:
    def __init__(self, js, spec: ConsumerSpec, publisher: Publisher) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_consumer(js, "LUMIA", spec, publisher, self.stop, fetch_timeout=0.3))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


async def _dead_letters(js) -> list[DeadLettered]:
    return [s.event async for s in read_history(js, "LUMIA", DEAD_LETTERS) if isinstance(s.event, DeadLettered)]


async def test_success_acks_and_retry_redelivers(js, publisher: Publisher) -> None:
    attempts: dict[str, list[int]] = {}

    async def handle(event: RunRequested) -> None:
        attempts.setdefault(event.run_id, []).append(delivery_attempt())
        if event.run_id == "flaky" and delivery_attempt() < 2:
            raise Retry("backend down", after=0.2)

    running = Running(js, _spec(handle), publisher)
    await publisher.publish(_requested("fine"))
    await publisher.publish(_requested("flaky"))
    await eventually(lambda: _true(attempts.get("flaky") == [1, 2] and attempts.get("fine") == [1]), timeout=10)
    info = await js.consumer_info("LUMIA", "t")
    await eventually(lambda: _ack_pending_zero(js), timeout=5)
    await running.close()
    assert info.num_pending == 0
    assert attempts == {"fine": [1], "flaky": [1, 2]}


async def _ack_pending_zero(js) -> bool:
    info = await js.consumer_info("LUMIA", "t")
    return info.num_ack_pending == 0


async def _true(value: bool) -> bool:
    return value


async def test_poison_message_is_dead_lettered_with_reason_and_stays_in_stream(js, publisher) -> None:
    async def handle(event: RunRequested) -> None:
        if event.run_id == "poison":
            raise Reject("script references a game that does not exist")
        raise RuntimeError("always broken")

    running = Running(js, _spec(handle), publisher)
    seq = await publisher.publish(_requested("poison"))
    broken_seq = await publisher.publish(_requested("broken"))
    letters = await eventually(lambda: _two(js), timeout=15)
    await running.close()
    by_seq = {letter.stream_seq: letter for letter in letters}
    assert by_seq[seq].reason == "script references a game that does not exist"
    assert by_seq[seq].consumer == "t" and by_seq[seq].run_id == "poison"
    assert "after 3 attempts" in by_seq[broken_seq].reason and by_seq[broken_seq].deliveries == 3
    original = await js.get_msg("LUMIA", seq=seq)
    assert original.subject == "lumia.run.poison.requested"  # history keeps the poison message


async def _two(js) -> list[DeadLettered] | None:
    letters = await _dead_letters(js)
    return letters if len(letters) >= 2 else None


async def test_unknown_event_type_is_skipped_and_the_loop_goes_on(js, publisher) -> None:
    seen: list[str] = []
    skipped: list[str] = []

    async def handle(event: RunRequested) -> None:
        seen.append(event.run_id)

    running = Running(js, _spec(handle, on_skip=skipped.append), publisher)
    await js.publish("lumia.run.future.requested", b'{"type": "run.requested.v9", "run_id": "future"}')
    await publisher.publish(_requested("after"))
    await eventually(lambda: _true(seen == ["after"]), timeout=10)
    await running.close()
    assert len(skipped) == 1 and "run.requested.v9" in skipped[0]


async def test_two_processes_on_one_durable_share_the_work(js, nats_server, publisher) -> None:
    handled: list[tuple[str, str]] = []

    def handler(name: str):
        async def handle(event: RunRequested) -> None:
            await asyncio.sleep(0.05)
            handled.append((name, event.run_id))
        return handle

    other = await connect((nats_server.url,), name="second")
    first = Running(js, _spec(handler("one"), max_concurrency=2), publisher)
    second = Running(other.jetstream(), _spec(handler("two"), max_concurrency=2), publisher)
    for index in range(40):
        await publisher.publish(_requested(f"share{index}"))
    await eventually(lambda: _true(len(handled) >= 40), timeout=20)
    await first.close()
    await second.close()
    await other.close()
    runs = [run_id for _, run_id in handled]
    assert sorted(runs) == sorted(f"share{i}" for i in range(40))  # each once
    assert {name for name, _ in handled} == {"one", "two"}


async def test_a_consumer_killed_mid_handler_gets_the_message_again_and_the_effect_happens_once(
        js, nats_server, publisher, tmp_path: Path) -> None:
    effects = tmp_path / "effects.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, str(Path(__file__).parent / "worker.py"), nats_server.url, str(effects)]
    hanging = subprocess.Popen(command, env={**env, "HANG": "1"}, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
    try:
        await publisher.publish(_requested("crashme"))
        line = await asyncio.wait_for(asyncio.to_thread(hanging.stdout.readline), 20)
        assert line.startswith("handled crashme.requested")
        hanging.send_signal(signal.SIGKILL)
        hanging.wait(10)
        healthy = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220
        try:
            line = await asyncio.wait_for(asyncio.to_thread(healthy.stdout.readline), 20)
            assert line.startswith("handled crashme.requested")  # redelivered after ack_wait
            await eventually(lambda: _pending_done(js), timeout=10)
        finally:
            healthy.terminate()
            healthy.wait(10)
    finally:
        if hanging.poll() is None:
            hanging.kill()
    assert effects.read_text().split() == ["crashme.requested"]


async def _pending_done(js) -> bool:
    info = await js.consumer_info("LUMIA", "crashtest")
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_messages_that_exhaust_max_deliver_without_any_handler_are_dead_lettered(js, publisher) -> None:
    await ensure_advisory_stream(js, "LUMIA")
    recorder = Running(js, deadletter_specs(DeadLetterDeps(js, publisher), "LUMIA")[0], publisher)
    # A consumer whose process never acknowledges: JetStream gives up after max_deliver.
    await js.add_consumer("LUMIA", ConsumerConfig(durable_name="hung", ack_policy=AckPolicy.EXPLICIT,
                                                  ack_wait=0.3, max_deliver=2,
                                                  filter_subject="lumia.run.*.requested"))
    sub = await js.pull_subscribe_bind("hung", stream="LUMIA")
    seq = await publisher.publish(_requested("hangs"))
    for _ in range(2):
        await sub.fetch(1, timeout=5)  # received, never acked
        await asyncio.sleep(0.5)
    # The server gives up (and announces it) when it would deliver a third time to a waiting puller.
    with contextlib.suppress(TimeoutError):
        await sub.fetch(1, timeout=1)
    letters = await eventually(lambda: _dead_letters(js), timeout=15)
    await recorder.close()
    assert letters[0].stream_seq == seq and letters[0].consumer == "hung"
    assert letters[0].subject == "lumia.run.hangs.requested" and "never acknowledged" in letters[0].reason


async def test_a_long_handler_is_kept_alive_and_never_redelivered(js, publisher) -> None:
    deliveries: list[int] = []

    async def handle(event: RunRequested) -> None:
        deliveries.append(delivery_attempt())
        await asyncio.sleep(4.0)  # four times ack_wait: only in_progress() keeps it ours

    running = Running(js, _spec(handle, ack_wait_s=1.0, max_deliver=5), publisher)
    await publisher.publish(_requested("long"))
    await eventually(lambda: _true(bool(deliveries)), timeout=10)
    await asyncio.sleep(4.5)
    await running.close()
    assert deliveries == [1]
    info = await js.consumer_info("LUMIA", "t")
    assert info.num_ack_pending == 0 and info.num_redelivered == 0
