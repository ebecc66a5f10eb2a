"""Docker sandbox lifecycle: stop on request, reconcile after a crash, platform failures told apart."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from consumers.lifecycle.docker_runtime import STOP_GRACE_S, DockerRuntime
from lumia.config import Settings
from tests.sandbox.conftest import OVERHEAD_S, SMALL_LIMITS, assert_normal_game, docker_leftovers, make_job, new_run_id

pytestmark = pytest.mark.docker


async def _wait_running(docker, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await docker.containers.list(filters=json.dumps({"name": [name], "status": ["running"]}))
        if found:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never ran")


async def test_stop_kills_within_grace_and_records_it(docker_runtime, docker_client) -> None:
    from dataclasses import replace

    job = make_job(b"import time\ntime.sleep(3600)\n", limits=replace(SMALL_LIMITS, connect_timeout_s=60.0))
    task = asyncio.create_task(docker_runtime.run(job))
    await _wait_running(docker_client, f"lumia-{job.run_id}-user")
    asked = time.monotonic()
    assert await docker_runtime.stop(job.run_id)
    result = await asyncio.wait_for(task, STOP_GRACE_S + OVERHEAD_S)
    assert time.monotonic() - asked < STOP_GRACE_S + 5.0
    assert result.stopped and not result.timed_out
    assert result.infrastructure_error is None
    assert result.exit_code == 137
    assert result.game is not None  # the game got its grace (SIGTERM) and still wrote its ending
    assert await docker_leftovers(docker_client, job.run_id) == []


async def test_stop_of_an_unknown_run_is_false(docker_runtime) -> None:
    assert await docker_runtime.stop(new_run_id()) is False


async def test_reconcile_removes_orphans_and_keeps_live_runs(docker_runtime, docker_client) -> None:
    node = docker_runtime.node
    orphan, live, volume_only = new_run_id("orphan"), new_run_id("live"), new_run_id("vol")

    async def leftover_container(run_id: str) -> None:
        labels = {"lumia.run_id": run_id, "lumia.user_id": "u1", "lumia.game": "snake", "lumia.node": node}
        container = await docker_client.containers.create(
            {"Image": docker_runtime.image, "Cmd": ["sleep", "600"], "Labels": labels,
             "HostConfig": {"NetworkMode": "none"}}, name=f"lumia-{run_id}-game")
        await container.start()
        await docker_client.volumes.create({"Name": f"lumia-{run_id}-app", "Labels": labels})

    await leftover_container(orphan)
    await leftover_container(live)
    await docker_client.volumes.create({"Name": f"lumia-{volume_only}-app",
                                        "Labels": {"lumia.run_id": volume_only, "lumia.node": node}})
    try:
        removed = await docker_runtime.reconcile({live})
        assert removed == sorted([orphan, volume_only])
        assert await docker_leftovers(docker_client, orphan) == []
        assert await docker_leftovers(docker_client, volume_only) == []
        assert len(await docker_leftovers(docker_client, live)) == 2
    finally:
        assert await docker_runtime.reconcile(set()) == [live]
    assert await docker_leftovers(docker_client, live) == []


async def test_reconcile_spares_runs_in_progress(docker_runtime) -> None:
    job = make_job()
    task = asyncio.create_task(docker_runtime.run(job))
    await asyncio.sleep(0.3)
    assert job.run_id not in await docker_runtime.reconcile(set())
    assert_normal_game(await task)


async def test_missing_image_is_an_infrastructure_error(docker_available, docker_client) -> None:
    runtime = DockerRuntime("lumia-missing-image:never", node=new_run_id("node"))
    try:
        job = make_job()
        result = await runtime.run(job)
        assert result.infrastructure_error is not None and result.exit_code is None
        assert await docker_leftovers(docker_client, job.run_id) == []
    finally:
        await runtime.close()
    with pytest.raises(Exception, match="missing"):
        await DockerRuntime.connect("lumia-missing-image:never", node="x")
    assert Settings().runner_image  # the real image is what the other tests use


async def test_image_game_uses_the_ml_variant_when_present(docker_available, docker_client) -> None:
    runtime = await DockerRuntime.connect(Settings().runner_image, node=new_run_id("node"))
    try:
        ml = f"{Settings().runner_image.split(':')[0]}-ml:latest"
        try:
            await docker_client.images.inspect(ml)
            present = True
        except Exception:
            present = False
        assert runtime.image_for("image") == (ml if present else runtime.image)
        assert runtime.image_for("snake") == runtime.image
    finally:
        await runtime.close()


async def test_redelivered_run_starts_from_a_clean_slate(docker_runtime, docker_client) -> None:
    """An earlier attempt of the same run crashed and left its game container: the retry replaces it."""
    job = make_job()
    labels = {"lumia.run_id": job.run_id, "lumia.node": docker_runtime.node, "lumia.role": "game"}
    stale = await docker_client.containers.create(
        {"Image": docker_runtime.image, "Cmd": ["sleep", "600"], "Labels": labels,
         "HostConfig": {"NetworkMode": "none"}}, name=f"lumia-{job.run_id}-game")
    await stale.start()
    assert_normal_game(await docker_runtime.run(job))
    assert await docker_leftovers(docker_client, job.run_id) == []
