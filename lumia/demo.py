"""``lumia demo``: the whole pipeline once, on embedded defaults, with a bundled bot.

Starts an embedded nats-server, a stand-in for the Java backend and every service; submits the
bundled bot through the API; prints the outcome, the run's timeline, where the log went and what the
backend received; then stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from pathlib import Path

import httpx

from events.bus import redact
from lumia.config import Settings
from lumia.natsserver import EmbeddedNats, free_port
from lumia.standin import StandInServer

BOTS = Path(__file__).resolve().parent.parent / "game_vault" / "bots"
DEMO_USER = "65a1f0c2e4b0a1b2c3d4e5f6"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _pick_runtime(settings: Settings) -> Settings:
    from consumers.lifecycle.docker_runtime import DockerRuntime, DockerUnavailable

    if settings.runtime == "process":
        return settings
    try:
        runtime = await DockerRuntime.connect(settings.runner_image, settings.node)
        await runtime.close()
        return settings.with_overrides(runtime="docker")
    except DockerUnavailable as exc:
        if "missing" in str(exc):
            from lumia.images import build_images

            await build_images(settings)
            return settings.with_overrides(runtime="docker")
        print(f"demo: Docker is not available ({exc}); using the process runtime, which is NO security boundary")
        return settings.with_overrides(runtime="process")


async def run_demo(settings: Settings, game: str = "snake", script: Path | None = None) -> int:
    from events.bus import connect, read_history
    from events.subjects import run_subject
    from lumia.services import run_services
    from lumia.timeline import line

    script = script or BOTS / {"snake": "snake_bot.py", "connect4": "connect4_bot.py", "image": "image_bot.py"}[game]
    settings = await _pick_runtime(settings)
    nats = EmbeddedNats(settings.data_dir / "nats-demo", port=free_port()).start()
    backend = StandInServer().start()
    api_port = settings.api_port if _port_free(settings.api_port) else free_port()
    settings = settings.with_overrides(nats_urls=(nats.url,), backend_url=backend.url, api_port=api_port,
                                       api_host="127.0.0.1")
    stop = asyncio.Event()
    ready = asyncio.Event()
    started = time.monotonic()
    services = asyncio.create_task(run_services(settings, ("api", "runner", "forwarder"), stop,
                                                on_ready=lambda note: ready.set()))
    api = f"http://127.0.0.1:{api_port}"
    try:
        await _wait_for(ready, services, 60)
        print(f"demo: NATS {redact(nats.url)}, API {api}, backend stand-in {backend.url}, runtime {settings.runtime}")
        async with httpx.AsyncClient(timeout=30) as http:
            await _wait_api(http, api)
            response = await http.post(f"{api}/v1/runs", files={"file": (script.name, script.read_bytes())},
                                       data={"userId": DEMO_USER, "game": game, "dockerId": "1", "seed": "7"})
            if response.status_code != 202:
                print(f"demo: the API refused the run: {response.status_code} {response.text}", file=sys.stderr)
                return 1
            run_id = response.json()["runId"]
            print(f"demo: submitted {script.name} for user {DEMO_USER} as run {run_id}")
            state = await _wait_done(http, api, run_id, 300)
        elapsed = time.monotonic() - started
        print(f"\noutcome: {state.get('outcome')}  score {state.get('score')}  moves {state.get('moves')}  "
              f"({state.get('status')}, {elapsed:.1f} s from start-up to outcome)")
        nc = await connect(settings.nats_urls, name="lumia-demo")
        print("\ntimeline (lumia events replay --run " + run_id + "):")
        async for stored in read_history(nc.jetstream(), settings.stream, run_subject(run_id)):
            print("  " + line(stored))
        await nc.close()
        legacy = settings.data_dir / "logs" / DEMO_USER / f"{game}.json"
        print(f"\nlog: {legacy} (this run's own copy: {settings.data_dir / (state.get('log_path') or '')})")
        for upload in backend.backend.uploads(DEMO_USER):
            document = upload.document or {}
            print(f"backend received: POST /api/game/upload file={upload.file_name} "
                  f"userId={upload.fields.get('userId')} "
                  f"game={upload.fields.get('game')} message={document.get('message')} "
                  f"gameStates={len(document.get('gameStates', []))} Idempotency-Key={upload.idempotency_key}")
        return 0 if state.get("status") == "exited" else 1
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(services, 30)
        backend.stop()
        nats.stop()


async def _wait_for(event: asyncio.Event, task: asyncio.Task[None], timeout: float) -> None:
    waiter = asyncio.create_task(event.wait())
    done, _ = await asyncio.wait({waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task in done:
        task.result()
        raise RuntimeError("the services stopped during start-up")
    if not event.is_set():
        raise RuntimeError(f"the services did not start within {timeout:g} s")


async def _wait_api(http: httpx.AsyncClient, api: str) -> None:
    for _ in range(100):
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get(f"{api}/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError("the API did not become ready")


async def _wait_done(http: httpx.AsyncClient, api: str, run_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        state = (await http.get(f"{api}/v1/runs/{run_id}")).json()
        if state.get("status") != last:
            last = state.get("status", "")
            print(f"demo: run is {last}")
        if state.get("log_forwarded") or state.get("status") == "failed" or state.get("log_forward_error"):
            return state
        await asyncio.sleep(0.2)
    raise RuntimeError(f"run {run_id} did not finish within {timeout:g} s")
