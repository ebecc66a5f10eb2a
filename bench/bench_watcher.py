"""Rename-into-place → JetStream ack latency of the folder watcher, for a burst of files.

    python bench/bench_watcher.py [--files 1000] [--quiet 0.5] [--polling]

Starts a throw-away nats-server and data dir, runs ``producers.watcher.run_watchers``, renames N valid
game logs into ``logs/<userId>/snake.json`` as fast as possible, then reads the stream back: the
latency of a file is the server's store time of its ``LogWritten`` minus the wall time right after its
``os.replace`` (same host, same clock). Prints p50/p99/max latency and the burst rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from events import LogWritten
from events.bus import Publisher, StreamSettings, connect, ensure_stream, read_history
from lumia.config import Settings
from lumia.natsserver import EmbeddedNats
from producers.watcher import WatchOptions, run_watchers

BODY = json.dumps({"timestamp": "2024-01-01T00:00:00", "gameType": "snake", "userId": "NA", "gameId": "g",
                   "message": "win", "gameStates": [[0, 1], [1, 1]]}).encode()


def _drop(data: Path, n: int) -> tuple[str, float]:
    user = f"{n:024x}"
    folder = data / "logs" / user
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".snake.json.tmp"
    tmp.write_bytes(BODY)
    os.replace(tmp, folder / "snake.json")
    return user, time.time()


async def bench(files: int, quiet: float, polling: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="lumia-bench-") as raw:
        root = Path(raw)
        server = EmbeddedNats(root / "nats").start()
        nc = await connect([server.url], name="bench-watcher")
        try:
            js = nc.jetstream()
            await ensure_stream(js, StreamSettings(name="BENCH"))
            data = root / "data"
            settings = Settings(data_dir=data, nats_urls=(server.url,))
            options = WatchOptions.from_env()
            options = WatchOptions(**{**options.__dict__, "quiet_s": quiet})
            stop = asyncio.Event()
            task = asyncio.create_task(run_watchers(settings, Publisher(js, "BENCH"), stop, options=options,
                                                    force_polling=polling))
            await asyncio.sleep(1.5)  # let the watch arm before the burst
            renamed = dict(await asyncio.to_thread(lambda: [_drop(data, n) for n in range(files)]))
            burst_end = time.time()
            deadline = time.monotonic() + 60 + files * 0.05
            while time.monotonic() < deadline:
                info = await js.stream_info("BENCH")
                if info.state.messages >= files:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await task
            stored = {s.event.user_id: s.stored_at.timestamp() async for s in read_history(js, "BENCH")
                      if isinstance(s.event, LogWritten)}
        finally:
            await nc.close()
            server.stop()
    latencies = sorted(stored[user] - at for user, at in renamed.items() if user in stored)
    first = min(renamed.values())
    last_ack = max(stored.values()) if stored else first
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    mode = "polling" if polling else "inotify"
    print(f"watcher bench: {files} files renamed into place in {burst_end - first:.3f} s ({mode}, "
          f"quiet_s={quiet:g})")
    print(f"  published   {len(latencies)}/{files} (lost {files - len(latencies)})")
    print(f"  latency     p50 {quantiles[49] * 1000:.0f} ms   p99 {quantiles[98] * 1000:.0f} ms   "
          f"max {latencies[-1] * 1000:.0f} ms")
    print(f"  rate        {len(latencies) / (last_ack - first):.0f} events/s "
          f"(first rename → last ack {last_ack - first:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--quiet", type=float, default=WatchOptions().quiet_s, help="quiet period in seconds")
    parser.add_argument("--polling", action="store_true", help="force polling instead of inotify")
    args = parser.parse_args()
    asyncio.run(bench(args.files, args.quiet, args.polling))


if __name__ == "__main__":
    main()
