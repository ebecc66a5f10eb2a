"""Bootstrap: builds the real clients once and hands them to the handlers; runs the chosen roles.

    api        the REST API (uvicorn) and the run-state projection it reads
    runner     the lifecycle consumers (sandboxes) and the drop-folder watchers of this node
    forwarder  game logs and training notifications to the Java backend, and dead letters

``lumia up`` runs all three in one process, next to an embedded nats-server when ``LUMIA_NATS_URL``
is not set. Tests call the same ``run_services`` with a test configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from consumers import deadletters, forwarder, lifecycle, projection, training
from consumers.backend import BackendClient
from consumers.lifecycle.sandbox import Runtime
from consumers.loop import ConsumerSpec, run_consumer
from events import RunFailed, RunRemoved
from events.bus import Publisher, StreamSettings, connect, ensure_stream
from events.ledger import FileLedger
from lumia.config import Settings
from producers.watcher import run_watchers
from vault import DataDir

log = logging.getLogger("lumia")

ROLES = ("api", "runner", "forwarder")


@dataclass
class RuntimeChoice:
    runtime: Runtime
    note: str


async def choose_runtime(settings: Settings) -> RuntimeChoice:
    """Docker when reachable (or required); the process runtime only when allowed."""
    from consumers.lifecycle.docker_runtime import DockerRuntime, DockerUnavailable
    from consumers.lifecycle.process_runtime import WARNING, ProcessRuntime

    if settings.runtime == "process":
        return RuntimeChoice(ProcessRuntime(), WARNING)
    try:
        runtime = await DockerRuntime.connect(settings.runner_image, settings.node)
    except DockerUnavailable as exc:
        if settings.runtime == "docker":
            raise
        return RuntimeChoice(ProcessRuntime(), f"{exc}; using the {WARNING}")
    return RuntimeChoice(runtime, f"docker runtime, image {settings.runner_image}")


async def run_services(settings: Settings, roles: tuple[str, ...], stop: asyncio.Event,
                       on_ready: Callable[[str], Awaitable[None] | None] | None = None,
                       runtime: Runtime | None = None) -> None:
    """Run ``roles`` until ``stop`` is set, then drain and close everything in reverse order."""
    data = DataDir(settings.data_dir)
    data.ensure()
    async with contextlib.AsyncExitStack() as stack:
        nc = await connect(settings.nats_urls, name=f"lumia-{'-'.join(roles)}-{settings.node}", initial_attempts=20)
        stack.push_async_callback(_drain, nc)
        js = nc.jetstream(timeout=10)
        await ensure_stream(js, StreamSettings.of(settings))
        publisher = Publisher(js, settings.stream)
        specs: list[ConsumerSpec] = []
        tasks: list[Callable[[], Awaitable[None]]] = []
        notes: list[str] = []

        if "runner" in roles:
            if runtime is None:
                choice = await choose_runtime(settings)
                runtime = choice.runtime
                notes.append(choice.note)
                stack.push_async_callback(runtime.close)
            ledger = FileLedger(js, settings.stream_replicas)
            deps = lifecycle.LifecycleDeps(runtime=runtime, publisher=publisher, js=js, data=data, settings=settings,
                                           ledger=ledger)
            await _reconcile(deps)
            specs += lifecycle.consumer_specs(deps)
            tasks.append(lambda: run_watchers(settings, publisher, stop, ledger=ledger))
        if "forwarder" in roles:
            backend = BackendClient(settings.backend_url, settings.backend_timeout_s)
            stack.push_async_callback(backend.close)
            specs += forwarder.consumer_specs(forwarder.ForwarderDeps(backend, publisher, data))
            notifier = training.TrainingDeps(backend, publisher, js, settings.stream)
            specs += training.consumer_specs(notifier)
            await deadletters.ensure_advisory_stream(js, settings.stream, settings.stream_replicas)
            specs += deadletters.consumer_specs(deadletters.DeadLetterDeps(js, publisher), settings.stream)
        if "api" in roles:
            store = await projection.RunStore.open(js, settings.stream_replicas)
            specs += projection.consumer_specs(store)
            api_listening = asyncio.Event()
            tasks.append(lambda: _serve_api(settings, stop, api_listening))

        for spec in specs:
            tasks.append(lambda spec=spec: run_consumer(js, settings.stream, spec, publisher, stop))
        running = [asyncio.create_task(task()) for task in tasks]
        if "api" in roles:
            await _first(api_listening.wait(), running)
        if on_ready is not None:
            maybe = on_ready("; ".join(notes))
            if asyncio.iscoroutine(maybe):
                await maybe
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*running, stopper], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        for task in done:
            if task is not stopper and task.exception() is not None:
                log.error("a service stopped: %r", task.exception())
        results = await asyncio.gather(*running, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
        if failures:
            raise failures[0]


async def _drain(nc) -> None:
    with contextlib.suppress(Exception):
        await nc.drain()


async def _reconcile(deps: lifecycle.LifecycleDeps) -> None:
    """After a crash nothing is left behind: remove this node's orphaned sandboxes and record it.

    A run whose sandbox is removed here is ended with ``RunFailed``; its request, redelivered after
    ``ack_wait``, then sees the run has ended and does not start it twice."""
    removed = await deps.runtime.reconcile(set())
    for run_id in removed:
        if run_id:
            await deps.publisher.publish(RunFailed(run_id=run_id, kind="infrastructure",
                                                   reason=f"runner on {deps.settings.node} restarted; sandbox removed"))
            await deps.publisher.publish(RunRemoved(run_id=run_id))
    if removed:
        log.warning("removed %d orphaned sandbox(es): %s", len(removed), ", ".join(removed))


async def _first(waited: Awaitable[object], running: list[asyncio.Task[None]]) -> None:
    """Wait for ``waited`` unless a service dies first (then raise its error)."""
    waiter = asyncio.ensure_future(waited)
    done, _ = await asyncio.wait([waiter, *running], return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        for task in done:
            task.result()
        raise RuntimeError("a service stopped during start-up")


async def _serve_api(settings: Settings, stop: asyncio.Event, listening: asyncio.Event) -> None:
    import uvicorn

    from api.app import check_bind, create_app

    check_bind(settings)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.api_host, port=settings.api_port,
                                           log_level="warning", lifespan="on"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # lumia owns the signals
    async def serve_quietly() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn's way of saying it could not start
            await server.serve()

    serve = asyncio.create_task(serve_quietly())
    while not server.started:
        if serve.done():  # uvicorn logged why and ended with SystemExit
            raise OSError(f"the API could not listen on {settings.api_host}:{settings.api_port} "
                          "(address in use? set LUMIA_API_PORT)")
        await asyncio.sleep(0.02)
    listening.set()
    await stop.wait()
    server.should_exit = True
    await serve
