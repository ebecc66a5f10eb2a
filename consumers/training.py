"""Training finished: tell the backend once per training run, then publish ``training.finished``.

``PUT /api/training/change-status`` with form fields ``dockerId``, ``userId``, ``gameName`` (upper
case) and ``status=True``, as the legacy notifier did. Backends that prefer events subscribe to
``lumia.training.finished.>`` instead (see docs/events.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from consumers.backend import BackendClient, BackendUnavailable
from consumers.loop import ConsumerSpec, Reject, Retry
from events import BackendNotified, ModelSaved, TrainingFinished
from events.bus import Publisher
from events.codec import decode
from events.subjects import MODEL_SAVED, subject_for


@dataclass(frozen=True)
class TrainingDeps:
    backend: BackendClient
    publisher: Publisher
    js: JetStreamContext
    stream: str


async def _already_notified(deps: TrainingDeps, notice: BackendNotified) -> bool:
    try:
        last = await deps.js.get_last_msg(deps.stream, subject_for(notice))
    except NotFoundError:
        return False
    return getattr(decode(last.data), "cause_id", None) == notice.cause_id


async def notify_training_finished(event: ModelSaved, deps: TrainingDeps) -> None:
    if not event.training:
        return
    # One notification per training run; a model dropped without a run counts once per content.
    cause = event.run_id or event.event_id
    notice = BackendNotified(run_id=event.run_id, docker_id=event.docker_id, game=event.game,
                             user_id=event.user_id, status=0, cause_id=cause)
    if await _already_notified(deps, notice):
        return  # a later save of the same run's model: the backend was told once already
    try:
        answer = await deps.backend.change_training_status(event.docker_id, event.user_id, event.game,
                                                           key=f"training.{cause}")
    except BackendUnavailable as exc:
        raise Retry(f"backend unreachable: {exc}") from None
    if answer.retryable:
        raise Retry(f"backend answered {answer.status}")
    if answer.refused:
        raise Reject(f"backend refused the training status ({answer.status}): {answer.text[:500]}")
    await deps.publisher.publish(msgspec.structs.replace(notice, status=answer.status))
    await deps.publisher.publish(TrainingFinished(run_id=event.run_id, docker_id=event.docker_id, game=event.game,
                                                  user_id=event.user_id, model_name=PurePosixPath(event.path).name,
                                                  size=event.size, sha256=event.sha256, cause_id=cause))


def consumer_specs(deps: TrainingDeps) -> list[ConsumerSpec]:
    async def _notify(event: ModelSaved) -> None:  # type: ignore[override]
        await notify_training_finished(event, deps)

    return [ConsumerSpec(
        durable="training",
        filter_subjects=(MODEL_SAVED,),
        handlers={ModelSaved: _notify},  # type: ignore[dict-item]
        max_concurrency=1,  # sequential, so a second save of one run sees the first notification
        max_deliver=20,
        backoff_s=(0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0),
        description="notifies the backend when a training run saved its model",
    )]
