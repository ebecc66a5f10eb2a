"""Every event of the system: frozen msgspec Structs named as facts, joined in one tagged union.

Evolution rules (old history must decode forever): a new field always has a default, a field's type
never changes, a wire name is never renamed. ``event_id`` is deterministic (derived from what the
event is about, see ``natural_id``) so that a handler that runs twice emits the same id and the
JetStream duplicate window drops the second copy.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar, Literal

import msgspec
from msgspec.structs import force_setattr

SCHEMA_VERSION = 1

Game = Literal["snake", "connect4", "image"]
GAMES: tuple[str, ...] = ("snake", "connect4", "image")
Outcome = Literal["win", "lose", "error"]
FailureKind = Literal["infrastructure", "user", "invalid", "stopped"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    return uuid.uuid4().hex


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every event carries. ``event_id`` defaults to the event's natural identity."""

    event_id: str = ""
    schema_version: int = SCHEMA_VERSION
    at: datetime = msgspec.field(default_factory=utc_now)

    name: ClassVar[str] = "event"

    def __post_init__(self) -> None:
        if not self.event_id:
            force_setattr(self, "event_id", self.natural_id())

    def natural_id(self) -> str:
        return uuid.uuid4().hex


class RunEvent(Event, frozen=True, kw_only=True):
    run_id: str

    def natural_id(self) -> str:
        # One fact of each kind per run: a repeated handler produces the same id.
        return f"{self.run_id}.{self.name}"


class RunRequested(RunEvent, frozen=True, kw_only=True, tag="run.requested"):
    name: ClassVar[str] = "requested"
    user_id: str
    game: Game
    docker_id: int = 0
    training: bool = False
    script_name: str
    script: str
    script_sha256: str
    seed: int = 0
    source: Literal["api", "legacy", "dropfolder", "restart"] = "api"
    restart_of: str | None = None


class RunStarted(RunEvent, frozen=True, kw_only=True, tag="run.started"):
    name: ClassVar[str] = "started"
    node: str
    runtime: Literal["docker", "process"]
    containers: list[str] = []


class RunExited(RunEvent, frozen=True, kw_only=True, tag="run.exited"):
    """The user's script ended (whatever the reason); ``outcome`` is the game's verdict, if any."""

    name: ClassVar[str] = "exited"
    exit_code: int | None = None
    oom_killed: bool = False
    timed_out: bool = False
    stopped: bool = False
    output_truncated: bool = False
    duration_s: float = 0.0
    outcome: Outcome | None = None
    score: int | None = None
    moves: int | None = None
    reason: str = ""
    output_tail: str = ""
    model_saved: bool = False


class RunFailed(RunEvent, frozen=True, kw_only=True, tag="run.failed"):
    """The platform could not run the script (``infrastructure``) or refused it (``invalid``)."""

    name: ClassVar[str] = "failed"
    kind: FailureKind
    reason: str


class StopRequested(RunEvent, frozen=True, kw_only=True, tag="run.stop_requested"):
    name: ClassVar[str] = "stop_requested"
    reason: str = "requested"


class RunRemoved(RunEvent, frozen=True, kw_only=True, tag="run.removed"):
    name: ClassVar[str] = "removed"
    containers: list[str] = []


class LogWritten(Event, frozen=True, kw_only=True, tag="log.written"):
    """A game log landed at ``path`` (relative to the data dir)."""

    run_id: str | None = None
    user_id: str
    game: Game
    path: str
    size: int
    sha256: str
    outcome: str | None = None

    def natural_id(self) -> str:
        return f"log.{self.user_id}.{self.game}.{self.sha256[:32]}"


class LogForwarded(Event, frozen=True, kw_only=True, tag="log.forwarded"):
    run_id: str | None = None
    user_id: str
    game: Game
    sha256: str
    status: int
    attempts: int = 1
    cause_id: str = ""

    def natural_id(self) -> str:
        return f"forwarded.{self.cause_id}"


class LogForwardFailed(Event, frozen=True, kw_only=True, tag="log.forward_failed"):
    run_id: str | None = None
    user_id: str
    game: Game
    sha256: str
    status: int | None = None
    reason: str
    attempts: int = 1
    cause_id: str = ""

    def natural_id(self) -> str:
        return f"forward_failed.{self.cause_id}"


class ModelSaved(Event, frozen=True, kw_only=True, tag="model.saved"):
    run_id: str | None = None
    docker_id: int
    game: Game
    user_id: str
    path: str
    size: int
    sha256: str
    training: bool = True

    def natural_id(self) -> str:
        return f"model.{self.docker_id}.{self.game}.{self.user_id}.{self.sha256[:32]}"


class BackendNotified(Event, frozen=True, kw_only=True, tag="backend.notified"):
    run_id: str | None = None
    docker_id: int
    game: Game
    user_id: str
    status: int
    cause_id: str = ""

    def natural_id(self) -> str:
        return f"notified.{self.cause_id}"


class TrainingFinished(Event, frozen=True, kw_only=True, tag="training.finished"):
    """Published for backends that subscribe to ``lumia.training.finished.>`` directly."""

    run_id: str | None = None
    docker_id: int
    game: Game
    user_id: str
    model_name: str
    size: int
    sha256: str
    cause_id: str = ""

    def natural_id(self) -> str:
        return f"training_finished.{self.cause_id}"


class SubmissionRejected(Event, frozen=True, kw_only=True, tag="submission.rejected"):
    source: Literal["api", "legacy", "dropfolder", "logs", "models"]
    reason: str
    path: str | None = None
    user_id: str | None = None
    game: str | None = None
    moved_to: str | None = None


class DockerDeleted(Event, frozen=True, kw_only=True, tag="docker.deleted"):
    """The backend deleted a (dockerId, game): its runs were asked to stop and its folders removed."""

    docker_id: int
    game: Game
    stopped_runs: list[str] = []
    reason: str = ""


class DeadLettered(Event, frozen=True, kw_only=True, tag="dead_lettered"):
    consumer: str
    stream_seq: int
    subject: str
    reason: str
    deliveries: int = 1
    run_id: str | None = None

    def natural_id(self) -> str:
        return f"dlq.{self.consumer}.{self.stream_seq}"


AnyEvent = (
    RunRequested
    | RunStarted
    | RunExited
    | RunFailed
    | StopRequested
    | RunRemoved
    | LogWritten
    | LogForwarded
    | LogForwardFailed
    | ModelSaved
    | BackendNotified
    | TrainingFinished
    | SubmissionRejected
    | DockerDeleted
    | DeadLettered
)

EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__  # type: ignore[attr-defined]


def event_type_tag(cls: type[Event]) -> str:
    return cls.__struct_config__.tag  # type: ignore[return-value]
