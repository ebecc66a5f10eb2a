"""Container lifecycle: runs a requested script next to its game and records what happened.

``RunRequested`` belongs to this consumer (its failure surfaces as ``RunFailed``); ``StopRequested``
is served by a per-node consumer, since only the node running a sandbox can kill it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

import vault
from consumers.lifecycle.sandbox import TRAIN_DATASET_DIR, Runtime, SandboxJob, SandboxResult
from consumers.loop import ConsumerSpec, Reject
from events import LogWritten, ModelSaved, RunExited, RunFailed, RunRequested, RunStarted, StopRequested
from events.bus import Publisher
from events.ledger import FileLedger
from events.subjects import RUN_REQUESTED, RUN_STOP_REQUESTED, run_subject
from lumia.config import Settings
from vault import DataDir

log = logging.getLogger("lumia.lifecycle")


@dataclass(frozen=True)
class LifecycleDeps:
    runtime: Runtime
    publisher: Publisher
    js: JetStreamContext
    data: DataDir
    settings: Settings
    ledger: FileLedger


async def start_run(event: RunRequested, deps: LifecycleDeps) -> None:
    if await _has_event(deps, event.run_id, "exited") or await _has_event(deps, event.run_id, "failed"):
        return  # already done: a redelivery after a crash between publish and ack
    if await _has_event(deps, event.run_id, "stop_requested"):
        await deps.publisher.publish(RunFailed(run_id=event.run_id, kind="stopped", reason="stopped before start"))
        return
    try:
        job = build_job(event, deps.settings, deps.data)
    except (ValueError, OSError) as exc:
        await deps.publisher.publish(RunFailed(run_id=event.run_id, kind="invalid", reason=str(exc)))
        raise Reject(f"cannot run: {exc}") from None
    await deps.publisher.publish(RunStarted(run_id=event.run_id, node=deps.settings.node, runtime=deps.runtime.name,
                                            containers=[f"lumia-{event.run_id}-game", f"lumia-{event.run_id}-user"]
                                            if deps.runtime.name == "docker" else []))
    result = await deps.runtime.run(job)
    await record_result(event, job, result, deps)


async def record_result(event: RunRequested, job: SandboxJob, result: SandboxResult, deps: LifecycleDeps) -> None:
    """Publish the run's outcome, then store its outputs (log, model) and announce them."""
    if result.infrastructure_error and not result.stopped:
        await deps.publisher.publish(RunFailed(run_id=event.run_id, kind="infrastructure",
                                               reason=result.infrastructure_error))
        return
    game = result.game or {}
    reason = str(game.get("reason", ""))
    model_ok = bool(job.training and result.model and result.exit_code == 0)
    await deps.publisher.publish(RunExited(
        run_id=event.run_id,
        exit_code=result.exit_code,
        oom_killed=result.oom_killed,
        timed_out=result.timed_out or "timed out" in reason.lower() or "timeout" in reason.lower(),
        stopped=result.stopped,
        output_truncated=result.output_truncated,
        duration_s=result.duration_s,
        outcome=game.get("outcome") if game.get("outcome") in ("win", "lose", "error") else None,  # type: ignore[arg-type]
        score=_int_or_none(game.get("score")),
        moves=_int_or_none(game.get("moves")),
        reason=_training_reason(job, result) if job.training else reason,
        output_tail=result.output_tail[-4000:],
        model_saved=model_ok,
    ))
    if result.log is not None:
        await _store_log(event, result.log, deps)
    if model_ok and result.model is not None:
        path = deps.data.model_path(event.docker_id, event.game, event.user_id)
        digest = vault.sha256(result.model)
        await deps.ledger.record(deps.data.relative(path), digest)  # before the watcher can see it
        vault.atomic_write(path, result.model)
        await deps.publisher.publish(ModelSaved(
            run_id=event.run_id, docker_id=event.docker_id, game=event.game, user_id=event.user_id,
            path=deps.data.relative(path), size=len(result.model), sha256=digest,
        ))


async def stop_run(event: StopRequested, deps: LifecycleDeps) -> None:
    await deps.runtime.stop(event.run_id)


def build_job(event: RunRequested, settings: Settings, data: DataDir, *, dataset: Path | None = None,
              model: Path | None = None) -> SandboxJob:
    """What the sandbox needs: the script, and for the image game the model or the data set.

    The request is checked again here: events can reach the stream without the API (another
    publisher, a replay), and these ids become file names and sandbox paths."""
    vault.user_id(event.user_id)
    vault.game(event.game)
    vault.docker_id(event.docker_id)
    training = event.training and event.game == "image"  # legacy: other games are evaluated
    files: dict[str, bytes] = {}
    manifest = None
    if event.game == "image":
        from game_vault import images  # host-side helpers; imported lazily (Pillow)

        dataset = dataset or dataset_dir(settings, data, "train" if training else "eval")
        if training:
            for path in sorted(dataset.rglob("*")):
                if path.is_file() and path.suffix.lower() in (".png", ".jpg", ".jpeg"):
                    files[f"{TRAIN_DATASET_DIR}/{path.relative_to(dataset).as_posix()}"] = path.read_bytes()
        else:
            selected = images.select_images(dataset, seed=event.seed, count=20)
            for image in selected:
                files[image.path] = image.source.read_bytes()
            manifest = images.manifest_bytes(selected)
            model = model or data.model_path(event.docker_id, "image", event.user_id)
            if model.is_file():
                files["model.pt"] = model.read_bytes()
    return SandboxJob(
        run_id=event.run_id,
        user_id=event.user_id,
        game=event.game,
        docker_id=event.docker_id,
        training=training,
        seed=event.seed,
        script=event.script.encode("utf-8"),
        limits=settings.training_limits if training else settings.limits,
        files=files,
        manifest=manifest,
        game_delay_s=settings.game_delay_s,
    )


def dataset_dir(settings: Settings, data: DataDir, purpose: str) -> Path:
    """The image data set for ``purpose`` (``train`` or ``eval``), kept apart where possible.

    A configured set with ``train/`` and ``eval/`` sub-folders gives each purpose its own split;
    otherwise the folder serves both. The bundled set is generated once per purpose from its own
    seed, so evaluation images are never ones the script trained on."""
    configured = settings.image_dataset
    if configured is not None:
        if not configured.is_dir():
            raise ValueError(f"LUMIA_IMAGE_DATASET {configured} is not a folder")
        split = configured / purpose
        return split if split.is_dir() else configured
    from game_vault import images

    target = data.root / "datasets" / f"generated-{purpose}"
    if not (target / ".complete").exists():
        images.generate_dataset(target, seed=0 if purpose == "train" else 1, per_class=60 if purpose == "train" else 30)
        (target / ".complete").write_text("ok")
    return target


async def _store_log(event: RunRequested, log_bytes: bytes, deps: LifecycleDeps) -> None:
    """Keep the run's own copy (the next run of this user and game replaces the legacy file, not
    this), announce it, then update the legacy ``logs/<userId>/<game>.json``."""
    own = deps.data.run_log_path(event.run_id)
    vault.atomic_write(own, log_bytes)
    written = LogWritten(run_id=event.run_id, user_id=event.user_id, game=event.game,
                         path=deps.data.relative(own), size=len(log_bytes), sha256=vault.sha256(log_bytes),
                         outcome=_outcome_of(log_bytes))
    # Announce before the legacy file appears: the file watcher's event for it has the same id and is
    # dropped as a duplicate, so the run's own event (with its run id) is the one kept.
    await deps.publisher.publish(written)
    legacy = deps.data.log_path(event.user_id, event.game)
    await deps.ledger.record(deps.data.relative(legacy), written.sha256)  # the watcher: already announced
    vault.atomic_write(legacy, log_bytes)


def _outcome_of(log_bytes: bytes) -> str | None:
    import json

    try:
        message = json.loads(log_bytes).get("message")
    except (ValueError, AttributeError):
        return None
    return message if isinstance(message, str) else None


def _training_reason(job: SandboxJob, result: SandboxResult) -> str:
    if result.timed_out:
        return f"training stopped at its wall-clock limit of {job.limits.wall_s:g} s"
    if result.oom_killed:
        return f"training ran out of memory ({job.limits.memory_mb} MB)"
    if result.exit_code != 0:
        return f"training script exited with code {result.exit_code}"
    if not result.model:
        return "training finished but wrote no model at --model_path"
    return "model saved"


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _has_event(deps: LifecycleDeps, run_id: str, name: str) -> bool:
    try:
        await deps.js.get_last_msg(deps.settings.stream, run_subject(run_id, name))
    except NotFoundError:
        return False
    return True


def consumer_specs(deps: LifecycleDeps) -> list[ConsumerSpec]:
    async def _start(event: RunRequested) -> None:  # type: ignore[override]
        await start_run(event, deps)

    async def _stop(event: StopRequested) -> None:  # type: ignore[override]
        await stop_run(event, deps)

    return [
        ConsumerSpec(
            durable="lifecycle",
            filter_subjects=(RUN_REQUESTED,),
            handlers={RunRequested: _start},  # type: ignore[dict-item]
            max_concurrency=deps.settings.max_concurrent_runs,
            ack_wait_s=30.0,
            max_deliver=3,
            description="runs requested scripts in sandboxes",
        ),
        ConsumerSpec(
            durable=f"stopper-{deps.settings.node}",
            filter_subjects=(RUN_STOP_REQUESTED,),
            handlers={StopRequested: _stop},  # type: ignore[dict-item]
            max_concurrency=8,
            deliver_policy=DeliverPolicy.NEW,  # a stop only matters while its run may be alive
            description=f"kills sandboxes on node {deps.settings.node}",
        ),
    ]
