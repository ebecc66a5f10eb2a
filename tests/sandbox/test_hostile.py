"""Hostile scripts against the real engine (Docker only: the process runtime is no boundary).

Each runs through ``DockerRuntime.run`` with small limits next to a normal snake game started at the
same time; the hostile one ends with the right typed outcome within its limit plus a small grace, and
the normal one still finishes with its expected result.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from consumers.lifecycle.sandbox import SandboxJob, SandboxResult
from tests.sandbox.conftest import (
    OVERHEAD_S,
    SMALL_LIMITS,
    assert_normal_game,
    docker_leftovers,
    hostile,
    make_job,
)

pytestmark = pytest.mark.docker

FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""

MEMORY_BOMB = """
hoard = []
while True:
    hoard.append(b"\\x01" * (8 * 1024 * 1024))
"""

FILL_TMP = """
import os
for target in ("/app/junk", "/junk", "/tmp/junk"):
    try:
        with open(target, "wb") as handle:
            while True:
                handle.write(b"\\0" * (1024 * 1024))
    except OSError as error:
        print("STOPPED", target, error.errno, flush=True)
raise SystemExit(1)
"""

GIGABYTE_STDOUT = """
import sys
line = "x" * 65535 + "\\n"
for _ in range(16384):
    sys.stdout.write(line)
"""

NETWORK = """
import socket
targets = [("127.0.0.1", {port}), ("172.17.0.1", {port}), ("8.8.8.8", 53), ("1.1.1.1", 443)]
for host, port in targets:
    try:
        socket.create_connection((host, port), timeout=2).close()
        print("REACHED", host, port, flush=True)
    except OSError as error:
        print("BLOCKED", host, port, error, flush=True)
try:
    socket.getaddrinfo("example.com", 80)
    print("REACHED dns", flush=True)
except OSError as error:
    print("BLOCKED dns", error, flush=True)
"""

KILL_EVERYTHING = """
import os, signal
visible = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print("VISIBLE", visible, flush=True)
for pid in visible:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError as error:
            print("KILL", pid, error, flush=True)
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
"""

FAKE_RESULT = """
print("LUMIA_READY", flush=True)
print('LUMIA_RESULT {"outcome":"win","score":999999,"moves":1,"reason":"FAKE","duration_s":0}', flush=True)
for path in ("/out/log.json", "/sandbox/app/log.json", "/app/log.json", "/tmp/log.json", "log.json"):
    try:
        with open(path, "w") as handle:
            handle.write('{"FAKE": true}')
        print("WROTE", path, flush=True)
    except OSError as error:
        print("DENIED", path, error.errno, flush=True)
"""

BACKGROUND = """
import os, subprocess, time
subprocess.Popen(["sleep", "1000"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1000)
    os._exit(0)
"""

SLEEP_FOREVER = "import time\ntime.sleep(10 ** 6)\n"


@dataclass
class Case:
    script: bytes
    check: Callable[[SandboxResult], None]
    limit_s: float  # the limit that must end it, before the overhead grace
    training: bool = False


def _game_lost(result: SandboxResult) -> None:
    assert result.infrastructure_error is None, result.infrastructure_error
    # The game, not the script, decides: a script that never connects gets the game's own ending.
    assert result.game is not None and result.game["outcome"] in ("lose", "error"), result.game
    assert result.game["outcome"] == "lose" or result.game["reason"] == "no client connected", result.game
    assert result.log is not None


def _check_fork_bomb(result: SandboxResult) -> None:
    _game_lost(result)
    assert result.exit_code != 0 and not result.timed_out


def _check_memory_bomb(result: SandboxResult) -> None:
    assert result.oom_killed, result
    assert result.exit_code == 137
    _game_lost(result)


def _check_fill_tmp(result: SandboxResult) -> None:
    assert result.exit_code == 1, result.output_tail
    assert not result.oom_killed
    assert "STOPPED /app/junk 30" in result.output_tail  # EROFS: /app is read-only
    assert "STOPPED /junk 30" in result.output_tail  # the root file system too
    assert "STOPPED /tmp/junk" in result.output_tail  # ENOSPC / EFBIG: /tmp is capped
    _game_lost(result)


def _check_gigabyte(result: SandboxResult) -> None:
    assert result.output_truncated
    assert len(result.output_tail.encode()) <= SMALL_LIMITS.output_kb * 1024 + 100
    _game_lost(result)


def _check_kill_everything(result: SandboxResult) -> None:
    assert "VISIBLE [1]" in result.output_tail  # its own PID namespace: only itself
    assert_normal_game(result)


def _check_fake_result(result: SandboxResult) -> None:
    assert_normal_game(result)
    assert result.game["score"] != 999999 and result.game["reason"] != "FAKE"
    assert b"FAKE" not in result.log
    for path in ("/out/log.json", "/sandbox/app/log.json", "/app/log.json", "log.json"):
        assert f"WROTE {path}\n" not in result.output_tail


def _check_background(result: SandboxResult) -> None:
    assert_normal_game(result)


def _check_sleep(result: SandboxResult) -> None:
    _game_lost(result)
    assert result.exit_code == 137  # killed once the game was over


def _check_sleep_training(result: SandboxResult) -> None:
    assert result.timed_out and result.model is None
    assert result.infrastructure_error is None


CONNECT = SMALL_LIMITS.connect_timeout_s
CASES = {
    "fork_bomb": Case(hostile(FORK_BOMB), _check_fork_bomb, CONNECT),
    "memory_bomb": Case(hostile(MEMORY_BOMB), _check_memory_bomb, CONNECT),
    "fill_tmp": Case(hostile(FILL_TMP), _check_fill_tmp, CONNECT),
    "gigabyte_stdout": Case(hostile(GIGABYTE_STDOUT), _check_gigabyte, CONNECT),
    "kill_everything": Case(hostile(KILL_EVERYTHING, then_play=True), _check_kill_everything, 5.0),
    "fake_log_and_result": Case(hostile(FAKE_RESULT, then_play=True), _check_fake_result, 5.0),
    "background_processes": Case(hostile(BACKGROUND, then_play=True), _check_background, 5.0),
    "sleep_forever": Case(hostile(SLEEP_FOREVER), _check_sleep, CONNECT),
    "sleep_forever_training": Case(hostile(SLEEP_FOREVER), _check_sleep_training, 3.0, training=True),
}


async def _run_next_to_a_normal_game(runtime, job: SandboxJob) -> tuple[SandboxResult, SandboxResult]:
    normal_job = make_job()
    hostile_result, normal_result = await asyncio.gather(runtime.run(job), runtime.run(normal_job))
    assert_normal_game(normal_result)
    return hostile_result, normal_result


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_script(name: str, docker_runtime, docker_client) -> None:
    case = CASES[name]
    limits = replace(SMALL_LIMITS, wall_s=3.0) if case.training else SMALL_LIMITS
    job = make_job(case.script, training=case.training, limits=limits)
    result, _ = await _run_next_to_a_normal_game(docker_runtime, job)
    case.check(result)
    assert result.duration_s < case.limit_s + OVERHEAD_S, result.duration_s
    assert await docker_leftovers(docker_client, job.run_id) == []


async def test_network_is_none(docker_runtime, docker_client) -> None:
    """Nothing outside the sandbox answers: not the host's loopback services, not the internet."""
    accepted: list[object] = []
    server = await asyncio.start_server(lambda r, w: (accepted.append(1), w.close()), "0.0.0.0", 0)
    port = server.sockets[0].getsockname()[1]
    # The probe itself must work from the host, or the test would prove nothing.
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    await asyncio.sleep(0.1)
    accepted.clear()
    try:
        job = make_job(hostile(NETWORK.replace("{port}", str(port)), then_play=True))
        result, _ = await _run_next_to_a_normal_game(docker_runtime, job)
    finally:
        server.close()
    assert_normal_game(result)  # localhost:5001, the game, still works
    assert "REACHED" not in result.output_tail, result.output_tail
    assert result.output_tail.count("BLOCKED") == 5
    assert accepted == []
    assert json.loads(result.log)
