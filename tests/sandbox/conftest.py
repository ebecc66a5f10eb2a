"""Sandbox runtimes against the real Docker engine and the local process runtime.

Each test uses unique run ids and its own ``lumia.node`` label, so reconciling in one test never
touches another test's (or a live runner's) sandboxes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiodocker
import pytest

from consumers.lifecycle.docker_runtime import DockerRuntime
from consumers.lifecycle.sandbox import SandboxJob
from lumia.config import SandboxLimits, Settings

REPO = Path(__file__).resolve().parents[2]
SNAKE_BOT = (REPO / "game_vault" / "bots" / "snake_bot.py").read_bytes()

# Small limits: hostile scripts hit them in seconds, a normal snake game stays well inside them.
SMALL_LIMITS = SandboxLimits(memory_mb=128, cpus=1.0, pids=32, open_files=64, tmpfs_mb=16, output_kb=64,
                             wall_s=20.0, move_timeout_s=3.0, game_timeout_s=30.0, connect_timeout_s=4.0)
# Setup (create, archive put, start) plus teardown on a loaded 2-core machine.
OVERHEAD_S = 8.0


def new_run_id(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def make_job(script: bytes = SNAKE_BOT, *, training: bool = False, limits: SandboxLimits = SMALL_LIMITS,
             **changes: object) -> SandboxJob:
    job = SandboxJob(run_id=new_run_id(), user_id="u1", game="snake", docker_id=1, training=training, seed=7,
                     script=script, limits=limits)
    return replace(job, **changes) if changes else job


def hostile(prefix: str, then_play: bool = False) -> bytes:
    """A hostile script; with ``then_play`` it plays the reference snake bot afterwards."""
    return prefix.encode() + (b"\n" + SNAKE_BOT if then_play else b"")


def assert_normal_game(result, expected: dict[str, object] | None = None) -> None:
    assert result.infrastructure_error is None, result.infrastructure_error
    assert not result.timed_out and not result.oom_killed and not result.stopped
    assert result.exit_code == 0, result.output_tail
    assert result.game is not None and result.game["outcome"] in ("win", "lose"), result.game
    assert result.log is not None
    log = json.loads(result.log)
    assert log, "empty game log"
    if expected is not None:
        assert {k: result.game[k] for k in ("outcome", "score", "moves", "reason")} == expected


@pytest.fixture
async def docker_runtime(docker_available) -> AsyncIterator[DockerRuntime]:
    runtime = await DockerRuntime.connect(Settings().runner_image, node=new_run_id("node"))
    try:
        yield runtime
    finally:
        await runtime.reconcile(set())  # whatever a failed test left behind
        await runtime.close()


@pytest.fixture
async def docker_client(docker_available) -> AsyncIterator[aiodocker.Docker]:
    docker = aiodocker.Docker()
    yield docker
    await docker.close()


async def docker_leftovers(docker: aiodocker.Docker, run_id: str) -> list[str]:
    label = {"label": [f"lumia.run_id={run_id}"]}
    containers = await docker.containers.list(all=True, filters=json.dumps(label))
    volumes = (await docker.volumes.list(filters=label)).get("Volumes") or []
    return [c["Names"][0] for c in containers] + [v["Name"] for v in volumes]
