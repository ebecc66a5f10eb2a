"""Readable one-line descriptions of stored events, for ``lumia events`` and ``lumia demo``."""

from __future__ import annotations

from events import (
    BackendNotified,
    DeadLettered,
    DockerDeleted,
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
    SubmissionRejected,
    TrainingFinished,
)
from events.bus import StoredEvent


def describe(event: Event) -> str:
    match event:
        case RunRequested():
            mode = "training" if event.training else "evaluation"
            return (f"requested   {event.game} {mode} for user {event.user_id} (dockerId {event.docker_id}, "
                    f"seed {event.seed}, script {event.script_name}, {len(event.script)} chars, via {event.source})")
        case RunStarted():
            return f"started     on {event.node} ({event.runtime})"
        case RunExited():
            verdict = event.outcome or "no verdict"
            flags = [name for name in ("timed_out", "oom_killed", "stopped", "output_truncated")
                     if getattr(event, name)]
            score = f", score {event.score}" if event.score is not None else ""
            moves = f", {event.moves} moves" if event.moves is not None else ""
            extra = f" [{', '.join(flags)}]" if flags else ""
            reason = f" - {event.reason}" if event.reason else ""
            return (f"exited      {verdict}{score}{moves}, exit code {event.exit_code}, "
                    f"{event.duration_s:.1f} s{extra}{reason}")
        case RunFailed():
            return f"failed      ({event.kind}) {event.reason}"
        case StopRequested():
            return f"stop        requested: {event.reason}"
        case RunRemoved():
            return "removed"
        case LogWritten():
            return f"log_written {event.path} ({event.size} bytes, outcome {event.outcome})"
        case LogForwarded():
            return f"log_forwarded to the backend: HTTP {event.status} after {event.attempts} attempt(s)"
        case LogForwardFailed():
            return f"log_forward_failed: {event.reason}"
        case ModelSaved():
            return f"model_saved {event.path} ({event.size} bytes, sha256 {event.sha256[:12]})"
        case BackendNotified():
            return f"backend_notified training status: HTTP {event.status}"
        case TrainingFinished():
            return f"training_finished {event.game} for {event.user_id} ({event.size} bytes)"
        case SubmissionRejected():
            return f"rejected    ({event.source}) {event.path or ''}: {event.reason}"
        case DockerDeleted():
            return f"deleted     dockerId {event.docker_id} {event.game}: stopped {len(event.stopped_runs)} run(s)"
        case DeadLettered():
            return f"dead_letter {event.consumer} seq {event.stream_seq} ({event.subject}): {event.reason}"
    return type(event).__name__


def line(stored: StoredEvent) -> str:
    when = stored.stored_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if stored.stored_at else "?"
    what = describe(stored.event) if stored.event is not None else f"(skipped: {stored.problem})"
    return f"{stored.seq:>7}  {when}  {what}"
