"""The folder watcher against a real nats-server and real files (producers/watcher.py)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from watcher_support import FAST, Harness

from events import LogWritten, ModelSaved, RunRequested, SubmissionRejected
from producers.watcher import WatchOptions

UID = "0123456789abcdef01234567"
UID2 = "fedcba9876543210fedcba98"
SCRIPT = "import sys\nprint('hello')\n"


def uid(n: int) -> str:
    return f"{n:024x}"


def log_body(user: str = "NA", game: str = "snake", message: str = "win") -> bytes:
    return json.dumps({"timestamp": "2024-01-01T00:00:00", "gameType": game, "userId": user, "gameId": "g1",
                       "message": message, "gameStates": [[1, 2]]}).encode()


def put(path: Path, data: bytes) -> Path:
    """Write to a temp sibling and rename into place, as well-behaved producers do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def model_bytes(payload: bytes = b"weights" * 1000) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.pkl", payload)
    return buffer.getvalue()


async def settle(h: Harness, seconds: float | None = None) -> None:
    # Long enough for a path to be still for quiet_s and handled: used only to prove nothing *more* happens.
    await asyncio.sleep(seconds if seconds is not None else h.options.quiet_s * 3)


# ---- logs ----------------------------------------------------------------------------------------

async def test_log_renamed_into_place_is_published_once(harness: Harness) -> None:
    harness.start_watcher()
    path = put(harness.data / "logs" / UID / "snake.json", log_body(message="lose"))
    events = await harness.wait_for(lambda: harness.events(LogWritten), what="LogWritten")
    await settle(harness)
    events = await harness.events(LogWritten)
    assert len(events) == 1
    event = events[0]
    assert (event.user_id, event.game, event.path, event.outcome) == (UID, "snake", f"logs/{UID}/snake.json", "lose")
    assert event.size == path.stat().st_size and event.run_id is None


async def test_half_written_log_waits_until_still(harness: Harness) -> None:
    harness.start_watcher()
    body = log_body()
    path = harness.data / "logs" / UID / "snake.json"
    path.parent.mkdir(parents=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:  # a slow writer: the pieces arrive faster than the quiet period, the first ones are invalid JSON
        for start in range(0, len(body), 16):
            os.write(fd, body[start:start + 16])
            await asyncio.sleep(0.03)
    finally:
        os.close(fd)
    await harness.wait_for(lambda: harness.events(LogWritten), what="LogWritten")
    await settle(harness)
    assert len(await harness.events(LogWritten)) == 1
    assert await harness.events(SubmissionRejected) == []


async def test_editor_and_temp_files_are_ignored(harness: Harness) -> None:
    harness.start_watcher()
    folder = harness.data / "logs" / UID
    folder.mkdir(parents=True)
    for name in (".snake.json.swp", "snake.json~", "#snake.json#", ".snake.json.1234.tmp", "4913",
                 "snake.json.tmp", ".#snake.json"):
        (folder / name).write_bytes(b"{not json")
    put(folder / "snake.json", log_body())
    await harness.wait_for(lambda: harness.events(LogWritten), what="LogWritten")
    await settle(harness)
    assert len(await harness.events()) == 1  # the log, and no rejection for any temp file
    assert not (folder / "rejected").exists()


async def test_invalid_log_is_rejected_and_moved(harness: Harness) -> None:
    harness.start_watcher()
    path = put(harness.data / "logs" / UID / "snake.json", b'{"gameType": "snake"}')
    rejected = await harness.wait_for(lambda: harness.events(SubmissionRejected), what="rejection")
    event = rejected[0]
    assert event.source == "logs" and "invalid log" in event.reason and "missing keys" in event.reason
    assert event.path == f"logs/{UID}/snake.json"
    assert event.moved_to == f"logs/{UID}/rejected/snake.json"
    assert not path.exists()
    assert (harness.data / event.moved_to).read_bytes() == b'{"gameType": "snake"}'
    # The watcher goes on: a good log afterwards is published, the rejected copy never is.
    put(path, log_body())
    await harness.wait_for(lambda: harness.events(LogWritten), what="LogWritten after a rejection")
    await settle(harness)
    assert len(await harness.events(SubmissionRejected)) == 1


async def test_bad_ids_in_log_path_are_rejected(harness: Harness) -> None:
    harness.start_watcher()
    put(harness.data / "logs" / "not-a-user" / "snake.json", log_body())
    put(harness.data / "logs" / UID / "chess.json", log_body())
    rejected = await harness.wait_for(
        lambda: _at_least(harness.events(SubmissionRejected), 2), what="two rejections")
    reasons = sorted(e.reason for e in rejected)
    assert any("userId" in r for r in reasons) and any("game must be" in r for r in reasons)


async def test_symlink_escaping_the_data_dir_is_rejected(harness: Harness, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.json"
    secret.parent.mkdir()
    secret.write_bytes(log_body())
    harness.start_watcher()
    link = harness.data / "logs" / UID / "snake.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    drop = harness.data / "DeliveringQueue" / "7" / "snake"
    drop.mkdir(parents=True)
    (drop / f"{UID}_snake.py").symlink_to(secret)
    rejected = await harness.wait_for(
        lambda: _at_least(harness.events(SubmissionRejected), 2), what="two rejections")
    assert all("outside the data dir" in e.reason for e in rejected)
    assert {e.source for e in rejected} == {"logs", "dropfolder"}
    moved = harness.data / "logs" / UID / "rejected" / "snake.json"
    assert moved.is_symlink() and secret.read_bytes() == log_body()  # link moved, target untouched
    assert await harness.events(LogWritten) == [] and await harness.events(RunRequested) == []


async def test_files_present_at_start_are_published_once_across_restarts(harness: Harness) -> None:
    for n in range(5):
        put(harness.data / "logs" / uid(n) / "snake.json", log_body())
    first = harness.start_watcher()
    await harness.wait_for(lambda: _count_reached(harness, 5), what="5 messages")
    await harness.stop_watcher(first)
    harness.start_watcher()
    await settle(harness, harness.options.quiet_s * 4)
    assert await harness.count() == 5


async def test_a_restart_long_after_the_duplicate_window_republishes_nothing(harness: Harness) -> None:
    """The ledger, not the duplicate window, remembers what was announced: after the stream is made
    anew (no duplicate history at all), a restarted watcher over the same files announces nothing."""
    from events.bus import StreamSettings, ensure_stream

    for n in range(3):
        put(harness.data / "logs" / uid(n) / "snake.json", log_body())
    first = harness.start_watcher()
    await harness.wait_for(lambda: _count_reached(harness, 3), what="3 messages")
    await harness.stop_watcher(first)
    from events.bus import connect

    admin = await connect((harness.server.admin_url,), name="admin")  # the services' user may not delete
    await admin.jetstream().delete_stream(harness.stream)
    await admin.close()
    await ensure_stream(harness.js, StreamSettings(name=harness.stream))  # type: ignore[arg-type]
    harness.start_watcher()
    put(harness.data / "logs" / uid(9) / "snake.json", log_body())  # a genuinely new log still goes out
    await harness.wait_for(lambda: _count_reached(harness, 1), what="the new log")
    await settle(harness, harness.options.quiet_s * 4)
    assert await harness.count() == 1


async def test_a_thousand_logs_at_once_each_published_exactly_once(harness: Harness) -> None:
    harness.start_watcher()
    for n in range(1000):
        put(harness.data / "logs" / uid(n) / "connect4.json", log_body(game="connect4"))
    await harness.wait_for(lambda: _count_reached(harness, 1000), timeout=40, what="1000 messages")
    await settle(harness)
    assert await harness.count() == 1000
    assert {e.user_id for e in await harness.events(LogWritten)} == {uid(n) for n in range(1000)}


async def test_restart_mid_burst_loses_and_repeats_nothing(harness: Harness) -> None:
    first = harness.start_watcher()

    async def burst() -> None:
        for n in range(300):
            put(harness.data / "logs" / uid(n) / "snake.json", log_body())
            if n % 5 == 0:
                await asyncio.sleep(0.01)

    writer = asyncio.create_task(burst())
    await harness.wait_for(lambda: _count_at_least(harness, 1), what="the burst to start")
    await harness.stop_watcher(first)  # files keep arriving while no watcher runs
    stopped_at = await harness.count()
    harness.start_watcher()
    await writer
    await harness.wait_for(lambda: _count_reached(harness, 300), timeout=30, what="300 messages")
    await settle(harness)
    assert 0 < stopped_at < 300
    assert await harness.count() == 300


async def test_nats_down_during_a_drop_publishes_everything_once_back(harness: Harness) -> None:
    harness.start_watcher()
    harness.server.stop()
    for n in range(20):
        put(harness.data / "logs" / uid(n) / "snake.json", log_body())
    drop = harness.data / "DeliveringQueue" / "3" / "snake"
    put(drop / f"{UID}.txt", b"{False}")
    put(drop / f"{UID}_snake.py", SCRIPT.encode())
    await asyncio.sleep(harness.options.quiet_s * 4)  # the watcher tries while the broker is down
    assert (drop / f"{UID}_snake.py").exists() and (drop / f"{UID}.txt").exists()  # kept until acked
    harness.server.start()  # same port, same store dir
    await harness.wait_for(lambda: _count_reached(harness, 21), timeout=30, what="21 messages")
    await harness.wait_for(lambda: not (drop / f"{UID}_snake.py").exists(), what="drop consumed")
    await settle(harness)
    assert await harness.count() == 21


# ---- drop folder ---------------------------------------------------------------------------------

@pytest.mark.parametrize("flag_first", [True, False], ids=["txt-before-py", "txt-after-py"])
async def test_drop_folder_pair_in_either_order_requests_one_run(harness: Harness, flag_first: bool) -> None:
    harness.start_watcher()
    drop = harness.data / "DeliveringQueue" / "42" / "image"
    flag, script = (drop / f"{UID}.txt", b"{True}"), (drop / f"{UID}_image.py", SCRIPT.encode())
    first, second = (flag, script) if flag_first else (script, flag)
    put(*first)
    await asyncio.sleep(harness.options.quiet_s * 1.5)  # the first file alone is still, and waits
    assert await harness.events(RunRequested) == []
    put(*second)
    runs = await harness.wait_for(lambda: harness.events(RunRequested), what="RunRequested")
    await settle(harness)
    runs = await harness.events(RunRequested)
    assert len(runs) == 1
    run = runs[0]
    assert (run.user_id, run.game, run.docker_id, run.training, run.source, run.script) == \
        (UID, "image", 42, True, "dropfolder", SCRIPT)
    assert len(run.run_id) == 32 and run.script_name == f"{UID}_image.py"
    assert sorted(os.listdir(drop)) == []  # consumed after the ack
    vault_copy = harness.data / "AI-Vault" / "42" / "image"
    assert (vault_copy / f"{UID}_image.py").read_text() == SCRIPT
    assert (vault_copy / f"{UID}.txt").read_text() == "{True}"
    assert await harness.events(SubmissionRejected) == []


async def test_same_drop_after_a_crash_before_cleanup_is_not_run_twice(harness: Harness) -> None:
    drop = harness.data / "DeliveringQueue" / "5" / "snake"
    script = put(drop / f"{UID}_snake.py", SCRIPT.encode())
    put(drop / f"{UID}.txt", b"{False}")
    mtime_ns = script.stat().st_mtime_ns
    first = harness.start_watcher()
    await harness.wait_for(lambda: harness.events(RunRequested), what="RunRequested")
    await harness.wait_for(lambda: not script.exists(), what="drop consumed")
    await harness.stop_watcher(first)
    # A crash between the ack and the clean-up leaves the very same files behind.
    put(script, SCRIPT.encode())
    os.utime(script, ns=(mtime_ns, mtime_ns))
    put(drop / f"{UID}.txt", b"{False}")
    harness.start_watcher()
    await harness.wait_for(lambda: not script.exists(), what="drop consumed again")
    assert await harness.count() == 1


async def test_script_without_flag_is_rejected_after_the_wait(harness: Harness) -> None:
    harness.start_watcher()
    drop = harness.data / "DeliveringQueue" / "9" / "connect4"
    script = put(drop / f"{UID}_connect4.py", SCRIPT.encode())
    rejected = await harness.wait_for(lambda: harness.events(SubmissionRejected), what="rejection")
    assert rejected[0].source == "dropfolder" and "no flag file" in rejected[0].reason
    assert not script.exists() and (drop / "rejected" / script.name).read_text() == SCRIPT


async def test_invalid_drops_are_rejected_with_reasons(harness: Harness) -> None:
    harness.start_watcher()
    bad_syntax = harness.data / "DeliveringQueue" / "1" / "snake"
    put(bad_syntax / f"{UID}.txt", b"{True}")
    put(bad_syntax / f"{UID}_snake.py", b"def broken(:\n")
    two_flags = harness.data / "DeliveringQueue" / "2" / "snake"
    put(two_flags / f"{UID}.txt", b"{True}")
    put(two_flags / f"{UID2}.txt", b"{True}")
    put(two_flags / f"{UID}_snake.py", SCRIPT.encode())
    bad_flag = harness.data / "DeliveringQueue" / "3" / "snake"
    put(bad_flag / f"{UID}.txt", b"yes")
    too_big = harness.data / "DeliveringQueue" / "4" / "snake"
    put(too_big / f"{UID}.txt", b"{False}")
    put(too_big / f"{UID}_snake.py", b"x = 1\n" * 60_000)
    bad_docker = harness.data / "DeliveringQueue" / "abc" / "snake"
    put(bad_docker / f"{UID}.txt", b"{False}")
    rejected = await harness.wait_for(
        lambda: _at_least(harness.events(SubmissionRejected), 9), what="nine rejections")
    reasons = " | ".join(sorted({e.reason for e in rejected}))
    for expected in ("does not compile", "2 flag files", "{True} or {False}", "larger than", "dockerId"):
        assert expected in reasons
    assert await harness.events(RunRequested) == []
    for folder in (bad_syntax, two_flags, bad_flag, too_big, bad_docker):
        assert [p.name for p in folder.iterdir()] == ["rejected"]


# ---- models --------------------------------------------------------------------------------------

async def test_three_quick_writes_of_a_model_give_one_model_saved(harness: Harness) -> None:
    harness.start_watcher()
    path = harness.data / "train" / "8" / "image" / UID / "model.pt"
    path.parent.mkdir(parents=True)
    versions = [model_bytes(bytes([n]) * 5000) for n in range(3)]
    for body in versions:
        path.write_bytes(body)
        await asyncio.sleep(0.05)
    saved = await harness.wait_for(lambda: harness.events(ModelSaved), what="ModelSaved")
    await settle(harness)
    saved = await harness.events(ModelSaved)
    assert len(saved) == 1
    event = saved[0]
    assert event.sha256 == hashlib.sha256(versions[-1]).hexdigest() and event.size == len(versions[-1])
    assert (event.docker_id, event.game, event.user_id, event.training) == (8, "image", UID, True)
    assert event.path == f"train/8/image/{UID}/model.pt"


async def test_zero_byte_and_truncated_models_are_rejected(harness: Harness) -> None:
    harness.start_watcher()
    empty = harness.data / "train" / "8" / "image" / UID / "model.pt"
    put(empty, b"")
    truncated = harness.data / "train" / "8" / "image" / UID2 / "model.pt"
    whole = model_bytes(os.urandom(20_000))
    put(truncated, whole[: len(whole) // 2])
    rejected = await harness.wait_for(
        lambda: _at_least(harness.events(SubmissionRejected), 2), what="two rejections")
    reasons = sorted(e.reason for e in rejected)
    assert any("empty" in r for r in reasons) and any("truncated" in r for r in reasons)
    assert {e.source for e in rejected} == {"models"}
    assert (empty.parent / "rejected" / "model.pt").exists() and not empty.exists()
    assert await harness.events(ModelSaved) == []


async def test_polling_mode_works_too(harness: Harness) -> None:
    harness.start_watcher(options=WatchOptions(**{**FAST.__dict__, "poll_delay_ms": 50}), force_polling=True)
    put(harness.data / "logs" / UID / "image.json", log_body(game="image"))
    await harness.wait_for(lambda: harness.events(LogWritten), what="LogWritten")


# ---- helpers -------------------------------------------------------------------------------------

async def _at_least(found, n: int):
    items = await found
    return items if len(items) >= n else None


async def _count_reached(h: Harness, n: int) -> bool:
    return await h.count() >= n


async def _count_at_least(h: Harness, n: int) -> bool:
    return await h.count() >= n
