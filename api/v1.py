"""The versioned API: runs, their logs and events, health, readiness and metrics."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DeliverPolicy

import vault
from api.app import NotFound, state_of
from api.uploads import display_name, validate_script
from consumers.projection import RunState, evolve
from events import RunRequested, StopRequested
from events.bus import read_history
from events.codec import decode, to_builtins
from events.subjects import ALL, run_subject, token
from producers.submit import submit_run

router = APIRouter()


class RunBody(msgspec.Struct, kw_only=True):
    userId: str
    game: str
    script: str
    dockerId: int = 1
    training: bool = False
    seed: int | None = None
    scriptName: str = "script.py"


RUN_EXAMPLE = {"userId": "65a1f0c2e4b0a1b2c3d4e5f6", "game": "snake", "dockerId": 3,
               "script": "import socket\n...", "training": False, "seed": 7}


@router.post("/v1/runs", status_code=202, tags=["runs"], summary="Request a run",
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": {"type": "object", "required": ["userId", "game", "script"],
                                                 "properties": {k: {} for k in RUN_EXAMPLE}},
                                      "example": RUN_EXAMPLE},
                 "multipart/form-data": {"schema": {"type": "object", "required": ["file", "userId", "game"],
                                                    "properties": {"file": {"type": "string", "format": "binary"},
                                                                   "userId": {"type": "string"},
                                                                   "game": {"type": "string"},
                                                                   "dockerId": {"type": "integer"},
                                                                   "training": {"type": "boolean"},
                                                                   "seed": {"type": "integer"}}}}}}},
             responses={202: {"content": {"application/json": {"example": {
                 "runId": "3f2c…", "status": "requested", "links": {"self": "/v1/runs/3f2c…"}}}}}})
async def create_run(request: Request) -> dict[str, Any]:
    """Multipart (``file`` plus fields) or JSON with the script text. Answers 202 once JetStream has
    stored the request; the run id is in the body and in ``Location``."""
    state = state_of(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise vault.InvalidInput("multipart requests need a `file` part with the script")
        raw = await upload.read(state.settings.max_script_bytes + 1)
        name = upload.filename
        body = RunBody(userId=str(form.get("userId", "")), game=str(form.get("game", "")), script="",
                       dockerId=_form_int(form.get("dockerId"), "dockerId", 1),
                       training=str(form.get("training", "false")).lower() in ("1", "true", "yes"),
                       seed=_form_int(form.get("seed"), "seed", None), scriptName=display_name(name))
    elif content_type.startswith("application/json"):
        try:
            body = msgspec.json.decode(await request.body(), type=RunBody)
        except msgspec.ValidationError as exc:
            raise vault.InvalidInput(f"invalid body: {exc}") from None
        except msgspec.DecodeError:
            raise vault.InvalidInput("the body must be JSON") from None
        raw, name = body.script.encode("utf-8"), body.scriptName
    else:
        raise vault.InvalidInput("send the script as multipart/form-data or application/json")
    user, game, docker = vault.user_id(body.userId), vault.game(body.game), vault.docker_id(body.dockerId)
    text = validate_script(raw, name, state.settings.max_script_bytes)
    event = await submit_run(state.require_publisher(), state.data, user_id=user, game=game, docker_id=docker,
                             training=body.training, script=text, script_name=display_name(name),
                             source="api", seed=body.seed)
    state.metrics["runs_submitted"] = state.metrics.get("runs_submitted", 0) + 1
    return {"runId": event.run_id, "status": "requested", "seed": event.seed,
            "links": {"self": f"/v1/runs/{event.run_id}", "events": f"/v1/runs/{event.run_id}/events",
                      "log": f"/v1/runs/{event.run_id}/log"}}


def _form_int(value: object, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise vault.InvalidInput(f"{name} must be an integer") from None


async def _run_events(request: Request, run_id: str) -> list[tuple[int, datetime, Any]]:
    state = state_of(request)
    js = state.require_js()
    found = []
    async for stored in read_history(js, state.settings.stream, run_subject(token(run_id, "run id"))):
        found.append((stored.seq, stored.stored_at, stored.event))
    return found


async def load_run(request: Request, run_id: str) -> RunState:
    """The run's state folded straight from its events: always current, even before the projection."""
    current: RunState | None = None
    for seq, _at, event in await _run_events(request, run_id):
        if event is not None:
            current = evolve(current, event)
            if current is not None:
                current = msgspec.structs.replace(current, last_seq=seq)
    if current is None:
        raise NotFound(f"run {run_id} not found")
    return current


@router.get("/v1/runs/{run_id}", tags=["runs"], summary="A run's current state")
async def get_run(request: Request, run_id: str) -> dict[str, Any]:
    return msgspec.to_builtins(await load_run(request, run_id))


@router.get("/v1/runs", tags=["runs"], summary="Runs, newest first, filtered and paginated")
async def list_runs(request: Request, user: str | None = None, game: str | None = None,
                    status: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    state = state_of(request)
    state.require_js()
    runs = await state.runs.all() if state.runs is not None else []
    if user:
        runs = [run for run in runs if run.user_id == vault.user_id(user)]
    if game:
        runs = [run for run in runs if run.game == vault.game(game)]
    if status:
        runs = [run for run in runs if run.status == status]
    runs.sort(key=lambda run: run.requested_at or datetime.min, reverse=True)
    page = runs[offset: offset + limit]
    return {"total": len(runs), "offset": offset, "limit": limit, "runs": [msgspec.to_builtins(r) for r in page]}


@router.delete("/v1/runs/{run_id}", status_code=202, tags=["runs"], summary="Stop a run")
async def stop_run(request: Request, run_id: str) -> dict[str, str]:
    run = await load_run(request, run_id)
    await state_of(request).require_publisher().publish(StopRequested(run_id=run.run_id, reason="api"))
    return {"runId": run.run_id, "status": "stopping" if run.status in ("requested", "running") else run.status}


@router.post("/v1/runs/{run_id}/restart", status_code=202, tags=["runs"], summary="Run the same script again")
async def restart_run(request: Request, run_id: str) -> dict[str, Any]:
    state = state_of(request)
    original = next((event for _s, _a, event in await _run_events(request, run_id)
                     if isinstance(event, RunRequested)), None)
    if original is None:
        raise NotFound(f"run {run_id} not found")
    event = await submit_run(state.require_publisher(), state.data, user_id=original.user_id, game=original.game,
                             docker_id=original.docker_id, training=original.training, script=original.script,
                             script_name=original.script_name, source="restart", seed=original.seed,
                             restart_of=original.run_id, keep_in_vault=False)
    return {"runId": event.run_id, "status": "requested", "restartOf": original.run_id,
            "links": {"self": f"/v1/runs/{event.run_id}"}}


@router.get("/v1/runs/{run_id}/log", tags=["runs"], summary="The run's game log (legacy JSON)")
async def run_log(request: Request, run_id: str) -> Response:
    state = state_of(request)
    run = await load_run(request, run_id)
    if not run.log_path:
        raise NotFound(f"run {run_id} has no game log (yet)")
    path = state.data.root / run.log_path
    if not state.data.inside(path) or not path.is_file():
        raise NotFound(f"the log of run {run_id} is gone")
    return Response(path.read_bytes(), media_type="application/json")


@router.get("/v1/runs/{run_id}/events", tags=["events"], summary="The run's events in order")
async def run_events(request: Request, run_id: str) -> dict[str, Any]:
    events = await _run_events(request, run_id)
    if not events:
        raise NotFound(f"run {run_id} not found")
    return {"runId": run_id, "events": [_stored(seq, subject=None, event=event) for seq, _at, event in events]}


def _stored(seq: int, subject: str | None, event: Any) -> dict[str, Any]:
    body = to_builtins(event) if event is not None else None
    if body is not None:
        body.pop("script", None)  # scripts stay in the stream; listings keep them out
    return {"seq": seq, "subject": subject, "event": body}


@router.get("/v1/events", tags=["events"], summary="History, filterable by subject, run and time")
async def history(request: Request, subject: str | None = None, run: str | None = None,
                  since: datetime | None = None, limit: Annotated[int, Query(ge=1, le=5000)] = 100) -> dict:
    state = state_of(request)
    js = state.require_js()
    if run:
        subject = run_subject(token(run, "run id"))
    found = []
    try:
        async for stored in read_history(js, state.settings.stream, subject or ALL, since=since, limit=limit):
            found.append(_stored(stored.seq, stored.subject, stored.event))
    except ValueError as exc:
        raise vault.InvalidInput(str(exc)) from None
    return {"events": found}


@router.get("/v1/events/stream", tags=["events"], summary="Live events as server-sent events")
async def live(request: Request, subject: str = ALL) -> StreamingResponse:
    state = state_of(request)
    js = state.require_js()

    async def stream() -> Any:
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW)
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    msg = await sub.next_msg(timeout=5)
                except (TimeoutError, NatsTimeout):
                    yield ": keep-alive\n\n"
                    continue
                try:
                    body = json.dumps(_stored(msg.metadata.sequence.stream, msg.subject, decode(msg.data)))
                except ValueError:
                    continue
                yield f"event: lumia\ndata: {body}\n\n"
        finally:
            await sub.unsubscribe()

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/healthz", tags=["health"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], summary="NATS and the stream are reachable")
async def readyz(request: Request) -> Response:
    state = state_of(request)
    try:
        await state.require_js().stream_info(state.settings.stream)
    except Exception as exc:
        return Response(json.dumps({"status": "unavailable", "detail": str(exc)}), status_code=503,
                        media_type="application/json", headers={"Retry-After": "5"})
    return Response(json.dumps({"status": "ready"}), media_type="application/json")


@router.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    state = state_of(request)
    lines = ["# TYPE lumia_runs_submitted_total counter",
             f"lumia_runs_submitted_total {state.metrics.get('runs_submitted', 0)}"]
    if state.runs is not None and state.js is not None:
        runs = await state.runs.all()
        counts: dict[tuple[str, str], int] = {}
        forward_failures = 0
        for run in runs:
            key = (run.status, run.outcome or "none")
            counts[key] = counts.get(key, 0) + 1
            forward_failures += bool(run.log_forward_error)
        lines.append("# TYPE lumia_runs gauge")
        lines += [f'lumia_runs{{status="{s}",outcome="{o}"}} {n}' for (s, o), n in sorted(counts.items())]
        lines += ["# TYPE lumia_log_forward_failures gauge", f"lumia_log_forward_failures {forward_failures}"]
        lines.append("# TYPE lumia_consumer_pending gauge")
        try:
            for info in await state.js.consumers_info(state.settings.stream):
                lines.append(f'lumia_consumer_pending{{consumer="{info.name}"}} {info.num_pending}')
        except Exception:
            pass
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
