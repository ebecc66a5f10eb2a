"""Test support for the watcher: a real nats-server per test (free port, store in tmp_path) and a data dir."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:  # plain `pytest` without the project installed still finds the packages
    sys.path.insert(0, _REPO)

from events.bus import Publisher, StreamSettings, connect, ensure_stream, read_history  # noqa: E402
from lumia.config import Settings  # noqa: E402
from lumia.natsserver import EmbeddedNats  # noqa: E402
from producers.watcher import WatchOptions, run_watchers  # noqa: E402

FAST = WatchOptions(quiet_s=0.3, flag_wait_s=1.0, tick_s=0.05, rescan_s=60.0, retry_max_s=1.0)


@dataclass
class Harness:
    server: EmbeddedNats
    js: object
    stream: str
    publisher: Publisher
    settings: Settings
    options: WatchOptions = FAST
    tasks: list[tuple[asyncio.Task[None], asyncio.Event]] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.settings.data_dir

    def start_watcher(self, **kwargs: object) -> tuple[asyncio.Task[None], asyncio.Event]:
        stop = asyncio.Event()
        options = kwargs.pop("options", self.options)
        task = asyncio.create_task(run_watchers(self.settings, self.publisher, stop, options=options,  # type: ignore[arg-type]
                                                **kwargs))  # type: ignore[arg-type]
        self.tasks.append((task, stop))
        return task, stop

    async def stop_watcher(self, handle: tuple[asyncio.Task[None], asyncio.Event]) -> None:
        task, stop = handle
        stop.set()
        await asyncio.wait_for(task, 20)

    async def count(self, subject: str = "lumia.>") -> int:
        info = await self.js.stream_info(self.stream, subjects_filter=subject)  # type: ignore[attr-defined]
        if subject == "lumia.>":
            return info.state.messages
        return sum((info.state.subjects or {}).values())

    async def events(self, kind: type | None = None) -> list[object]:
        found = [stored.event async for stored in read_history(self.js, self.stream)]  # type: ignore[arg-type]
        return [e for e in found if kind is None or isinstance(e, kind)]

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition"):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    server = EmbeddedNats(tmp_path / "nats").start()
    nc = await connect([server.url], name="test-watcher")
    js = nc.jetstream()
    stream = f"T{uuid.uuid4().hex[:12]}"
    await ensure_stream(js, StreamSettings(name=stream))
    data = tmp_path / "data"
    data.mkdir()
    h = Harness(server=server, js=js, stream=stream, publisher=Publisher(js, stream, timeout=1.0, attempts=1),
                settings=Settings(data_dir=data.resolve(), nats_urls=(server.url,)))
    try:
        yield h
    finally:
        for task, stop in h.tasks:
            stop.set()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 20)
        await nc.close()
        server.stop()
