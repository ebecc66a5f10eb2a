"""A consumer process for the crash test: does its effect idempotently, then (if told to) hangs
before acknowledging, so the test can SIGKILL it mid-handler."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from consumers.loop import ConsumerSpec, run_consumer
from events import RunRequested
from events.bus import Publisher, connect


async def main(url: str, effects: Path, hang: bool) -> None:
    nc = await connect((url,), name="crash-worker")
    js = nc.jetstream()

    async def handle(event: RunRequested) -> None:
        done = effects.read_text().split() if effects.exists() else []
        if event.event_id not in done:  # "already done" is success
            with effects.open("a") as handle:
                handle.write(event.event_id + "\n")
        print(f"handled {event.event_id}", flush=True)
        if hang:
            await asyncio.sleep(3600)

    spec = ConsumerSpec(durable="crashtest", filter_subjects=("lumia.run.*.requested",),
                        handlers={RunRequested: handle}, ack_wait_s=1.5, max_deliver=5)
    await run_consumer(js, "LUMIA", spec, Publisher(js, "LUMIA"), asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), os.environ.get("HANG") == "1"))
