"""The one place that turns an event into its subject and its ``Nats-Msg-Id``.

Ids that go into a subject token are validated here, once: anything outside ``[A-Za-z0-9_-]{1,64}``
is refused with ``InvalidId`` instead of being mangled into a different subject.
"""

from __future__ import annotations

import re

from events.model import (
    BackendNotified,
    DeadLettered,
    DockerDeleted,
    Event,
    LogForwarded,
    LogForwardFailed,
    LogWritten,
    ModelSaved,
    RunEvent,
    SubmissionRejected,
    TrainingFinished,
)

ROOT = "lumia"
ALL = f"{ROOT}.>"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Filters used by the consumers; kept next to the builder so both move together.
RUN_REQUESTED = f"{ROOT}.run.*.requested"
RUN_STOP_REQUESTED = f"{ROOT}.run.*.stop_requested"
LOG_WRITTEN = (f"{ROOT}.run.*.log_written", f"{ROOT}.log.*.*.written")
MODEL_SAVED = f"{ROOT}.model.*.*.*.saved"
TRAINING_FINISHED = f"{ROOT}.training.finished.>"
DEAD_LETTERS = f"{ROOT}.dlq.>"


class InvalidId(ValueError):
    """An id that cannot be used as a subject token."""


def token(value: object, what: str = "id") -> str:
    text = str(value)
    if not _TOKEN.fullmatch(text):
        raise InvalidId(f"{what} {text[:80]!r} is not allowed: use 1-64 characters of A-Z a-z 0-9 _ -")
    return text


def run_subject(run_id: str, name: str = ">") -> str:
    return f"{ROOT}.run.{token(run_id, 'run id')}.{name}"


def subject_for(event: Event) -> str:
    match event:
        case LogWritten(run_id=None):
            return f"{ROOT}.log.{token(event.user_id, 'user id')}.{token(event.game, 'game')}.written"
        case LogWritten() | LogForwarded() | LogForwardFailed() | BackendNotified() if event.run_id:
            return run_subject(event.run_id, _short_name(event))
        case LogForwarded() | LogForwardFailed():
            return f"{ROOT}.log.{token(event.user_id, 'user id')}.{token(event.game, 'game')}.{_short_name(event)}"
        case BackendNotified():
            return f"{ROOT}.training.notified.{token(event.game, 'game')}.{token(event.user_id, 'user id')}"
        case RunEvent():
            return run_subject(event.run_id, event.name)
        case ModelSaved():
            return (
                f"{ROOT}.model.{token(event.docker_id, 'docker id')}.{token(event.game, 'game')}"
                f".{token(event.user_id, 'user id')}.saved"
            )
        case TrainingFinished():
            return f"{ROOT}.training.finished.{token(event.game, 'game')}.{token(event.user_id, 'user id')}"
        case SubmissionRejected():
            return f"{ROOT}.rejected.{token(event.source, 'source')}"
        case DockerDeleted():
            return f"{ROOT}.docker.{token(event.docker_id, 'docker id')}.{token(event.game, 'game')}.deleted"
        case DeadLettered():
            return f"{ROOT}.dlq.{token(event.consumer, 'consumer')}"
    raise TypeError(f"no subject for {type(event).__name__}")


def _short_name(event: Event) -> str:
    return {
        LogWritten: "log_written",
        LogForwarded: "log_forwarded",
        LogForwardFailed: "log_forward_failed",
        BackendNotified: "backend_notified",
    }[type(event)]


def message_id(event: Event) -> str:
    """The JetStream de-duplication id: the event's deterministic id."""
    return event.event_id
