"""The one consume loop: it owns fetch, ack, nak, term and dead letters; handlers only return or raise.

    handler returns            -> ack
    handler raises Retry       -> nak(delay)         (backend down, resource busy)
    handler raises Reject      -> DeadLettered + term (poison: will never succeed)
    handler raises anything    -> nak with backoff; after ``max_deliver`` tries: DeadLettered + term
    loop cancelled mid-handler -> no ack: JetStream redelivers after ``ack_wait``

Handlers that run long (a game, a training run) are kept alive with ``in_progress()`` every third
of ``ack_wait``, so a live run is never redelivered while a crashed one comes back quickly.
Several processes bound to the same durable share its messages: that is how runners scale out.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError, ServiceUnavailableError

from events.bus import BrokerUnavailable, Publisher
from events.codec import MalformedEvent, UnknownEvent, decode
from events.model import DeadLettered, Event

log = logging.getLogger("lumia.consumers")


class Retry(Exception):
    """Try this message again later (after ``after`` seconds)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Reject(Exception):
    """This message can never succeed: dead-letter it with ``reason``."""


Handler = Callable[[Event], Awaitable[None]]

# The message being handled; its metadata (parsed from the reply subject) is read only when asked for.
_delivery: contextvars.ContextVar[Msg | None] = contextvars.ContextVar("lumia_delivery", default=None)


def delivery_attempt() -> int:
    """How many times JetStream has delivered the message being handled (1 on the first try)."""
    msg = _delivery.get()
    return msg.metadata.num_delivered if msg is not None else 1


def current_sequence() -> int:
    """The stream sequence of the message being handled."""
    msg = _delivery.get()
    return msg.metadata.sequence.stream if msg is not None else 0


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str
    filter_subjects: tuple[str, ...]
    handlers: Mapping[type[Event], Handler]
    max_concurrency: int = 16
    ack_wait_s: float = 30.0
    max_deliver: int = 10
    backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    description: str = ""
    # Another stream and payload format (the advisory stream); events of LUMIA by default.
    stream: str | None = None
    decoder: Callable[[bytes], Event] = decode
    confirm_ack: bool = True
    on_skip: Callable[[str], None] = field(default=lambda why: log.info("skipped: %s", why))

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            description=self.description or None,
            deliver_policy=self.deliver_policy,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver,
            max_ack_pending=max(self.max_concurrency * 4, 64),
            filter_subjects=list(self.filter_subjects),
        )

    def delay_for(self, attempt: int) -> float:
        base = self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)]
        return base * random.uniform(0.8, 1.2)


async def ensure_consumer(js: JetStreamContext, stream: str, spec: ConsumerSpec) -> None:
    # add_consumer creates or updates; pull_subscribe would silently ignore a changed config.
    await js.add_consumer(stream, spec.consumer_config())


async def run_consumer(js: JetStreamContext, stream: str, spec: ConsumerSpec, publisher: Publisher,
                       stop: asyncio.Event, fetch_timeout: float = 1.0) -> None:
    """Consume until ``stop`` is set; in-flight handlers are finished before returning."""
    stream = spec.stream or stream
    await ensure_consumer(js, stream, spec)
    sub = await js.pull_subscribe_bind(spec.durable, stream=stream)
    heartbeats = _Heartbeats(spec.ack_wait_s / 3)
    # A fixed pool of workers (one per slot) takes fetched messages from a queue: no task per message.
    # Pull is the flow control: fetch only what idle workers can take, and when full wait until a
    # quarter of the slots is free, so fetches stay large when handlers are quick.
    queue: asyncio.Queue[Msg | None] = asyncio.Queue()
    taken = 0  # messages fetched and not finished yet
    low_water = spec.max_concurrency - max(1, spec.max_concurrency // 4)
    room = asyncio.Event()

    async def worker() -> None:
        nonlocal taken
        while (msg := await queue.get()) is not None:
            try:
                await _handle(msg, spec, publisher, heartbeats)
            finally:
                taken -= 1
                if taken <= low_water:
                    room.set()

    workers = [asyncio.create_task(worker()) for _ in range(spec.max_concurrency)]
    try:
        while not stop.is_set():
            if taken >= spec.max_concurrency:
                room.clear()
                await room.wait()
            free = spec.max_concurrency - taken
            try:
                msgs = await sub.fetch(free, timeout=fetch_timeout)
            except TimeoutError:  # nats' own TimeoutError is a subclass; both mean "nothing yet"
                msgs = []
            except (ServiceUnavailableError, NotFoundError):
                # The durable vanished (admin delete): recreate it and bind again.
                await asyncio.sleep(0.5)
                await ensure_consumer(js, stream, spec)
                sub = await js.pull_subscribe_bind(spec.durable, stream=stream)
                msgs = []
            except ConnectionClosedError:
                if stop.is_set():
                    break
                raise  # the connection is gone for good: let the process exit and be restarted
            except Exception as exc:  # disconnected: the client reconnects on its own
                log.warning("%s: fetch failed: %r", spec.durable, exc)
                await asyncio.sleep(0.5)
                msgs = []
            taken += len(msgs)
            for msg in msgs:
                queue.put_nowait(msg)
    finally:
        for _ in workers:
            queue.put_nowait(None)  # finish what was fetched, then stop
        await asyncio.gather(*workers, return_exceptions=True)
        heartbeats.close()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _handle(msg: Msg, spec: ConsumerSpec, publisher: Publisher, heartbeats: _Heartbeats) -> None:
    try:
        event = spec.decoder(msg.data)
    except UnknownEvent as exc:
        spec.on_skip(f"{spec.durable}: {exc} at seq {msg.metadata.sequence.stream}; this version skips it")
        await msg.ack()
        return
    except MalformedEvent as exc:
        await _dead_letter(msg, spec, publisher, f"malformed event: {exc}", None)
        return
    handler = spec.handlers.get(type(event))
    if handler is None:
        await msg.ack()
        return
    heartbeats.track(msg)
    _delivery.set(msg)
    try:
        await handler(event)
    except Retry as exc:
        attempt = msg.metadata.num_delivered
        if attempt >= spec.max_deliver:
            await _dead_letter(msg, spec, publisher, f"gave up after {attempt} attempts: {exc}", event)
        else:
            await msg.nak(delay=exc.after if exc.after is not None else spec.delay_for(attempt))
    except Reject as exc:
        await _dead_letter(msg, spec, publisher, str(exc), event)
    except asyncio.CancelledError:
        raise  # leave it un-acked: JetStream redelivers after ack_wait
    except BrokerUnavailable as exc:
        meta = msg.metadata
        log.warning("%s: broker unavailable while handling seq %s: %s", spec.durable, meta.sequence.stream, exc)
        with contextlib.suppress(Exception):
            await msg.nak(delay=spec.delay_for(meta.num_delivered))
    except Exception as exc:
        meta = msg.metadata
        attempt = meta.num_delivered
        log.exception("%s: handler failed on seq %s (attempt %s)", spec.durable, meta.sequence.stream, attempt)
        if attempt >= spec.max_deliver:
            await _dead_letter(msg, spec, publisher, f"handler error after {attempt} attempts: {exc!r}", event)
        else:
            await msg.nak(delay=spec.delay_for(attempt))
    else:
        # Handlers with side effects get a confirmed ack; cheap idempotent ones a fire-and-forget one.
        await (msg.ack_sync() if spec.confirm_ack else msg.ack())
    finally:
        heartbeats.untrack(msg)


class _Heartbeats:
    """One ticker per consumer: every ``every`` seconds it sends ``in_progress()`` for each message
    whose handler has been running at least that long (cheaper than a timer per message)."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._running: dict[int, tuple[Msg, float]] = {}
        self._task = asyncio.create_task(self._tick())

    def track(self, msg: Msg) -> None:
        self._running[id(msg)] = (msg, asyncio.get_running_loop().time())

    def untrack(self, msg: Msg) -> None:
        self._running.pop(id(msg), None)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._every)
            due = loop.time() - self._every
            for msg, since in list(self._running.values()):
                if since <= due:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    def close(self) -> None:
        self._task.cancel()


async def _dead_letter(msg: Msg, spec: ConsumerSpec, publisher: Publisher, reason: str, event: Event | None) -> None:
    meta = msg.metadata
    log.error("%s: dead-lettering seq %s (%s): %s", spec.durable, meta.sequence.stream, msg.subject, reason)
    await publisher.publish(
        DeadLettered(
            consumer=spec.durable,
            stream_seq=meta.sequence.stream,
            subject=msg.subject,
            reason=reason,
            deliveries=meta.num_delivered,
            run_id=getattr(event, "run_id", None),
        )
    )
    await msg.term()
