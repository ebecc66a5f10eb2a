"""JetStream plumbing shared by every process: connection, the audit stream, publishing, reading back.

The stream is the audit log: limits retention (consumers never delete history), file storage, and
deletes and purges denied. Every publish carries the event's deterministic ``Nats-Msg-Id``, so a
publish retried after a timeout is stored once (the server drops the copy inside the duplicate window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

from events.codec import MalformedEvent, UnknownEvent, decode, encode
from events.model import Event
from events.subjects import ALL, message_id, subject_for

if TYPE_CHECKING:
    from lumia.config import Settings

log = logging.getLogger("lumia.events")

DUPLICATE_WINDOW_S = 300.0


def redact(url: str) -> str:
    """A NATS URL without its password, for messages and logs."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


class BrokerUnavailable(RuntimeError):
    """JetStream did not acknowledge in time; nothing can be promised to the caller."""


async def connect(urls: tuple[str, ...] | list[str], name: str, on_closed: Callable[[], Awaitable[None]] | None = None,
                  connect_timeout: float = 2.0, initial_attempts: int = 1) -> NATS:
    """A connection that reconnects forever and notices a dead link within ~30 s."""

    async def _closed() -> None:
        if on_closed is not None:
            await on_closed()

    async def _error(exc: Exception) -> None:
        log.debug("nats: %s", exc)

    try:
        # The first connection gives up after ``initial_attempts`` tries per server (a clear error for
        # people); once connected, the client reconnects forever (daemons survive NATS restarts).
        nc = await nats.connect(
            servers=list(urls),
            name=name,
            max_reconnect_attempts=max(1, initial_attempts),
            reconnect_time_wait=1,
            ping_interval=10,
            max_outstanding_pings=3,
            connect_timeout=connect_timeout,
            allow_reconnect=True,
            closed_cb=_closed,
            error_cb=_error,
        )
    except Exception as exc:  # nats raises several unrelated types for "not reachable"
        where = ",".join(redact(url) for url in urls)
        raise BrokerUnavailable(f"cannot reach NATS at {where}: {exc or type(exc).__name__}") from exc
    nc.options["max_reconnect_attempts"] = -1
    return nc


@dataclass(frozen=True)
class StreamSettings:
    name: str = "LUMIA"
    replicas: int = 1
    max_age_s: float = 0.0
    max_bytes: int = 10 * 1024**3

    @classmethod
    def of(cls, settings: Settings) -> StreamSettings:
        """The stream part of the service configuration (``LUMIA_STREAM_*``)."""
        return cls(name=settings.stream, replicas=settings.stream_replicas,
                   max_age_s=settings.stream_max_age_s, max_bytes=settings.stream_max_bytes)


def stream_config(settings: StreamSettings) -> StreamConfig:
    return StreamConfig(
        name=settings.name,
        description="Lumia audit log: every run, log and model event",
        subjects=[ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_age=settings.max_age_s,
        max_bytes=settings.max_bytes,
        max_msg_size=1024 * 1024,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=settings.replicas,
        deny_delete=True,
        deny_purge=True,
        allow_direct=True,
    )


async def ensure_stream(js: JetStreamContext, settings: StreamSettings) -> None:
    """Create the stream, or bring an existing one to the configured limits (idempotent)."""
    wanted = stream_config(settings)
    try:
        await js.stream_info(settings.name)
    except NotFoundError:
        await js.add_stream(wanted)
        return
    await js.update_stream(wanted)


class Publisher:
    """Publishes events and returns only once JetStream has stored them."""

    def __init__(self, js: JetStreamContext, stream: str, timeout: float = 5.0, attempts: int = 3) -> None:
        self._js = js
        self._stream = stream
        self._timeout = timeout
        self._attempts = attempts

    @property
    def js(self) -> JetStreamContext:
        return self._js

    async def publish(self, event: Event) -> int:
        """Store ``event``; return its stream sequence. Raises ``BrokerUnavailable`` if it could not."""
        subject = subject_for(event)
        payload = encode(event)
        last: Exception | None = None
        for attempt in range(self._attempts):
            try:
                # A fresh dict each time: nats-py mutates the headers it is given.
                headers = {"Nats-Msg-Id": message_id(event)}
                ack = await self._js.publish(subject, payload, timeout=self._timeout, headers=headers)
                return ack.seq
            except (TimeoutError, NatsTimeout, NoRespondersError, ServiceUnavailableError,
                    OutboundBufferLimitError) as exc:
                # Retrying with the same Msg-Id is safe: a copy already stored is dropped as duplicate.
                last = exc
                await asyncio.sleep(0.2 * (attempt + 1))
        raise BrokerUnavailable(f"JetStream did not acknowledge {subject}: {last!r}") from last

    async def publish_many(self, events: list[Event], window: int = 1000) -> list[int]:
        """Store many events, pipelined (``publish_async`` in bounded windows); same guarantees as
        ``publish``: returns their sequences once all are acknowledged, or raises ``BrokerUnavailable``."""
        sequences: list[int] = []
        for start in range(0, len(events), window):
            chunk = events[start:start + window]
            futures = [await self._js.publish_async(subject_for(event), encode(event),
                                                    headers={"Nats-Msg-Id": message_id(event)})
                       for event in chunk]
            try:
                # publish_async futures have no timeout of their own (PITFALLS N1/N2): bound them.
                acks = await asyncio.wait_for(asyncio.gather(*futures), self._timeout)
            except Exception:  # a lost or refused ack: fall back to one confirmed publish each
                for future in futures:
                    future.cancel()
                sequences += [await self.publish(event) for event in chunk]
                continue
            sequences += [ack.seq for ack in acks]
        return sequences


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    subject: str
    stored_at: datetime
    event: Event | None
    problem: str | None = None


async def read_history(js: JetStreamContext, stream: str, subject: str = ALL, *, since: datetime | None = None,
                       start_seq: int | None = None, limit: int | None = None,
                       idle_timeout: float = 5.0) -> AsyncIterator[StoredEvent]:
    """Read stored events in order, without a durable consumer (history for people and rebuilds).

    An ordered push consumer streams the history (flow-controlled, recreated by the client on gaps);
    reading stops at the last match stored when the read began."""
    if since is not None:
        policy = {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": since}
    elif start_seq is not None:
        policy = {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": start_seq}
    else:
        policy = {"deliver_policy": DeliverPolicy.ALL}
    try:
        # The last stored match (wildcards allowed): nothing to read, or where to stop.
        last_seq = (await js.get_last_msg(stream, subject, direct=True)).seq
    except NotFoundError:
        return
    received: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        received.put_nowait(msg)

    try:
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True, cb=collect,
                                 config=ConsumerConfig(**policy))
    except BadRequestError as exc:
        raise ValueError(f"cannot read {subject}: {exc.description}") from None
    count = 0
    try:
        while limit is None or count < limit:
            try:
                msg = received.get_nowait() if not received.empty() else await asyncio.wait_for(
                    received.get(), idle_timeout)
            except TimeoutError:
                break
            meta = msg.metadata
            try:
                event: Event | None = decode(msg.data)
                problem = None
            except (UnknownEvent, MalformedEvent) as exc:
                event, problem = None, str(exc)
            yield StoredEvent(meta.sequence.stream, msg.subject, meta.timestamp, event, problem)
            count += 1
            if meta.num_pending == 0 or meta.sequence.stream >= last_seq:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def read_run(js: JetStreamContext, stream: str, run_id: str) -> list[StoredEvent]:
    """Everything a run caused, in stream order: its own subject, plus the model and training events
    that live on the subjects the backend subscribes to (``lumia.model…``, ``lumia.training…``)."""
    from events.model import RunRequested
    from events.subjects import run_subject, token

    own = [stored async for stored in read_history(js, stream, run_subject(run_id))]
    request = next((s.event for s in own if isinstance(s.event, RunRequested)), None)
    if request is None or not request.training:
        return own
    user = token(request.user_id, "user id")
    related: list[StoredEvent] = []
    for subject in (f"lumia.model.*.*.{user}.saved", f"lumia.training.finished.*.{user}"):
        async for stored in read_history(js, stream, subject, start_seq=own[0].seq):
            if getattr(stored.event, "run_id", None) == run_id:
                related.append(stored)
    return sorted(own + related, key=lambda stored: stored.seq)
