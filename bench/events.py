"""Event backbone speed, measured against raw nats-py in the same run on this machine.

    python bench/events.py [--count 20000]

1. publish: the project's ``Publisher.publish_many`` vs raw ``js.publish_async`` (same payloads,
   both with Nats-Msg-Id); target ratio >= 0.8.
2. consume: the shared consume loop (decode, dispatch, ack) vs raw ``fetch`` + ``ack``; target >= 0.8.
3. replay: ``read_history`` decoding every event; target >= 20,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nats.js.api import AckPolicy, ConsumerConfig

from consumers.loop import ConsumerSpec, run_consumer
from events import RunStarted
from events.bus import Publisher, StreamSettings, connect, ensure_stream, read_history
from events.codec import encode
from lumia.natsserver import EmbeddedNats


def _events(prefix: str, count: int) -> list[RunStarted]:
    return [RunStarted(run_id=f"{prefix}{i}", node="bench", runtime="docker") for i in range(count)]


async def bench_publish(js, count: int) -> tuple[float, float]:
    raw_events = _events("raw", count)
    started = time.perf_counter()
    futures = []
    for event in raw_events:
        futures.append(await js.publish_async(f"lumia.run.{event.run_id}.started", encode(event),
                                              headers={"Nats-Msg-Id": event.event_id}))
        if len(futures) >= 1000:
            await asyncio.gather(*futures)
            futures = []
    await asyncio.gather(*futures)
    raw = count / (time.perf_counter() - started)
    publisher = Publisher(js, "LUMIA", timeout=30)
    ours_events = _events("ours", count)
    started = time.perf_counter()
    await publisher.publish_many(ours_events)
    ours = count / (time.perf_counter() - started)
    return raw, ours


async def bench_consume(js, count: int) -> tuple[float, float]:
    await js.add_consumer("LUMIA", ConsumerConfig(durable_name="rawbench", ack_policy=AckPolicy.EXPLICIT,
                                                  filter_subject="lumia.run.*.started", max_ack_pending=-1))
    sub = await js.pull_subscribe_bind("rawbench", stream="LUMIA")
    started = time.perf_counter()
    seen = 0
    while seen < count:
        for msg in await sub.fetch(256, timeout=5):
            await msg.ack()
            seen += 1
    raw = seen / (time.perf_counter() - started)

    done = asyncio.Event()
    handled = 0

    async def handle(_event: RunStarted) -> None:
        nonlocal handled
        handled += 1
        if handled >= count:
            done.set()

    spec = ConsumerSpec(durable="loopbench", filter_subjects=("lumia.run.*.started",),
                        handlers={RunStarted: handle}, max_concurrency=256, confirm_ack=False)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(run_consumer(js, "LUMIA", spec, Publisher(js, "LUMIA"), stop))
    await asyncio.wait_for(done.wait(), 120)
    ours = handled / (time.perf_counter() - started)
    stop.set()
    await task
    return raw, ours


async def bench_replay(js) -> float:
    started = time.perf_counter()
    count = 0
    async for stored in read_history(js, "LUMIA"):
        count += stored.event is not None
    return count / (time.perf_counter() - started)


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as store:
        server = EmbeddedNats(Path(store)).start()
        try:
            nc = await connect((server.url,), name="bench")
            js = nc.jetstream(timeout=30, publish_async_max_pending=4000)
            await ensure_stream(js, StreamSettings())
            raw_pub, our_pub = await bench_publish(js, count)
            raw_con, our_con = await bench_consume(js, count)
            replay = await bench_replay(js)
            await nc.close()
        finally:
            server.stop()
    print(f"publish  raw publish_async {raw_pub:9.0f}/s  Publisher.publish_many {our_pub:9.0f}/s  "
          f"ratio {our_pub / raw_pub:.2f} (target >= 0.8)")
    print(f"consume  raw fetch+ack     {raw_con:9.0f}/s  shared consume loop    {our_con:9.0f}/s  "
          f"ratio {our_con / raw_con:.2f} (target >= 0.8)")
    print(f"replay   read_history      {replay:9.0f} events/s (target >= 20000)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    asyncio.run(main(parser.parse_args().count))
