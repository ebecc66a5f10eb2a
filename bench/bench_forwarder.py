"""Backend delivery speed: logs forwarded per second, and model_saved -> backend call latency.

    python bench/bench_forwarder.py [--logs 2000] [--models 50]

Starts a nats-server and a fast stand-in backend (a bare ASGI app in its own process that reads the
body, records the call and answers 200), runs the forwarder role of ``lumia.services``, then:
1. publishes ``--logs`` LogWritten events for log files on disk and measures until every one has its
   LogForwarded event (target >= 500 logs/s);
2. publishes ``--models`` ModelSaved events one at a time and measures, per event, the time from the
   publish to the backend receiving ``PUT /api/training/change-status`` (target p99 < 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from events import LogWritten, ModelSaved  # noqa: E402
from events.bus import Publisher, StreamSettings, connect, ensure_stream  # noqa: E402
from lumia.config import Settings  # noqa: E402
from lumia.natsserver import EmbeddedNats, free_port  # noqa: E402
from lumia.services import run_services  # noqa: E402
from vault import DataDir, atomic_write, sha256  # noqa: E402


def _log(index: int) -> bytes:
    return json.dumps({"timestamp": "2026-12-03 10:00:00", "gameType": "snake", "userId": "NA", "gameId": 1,
                       "message": "win", "gameStates": [{"timestamp": "2026-12-03 10:00:00", "itemType": "score",
                                                         "int": index}]}).encode()


FAST_BACKEND = """
import json, sys, time, uvicorn
calls = []
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/_requests":
        payload = json.dumps(calls).encode()
    else:
        calls.append({"path": scope["path"], "status": 200, "at": time.time()})
        payload = b"ok"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": payload})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


async def _wait_requests(http: httpx.AsyncClient, url: str, path: str, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in (await http.get(f"{url}/_requests")).json() if r["path"] == path and r["status"] == 200]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError(f"only {len(found)} of {count} {path} calls arrived")


async def main(logs: int, models: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        server = EmbeddedNats(root / "nats").start()
        port = free_port()
        stand_in = subprocess.Popen([sys.executable, "-c", FAST_BACKEND, str(port)], cwd=REPO)  # noqa: ASYNC220
        backend = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(100):
                    try:
                        await http.get(f"{backend}/_requests")
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
                settings = Settings(nats_urls=(server.url,), data_dir=root / "data", backend_url=backend, node="bench")
                data = DataDir(settings.data_dir)
                nc = await connect(settings.nats_urls, name="bench")
                js = nc.jetstream(timeout=30)
                await ensure_stream(js, StreamSettings())
                publisher = Publisher(js, "LUMIA", timeout=30)
                events = []
                for index in range(logs):
                    user = f"{index:024x}"
                    raw = _log(index)
                    path = data.log_path(user, "snake")
                    atomic_write(path, raw)
                    events.append(LogWritten(run_id=f"b{index}", user_id=user, game="snake", path=data.relative(path),
                                             size=len(raw), sha256=sha256(raw)))
                await publisher.publish_many(events)
                stop = asyncio.Event()
                ready = asyncio.Event()
                started = time.perf_counter()
                services = asyncio.create_task(run_services(settings, ("forwarder",), stop,
                                                            on_ready=lambda _note: ready.set()))
                await _wait_requests(http, backend, "/api/game/upload", logs, 300)
                rate = logs / (time.perf_counter() - started)

                latencies = []
                for index in range(models):
                    content = f"model {index}".encode()
                    sent = time.time()
                    await publisher.publish(ModelSaved(run_id=f"m{index}", docker_id=1, game="image",
                                                       user_id=f"{index:024x}", path="train/x", size=len(content),
                                                       sha256=sha256(content)))
                    calls = await _wait_requests(http, backend, "/api/training/change-status", index + 1, 30)
                    latencies.append(max(call["at"] for call in calls) - sent)
                stop.set()
                await services
                await nc.close()
        finally:
            stand_in.terminate()
            stand_in.wait(10)
            server.stop()
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"forwarding  {logs} logs in one burst: {rate:7.0f} logs/s (target >= 500)")
    print(f"training    model_saved -> backend call over {models} runs: p50 {p50 * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms (target p99 < 1000 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=int, default=2000)
    parser.add_argument("--models", type=int, default=50)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.logs, arguments.models))
