"""Real parts from fixtures: a nats-server per test, the Docker engine, a stand-in backend.

Under ``CI=true`` a test that needs Docker fails when the engine or the runner image is missing;
elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from events.bus import Publisher, StreamSettings, connect, ensure_stream
from lumia.config import SandboxLimits, Settings
from lumia.natsserver import EmbeddedNats
from lumia.standin import StandInServer

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
async def js(nats_server: EmbeddedNats) -> AsyncIterator:
    nc = await connect((nats_server.url,), name="test")
    jetstream = nc.jetstream(timeout=5)
    await ensure_stream(jetstream, StreamSettings(name="LUMIA"))
    yield jetstream
    await nc.close()


@pytest.fixture
def publisher(js) -> Publisher:
    return Publisher(js, "LUMIA")


@pytest.fixture
def backend() -> Iterator[StandInServer]:
    server = StandInServer().start()
    yield server
    server.stop()


def _docker_problem() -> str | None:
    import aiodocker

    async def probe() -> str | None:
        docker = aiodocker.Docker()
        try:
            await docker.version()
            await docker.images.inspect(Settings().runner_image)
        except Exception as exc:
            return f"Docker engine or runner image unavailable: {exc}"
        finally:
            await docker.close()
        return None

    try:
        return asyncio.run(probe())
    except Exception as exc:
        return f"Docker engine unavailable: {exc}"


_DOCKER_PROBLEM: list[str | None] = []


@pytest.fixture
def docker_available() -> None:
    if not _DOCKER_PROBLEM:
        _DOCKER_PROBLEM.append(_docker_problem())
    problem = _DOCKER_PROBLEM[0]
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (CI=true: Docker tests must run; `lumia image build` first)")
        pytest.skip(problem)


FAST_LIMITS = SandboxLimits(move_timeout_s=3.0, game_timeout_s=30.0, connect_timeout_s=10.0, wall_s=45.0)


@pytest.fixture
def settings_for(tmp_path: Path, nats_server: EmbeddedNats) -> Callable[..., Settings]:
    def make(**changes: object) -> Settings:
        base = Settings(nats_urls=(nats_server.url,), data_dir=tmp_path / "data", node="testnode",
                        limits=FAST_LIMITS, api_port=0)
        return base.with_overrides(**changes)

    return make


@contextlib.asynccontextmanager
async def running_services(settings: Settings, roles: tuple[str, ...], **kwargs: object) -> AsyncIterator[None]:
    from lumia.services import run_services

    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(run_services(settings, roles, stop, on_ready=lambda _note: ready.set(), **kwargs))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task in done:
        task.result()
    assert ready.is_set(), "services did not start"
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def eventually(check: Callable[[], Awaitable[object]], timeout: float = 30.0, every: float = 0.1) -> object:
    """Poll ``check`` until it returns something truthy; fail with its last value after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout:g} s (last value: {last!r})")
