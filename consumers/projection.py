"""Current state of every run: a pure fold over its events, stored in a KV bucket for the API.

``evolve(state, event)`` has no I/O; the consumer applies it and stores the state together with the
last applied stream sequence, and ``rebuild`` runs the same fold over the stream's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError, NotFoundError

from consumers.loop import ConsumerSpec, current_sequence
from events import (
    BackendNotified,
    Event,
    LogForwarded,
    LogForwardFailed,
    LogWritten,
    ModelSaved,
    RunExited,
    RunFailed,
    RunRemoved,
    RunRequested,
    RunStarted,
    StopRequested,
    TrainingFinished,
)
from events.bus import read_history
from events.model import EVENT_TYPES

BUCKET = "lumia_runs"
RunStatus = Literal["requested", "running", "stopping", "exited", "failed", "removed"]


class RunState(msgspec.Struct, kw_only=True):
    run_id: str
    status: RunStatus = "requested"
    user_id: str = ""
    game: str = ""
    docker_id: int = 0
    training: bool = False
    seed: int = 0
    source: str = ""
    script_name: str = ""
    script_sha256: str = ""
    requested_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    node: str | None = None
    outcome: str | None = None
    score: int | None = None
    moves: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    timed_out: bool = False
    stopped: bool = False
    output_truncated: bool = False
    duration_s: float | None = None
    reason: str = ""
    failure_kind: str | None = None
    log_path: str | None = None
    log_forwarded: bool = False
    log_forward_error: str | None = None
    model_saved: bool = False
    model_path: str | None = None
    backend_notified: bool = False
    training_finished: bool = False
    last_seq: int = 0


def evolve(state: RunState | None, event: Event) -> RunState | None:
    """The next state of a run after ``event``; ``None`` while the run is unknown."""
    if isinstance(event, RunRequested):
        return RunState(run_id=event.run_id, user_id=event.user_id, game=event.game, docker_id=event.docker_id,
                        training=event.training, seed=event.seed, source=event.source,
                        script_name=event.script_name, script_sha256=event.script_sha256,
                        requested_at=event.at)
    if state is None:
        return None
    changes: dict[str, object]
    match event:
        case RunStarted():
            changes = {"status": "running", "started_at": event.at, "node": event.node}
        case StopRequested():
            changes = {"status": "stopping"} if state.status in ("requested", "running") else {}
        case RunExited():
            changes = {"status": "exited", "ended_at": event.at, "outcome": event.outcome, "score": event.score,
                       "moves": event.moves, "exit_code": event.exit_code, "oom_killed": event.oom_killed,
                       "timed_out": event.timed_out, "stopped": event.stopped, "reason": event.reason,
                       "output_truncated": event.output_truncated, "duration_s": event.duration_s,
                       "model_saved": event.model_saved}
        case RunFailed():
            changes = {"status": "failed", "ended_at": event.at, "reason": event.reason,
                       "failure_kind": event.kind, "stopped": event.kind == "stopped"}
        case RunRemoved():
            changes = {"status": "removed"}
        case LogWritten():
            changes = {"log_path": event.path}
        case LogForwarded():
            changes = {"log_forwarded": True, "log_forward_error": None}
        case LogForwardFailed():
            changes = {"log_forward_error": event.reason}
        case ModelSaved():
            changes = {"model_path": event.path}
        case BackendNotified():
            changes = {"backend_notified": True}
        case TrainingFinished():
            changes = {"training_finished": True}
        case _:
            changes = {}
    return msgspec.structs.replace(state, **changes) if changes else state


def run_id_of(event: Event) -> str | None:
    return getattr(event, "run_id", None)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RunState)


@dataclass
class RunStore:
    """The KV bucket holding one ``RunState`` per run."""

    kv: object

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> RunStore:
        try:
            kv = await js.key_value(BUCKET)
        except (BucketNotFoundError, NotFoundError):
            kv = await js.create_key_value(KeyValueConfig(bucket=BUCKET, history=1, storage=StorageType.FILE,
                                                          replicas=replicas, description="run states"))
        return cls(kv)

    async def get(self, run_id: str) -> RunState | None:
        try:
            entry = await self.kv.get(run_id)  # type: ignore[attr-defined]
        except (KeyNotFoundError, NotFoundError):
            return None
        return _decoder.decode(entry.value) if entry.value else None

    async def put(self, state: RunState) -> None:
        await self.kv.put(state.run_id, _encoder.encode(state))  # type: ignore[attr-defined]

    async def all(self) -> list[RunState]:
        try:
            keys = await self.kv.keys()  # type: ignore[attr-defined]
        except NoKeysError:  # an empty bucket
            return []
        states = [await self.get(key) for key in keys]
        return [state for state in states if state is not None]


async def apply_event(store: RunStore, event: Event, seq: int) -> None:
    run_id = run_id_of(event)
    if not run_id:
        return
    current = await store.get(run_id)
    if current is not None and current.last_seq >= seq:
        return  # already applied: a redelivery
    nxt = evolve(current, event)
    if nxt is not None:
        await store.put(msgspec.structs.replace(nxt, last_seq=seq))


async def rebuild(js: JetStreamContext, stream: str) -> dict[str, RunState]:
    """Fold the whole stream again, with no side effect (``lumia projections rebuild``)."""
    states: dict[str, RunState] = {}
    async for stored in read_history(js, stream):
        if stored.event is None or not (run_id := run_id_of(stored.event)):
            continue
        nxt = evolve(states.get(run_id), stored.event)
        if nxt is not None:
            states[run_id] = msgspec.structs.replace(nxt, last_seq=stored.seq)
    return states


def consumer_specs(store: RunStore) -> list[ConsumerSpec]:
    async def _apply(event: Event) -> None:
        await apply_event(store, event, current_sequence())

    return [ConsumerSpec(
        durable="projection",
        filter_subjects=("lumia.run.>",),
        handlers=dict.fromkeys(EVENT_TYPES, _apply),
        max_concurrency=1,  # a fold is ordered
        confirm_ack=False,  # re-applying is harmless: states carry the last applied sequence
        max_deliver=50,
        description="folds run events into the lumia_runs KV bucket",
    )]
