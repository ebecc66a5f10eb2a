"""POST /v1/runs throughput and p99 (with the JetStream ack) against a bare endpoint doing the same publish.

Run from the repository root: ``python bench/bench_api.py [--requests N] [--concurrency C]``. One run
starts a nats-server, then two uvicorn servers in child processes: the real API (``create_app``, with
its token check, body limit, validation and script compilation) and a bare Starlette route that
decodes the same JSON, builds the same ``RunRequested`` and publishes it. Both are loaded alternately
with the same requests; the target is API/bare >= 0.8 in requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from lumia.natsserver import EmbeddedNats, free_port  # noqa: E402

TOKEN = "bench-token"
TARGET_RATIO = 0.8
SCRIPT = (REPO / "tests" / "fixtures" / "legacy_snake_bot.py").read_text()
BODY = {"userId": "65a1f0c2e4b0a1b2c3d4e5f6", "game": "snake", "dockerId": 3, "script": SCRIPT}


def _serve(kind: str, port: int, nats_url: str, data: Path) -> None:
    """Child process: one server until killed."""
    import uvicorn

    from lumia.config import Settings

    settings = Settings(nats_urls=(nats_url,), data_dir=data, api_port=port, api_token=TOKEN, node="bench")
    if kind == "api":
        from api.app import create_app

        app = create_app(settings)
    else:
        app = _bare_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _bare_app(settings):
    """The same publish with none of the API's work: no auth, limits, validation or compilation."""
    import msgspec
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from events import RunRequested, new_run_id
    from events.bus import Publisher, StreamSettings, connect, ensure_stream

    state: dict[str, Publisher] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        nc = await connect(settings.nats_urls, name="bench-bare")
        js = nc.jetstream(timeout=5)
        await ensure_stream(js, StreamSettings(name=settings.stream))
        state["publisher"] = Publisher(js, settings.stream)
        yield
        await nc.drain()

    async def runs(request):
        body = msgspec.json.decode(await request.body())
        event = RunRequested(run_id=new_run_id(), user_id=body["userId"], game=body["game"],
                             docker_id=body["dockerId"], script_name="script.py", script=body["script"],
                             script_sha256="-", seed=1, source="api")
        await state["publisher"].publish(event)
        return JSONResponse({"runId": event.run_id}, status_code=202)

    return Starlette(routes=[Route("/v1/runs", runs, methods=["POST"])], lifespan=lifespan)


async def _load(url: str, requests: int, concurrency: int) -> tuple[float, float, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    payload = json.dumps(BODY).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                response = await http.post(url, content=payload, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 202:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return requests / elapsed, p99 * 1000, statistics.median(latencies) * 1000


async def _wait_listening(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                await http.get(url)
                return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", choices=["api", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--nats", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port, args.nats, args.data)
        return 0

    with tempfile.TemporaryDirectory(prefix="lumia-bench-api-") as tmp:
        nats = EmbeddedNats(Path(tmp) / "nats").start()
        children: list[subprocess.Popen[bytes]] = []
        try:
            urls = {}
            for kind in ("api", "bare"):
                port = free_port()
                children.append(subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port),
                                                  "--nats", nats.url, "--data", str(Path(tmp) / "data")]))
                urls[kind] = f"http://127.0.0.1:{port}/v1/runs"
            for url in urls.values():
                asyncio.run(_wait_listening(url))
            asyncio.run(_load(urls["api"], 100, 4))  # warm-up (imports, connections, first compile)
            asyncio.run(_load(urls["bare"], 100, 4))
            results: dict[str, list[tuple[float, float, float]]] = {"api": [], "bare": []}
            for _ in range(args.rounds):  # alternate, so both see the same disk and NATS state
                for kind in ("bare", "api"):
                    results[kind].append(asyncio.run(_load(urls[kind], args.requests, args.concurrency)))
        finally:
            for child in children:
                child.terminate()
                child.wait(10)
            nats.stop()

    summary = {}
    for kind, rounds in results.items():
        best = max(rounds)  # best round: the least disturbed by the machine
        summary[kind] = best
        print(f"{kind:5s} POST /v1/runs: {best[0]:8.0f} req/s   p50 {best[2]:6.2f} ms   p99 {best[1]:6.2f} ms"
              f"   ({args.requests} requests, concurrency {args.concurrency}, script {len(SCRIPT)} bytes)")
    ratio = summary["api"][0] / summary["bare"][0]
    verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"ratio API/bare: {ratio:.2f} (target >= {TARGET_RATIO}) {verdict}")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
