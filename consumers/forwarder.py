"""Game logs to the Java backend: ``POST /api/game/upload``, exactly as the legacy uploader did.

Network errors, timeouts, 5xx and 429 are retried with backoff (nak with delay, other logs keep
flowing); any other 4xx is final: recorded as ``LogForwardFailed`` and dead-lettered with the
backend's answer. The log file is never deleted. The event id travels as ``Idempotency-Key`` so the
backend (or the stand-in) can recognise a redelivery after a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from consumers.backend import BackendClient, BackendUnavailable
from consumers.loop import ConsumerSpec, Reject, Retry, delivery_attempt
from events import LogForwarded, LogForwardFailed, LogWritten
from events.bus import Publisher
from events.subjects import LOG_WRITTEN
from vault import DataDir, sha256

ENVELOPE_KEYS = ("timestamp", "gameType", "userId", "gameId", "message", "gameStates")
ALLOWED_KEYS = {*ENVELOPE_KEYS, "logLevel", "id"}


class InvalidLog(ValueError):
    """A log document the backend would refuse (checked against the legacy envelope)."""


def prepare_log(raw: bytes, user_id: str, game: str) -> bytes:
    """Validate the legacy envelope and put the real user id where legacy games wrote ``NA``."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise InvalidLog(f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidLog("not JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidLog("the log must be one JSON object")
    unknown = set(document) - ALLOWED_KEYS
    if unknown:
        raise InvalidLog(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    missing = [key for key in ENVELOPE_KEYS if key not in document]
    if missing:
        raise InvalidLog(f"missing keys: {', '.join(missing)}")
    if document["gameType"] != game:
        raise InvalidLog(f"gameType {document['gameType']!r} does not match game {game!r}")
    if document["message"] not in ("win", "lose", "error"):
        raise InvalidLog(f"message must be win, lose or error, not {document['message']!r}")
    if not isinstance(document["gameStates"], list):
        raise InvalidLog("gameStates must be a list")
    if document["userId"] in ("NA", "", None):
        document["userId"] = user_id
    elif document["userId"] != user_id:
        raise InvalidLog("userId in the log does not match the folder it was written to")
    return json.dumps(document, indent=4).encode()


@dataclass(frozen=True)
class ForwarderDeps:
    backend: BackendClient
    publisher: Publisher
    data: DataDir


async def forward_log(event: LogWritten, deps: ForwarderDeps) -> None:
    attempt = delivery_attempt()
    path = deps.data.root / event.path
    if not deps.data.inside(path):
        raise Reject(f"log path {event.path!r} leaves the data dir")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Retry(f"{event.path} is not there yet", after=1.0) from None
    if sha256(raw) != event.sha256:
        # The file was replaced by a newer log (which has its own event): this one is gone, say so.
        await _failed(event, deps, None, f"superseded: {event.path} now holds a newer log", attempt)
        return
    try:
        body = prepare_log(raw, event.user_id, event.game)
    except InvalidLog as exc:
        await _failed(event, deps, None, f"invalid log: {exc}", attempt)
        raise Reject(f"invalid log {event.path}: {exc}") from None
    try:
        answer = await deps.backend.upload_log(event.user_id, event.game, body, key=event.event_id)
    except BackendUnavailable as exc:
        raise Retry(f"backend unreachable: {exc}") from None
    if answer.retryable:
        raise Retry(f"backend answered {answer.status}: {answer.text[:200]}")
    if answer.refused:
        reason = f"backend refused the log ({answer.status}): {answer.text[:500]}"
        await _failed(event, deps, answer.status, reason, attempt)
        raise Reject(reason)
    await deps.publisher.publish(LogForwarded(run_id=event.run_id, user_id=event.user_id, game=event.game,
                                              sha256=event.sha256, status=answer.status,
                                              attempts=attempt, cause_id=event.event_id))


async def _failed(event: LogWritten, deps: ForwarderDeps, status: int | None, reason: str, attempt: int) -> None:
    await deps.publisher.publish(LogForwardFailed(run_id=event.run_id, user_id=event.user_id, game=event.game,
                                                  sha256=event.sha256, status=status, reason=reason,
                                                  attempts=attempt, cause_id=event.event_id))


def consumer_specs(deps: ForwarderDeps) -> list[ConsumerSpec]:
    async def _forward(event: LogWritten) -> None:  # type: ignore[override]
        await forward_log(event, deps)

    return [ConsumerSpec(
        durable="forwarder",
        filter_subjects=LOG_WRITTEN,
        handlers={LogWritten: _forward},  # type: ignore[dict-item]
        max_concurrency=32,
        ack_wait_s=30.0,
        # About 50 minutes of retries with at most ~15 s between tries, so a recovered backend
        # gets its logs quickly; after that the log is dead-lettered and `lumia dlq retry` re-drives it.
        max_deliver=200,
        backoff_s=(0.5, 1.0, 2.0, 4.0, 8.0, 15.0),
        description="forwards game logs to the Java backend",
    )]
