"""Dead letters that no handler could record: messages that exhausted ``max_deliver`` without any
handler finishing (the process died or hung on every try).

JetStream announces those on ``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>``;
a small stream keeps the advisories durably, and this consumer turns each into a ``DeadLettered``
event with the original subject (the message itself stays in the audit stream). Messages the
consume loop gives up on itself are dead-lettered there directly, with the handler's reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from consumers.loop import ConsumerSpec
from events import DeadLettered
from events.bus import Publisher
from events.codec import MalformedEvent, UnknownEvent, decode


class MaxDeliveriesAdvisory(msgspec.Struct):
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int = 0


_advisory = msgspec.json.Decoder(MaxDeliveriesAdvisory)


def advisory_stream_name(stream: str) -> str:
    return f"{stream}_ADVISORIES"


def decode_advisory(data: bytes) -> MaxDeliveriesAdvisory:
    try:
        return _advisory.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise MalformedEvent(f"advisory: {exc}") from None


async def ensure_advisory_stream(js: JetStreamContext, stream: str, replicas: int = 1) -> None:
    config = StreamConfig(
        name=advisory_stream_name(stream),
        description=f"max-deliveries advisories of {stream}, turned into DeadLettered events",
        subjects=[f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.*"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=30 * 86400,
        num_replicas=replicas,
    )
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


@dataclass(frozen=True)
class DeadLetterDeps:
    js: JetStreamContext
    publisher: Publisher


async def record_max_deliveries(advisory: MaxDeliveriesAdvisory, deps: DeadLetterDeps) -> None:
    subject, run_id = "?", None
    try:
        original = await deps.js.get_msg(advisory.stream, seq=advisory.stream_seq)
        subject = original.subject
        run_id = getattr(decode(original.data), "run_id", None)
    except (NotFoundError, UnknownEvent, MalformedEvent):
        pass
    await deps.publisher.publish(DeadLettered(
        consumer=advisory.consumer, stream_seq=advisory.stream_seq, subject=subject, run_id=run_id,
        deliveries=advisory.deliveries,
        reason=f"delivered {advisory.deliveries} times and never acknowledged (handler crashed or hung)",
    ))


def consumer_specs(deps: DeadLetterDeps, stream: str) -> list[ConsumerSpec]:
    async def _record(advisory: MaxDeliveriesAdvisory) -> None:  # type: ignore[override]
        await record_max_deliveries(advisory, deps)

    return [ConsumerSpec(
        durable="deadletters",
        stream=advisory_stream_name(stream),
        filter_subjects=(f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.*",),
        handlers={MaxDeliveriesAdvisory: _record},  # type: ignore[dict-item]
        decoder=decode_advisory,  # type: ignore[arg-type]
        max_concurrency=4,
        description="records messages that exhausted max_deliver as DeadLettered events",
    )]
