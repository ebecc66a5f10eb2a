"""One contract, two runtimes (STYLE 12): Docker (the security boundary) and process (demos only).

Both must: play a normal game and hand back its log and result; kill at the wall-clock limit and
say so; cap the captured output and say so; propagate the script's exit code; give back the model of
a training run; leave nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from consumers.lifecycle.process_runtime import ProcessRuntime
from consumers.lifecycle.sandbox import SandboxResult
from tests.sandbox.conftest import OVERHEAD_S, SMALL_LIMITS, assert_normal_game, docker_leftovers, hostile, make_job

TRAINING = """
import sys
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:] if "=" in a)
assert args["train"] == "True", args
open(args["model_path"], "wb").write(b"weights:" + args["dataset"].encode())
print("trained")
"""

BACKGROUND = """
import subprocess, time
child = subprocess.Popen(["sleep", "300"])
print("CHILD_PID=%d" % child.pid, flush=True)
"""


class RuntimeContract:
    """Subclasses provide ``runtime`` (a fixture) and ``leftovers``."""

    async def leftovers(self, run_id: str, result: SandboxResult) -> list[str]:
        raise NotImplementedError

    async def test_normal_snake_game(self, runtime) -> None:
        job = make_job()
        result = await runtime.run(job)
        assert_normal_game(result)
        assert b'"snake"' in result.log or b"snake" in result.log
        assert not result.output_truncated
        assert result.duration_s < SMALL_LIMITS.wall_s
        assert await self.leftovers(job.run_id, result) == []

    async def test_same_seed_same_game(self, runtime) -> None:
        first, second = await asyncio.gather(runtime.run(make_job()), runtime.run(make_job()))
        assert_normal_game(first)
        assert_normal_game(second)
        assert first.game["score"] == second.game["score"] and first.game["moves"] == second.game["moves"]

    async def test_wall_clock_limit_kills_and_says_timed_out(self, runtime) -> None:
        limits = replace(SMALL_LIMITS, wall_s=2.0, connect_timeout_s=30.0)
        job = make_job(b"import time\ntime.sleep(3600)\n", limits=limits)
        result = await runtime.run(job)
        assert result.timed_out
        assert result.infrastructure_error is None
        assert result.exit_code != 0
        assert result.duration_s < limits.wall_s + OVERHEAD_S
        assert await self.leftovers(job.run_id, result) == []

    async def test_training_wall_clock_limit(self, runtime) -> None:
        job = make_job(b"import time\ntime.sleep(3600)\n", training=True, limits=replace(SMALL_LIMITS, wall_s=2.0))
        result = await runtime.run(job)
        assert result.timed_out and result.model is None
        assert result.duration_s < 2.0 + OVERHEAD_S

    async def test_output_is_capped_and_flagged(self, runtime) -> None:
        spam = 'import sys\nfor i in range(4000):\n    sys.stdout.write("%06d" % i + "x" * 250 + "\\n")\n'
        result = await runtime.run(make_job(hostile(spam, then_play=True)))
        assert_normal_game(result)
        assert result.output_truncated
        cap = SMALL_LIMITS.output_kb * 1024
        assert len(result.output_tail.encode()) <= cap + 100
        assert "output truncated" in result.output_tail
        assert result.output_tail.startswith("000000x")  # the head is kept ...
        assert "Game over" in result.output_tail  # ... and so is the tail

    async def test_exit_code_is_propagated(self, runtime) -> None:
        result = await runtime.run(make_job(b"import sys\nprint('bye')\nsys.exit(3)\n", training=True))
        assert result.exit_code == 3
        assert not result.timed_out and not result.oom_killed and result.infrastructure_error is None
        assert "bye" in result.output_tail

    async def test_training_gives_back_the_model(self, runtime) -> None:
        job = make_job(TRAINING.encode(), training=True)
        result = await runtime.run(job)
        assert result.exit_code == 0, result.output_tail
        assert result.model == b"weights:dataset-imagerecognition"
        assert await self.leftovers(job.run_id, result) == []

    async def test_background_processes_are_not_left_behind(self, runtime) -> None:
        job = make_job(hostile(BACKGROUND, then_play=True))
        result = await runtime.run(job)
        assert_normal_game(result)
        assert await self.leftovers(job.run_id, result) == []


@pytest.mark.docker
class TestDockerRuntime(RuntimeContract):
    @pytest.fixture
    def runtime(self, docker_runtime, docker_client):
        self.docker = docker_client
        return docker_runtime

    async def leftovers(self, run_id: str, result: SandboxResult) -> list[str]:
        return await docker_leftovers(self.docker, run_id)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


class TestProcessRuntime(RuntimeContract):
    @pytest.fixture
    async def runtime(self):
        runtime = ProcessRuntime()
        yield runtime
        await runtime.close()

    async def leftovers(self, run_id: str, result: SandboxResult) -> list[str]:
        found = [f"pid {pid}" for pid in map(int, re.findall(r"CHILD_PID=(\d+)", result.output_tail))
                 if _alive(pid)]
        tmp = Path(os.environ.get("TMPDIR", "/tmp"))
        found += [str(path) for path in tmp.glob(f"lumia-{run_id}-*")]
        return found
