"""The versioned API: runs, their logs and events, health, readiness and metrics."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from starlette.datastructures import UploadFile

import vault
from api.app import NotFound, UnsupportedMediaType, state_of
from api.uploads import display_name, script_bytes, validate_script
from consumers.projection import RunState, evolve
from events import RunRequested, StopRequested
from events.bus import read_history, read_run
from events.codec import MalformedEvent, UnknownEvent, decode, to_builtins
from events.subjects import ALL, ROOT, run_subject, token
from producers.submit import stable_run_id, submit_run

router = APIRouter()

RUN_STATES = ("requested", "running", "stopping", "exited", "failed", "removed")
MAX_SEED = 2**63 - 1
_SUBJECT = re.compile(rf"{ROOT}(\.([A-Za-z0-9_-]{{1,64}}|\*))*(\.>)?")
USER_EXAMPLE = "65a1f0c2e4b0a1b2c3d4e5f6"
RUN_ID_EXAMPLE = "3f2c9a7e5b1d4c6f8a0b2d4e6f8a1c3e"


class RunBody(msgspec.Struct, kw_only=True):
    userId: str
    game: str
    script: str
    dockerId: int = 1
    training: bool = False
    seed: int | None = None
    scriptName: str = "script.py"


RUN_EXAMPLE = {"userId": USER_EXAMPLE, "game": "snake", "dockerId": 3,
               "script": "import socket\n\nsock = socket.create_connection(('localhost', 5001))\n",
               "training": False, "seed": 7, "scriptName": "my_bot.py"}
_RUN_PROPERTIES = {
    "userId": {"type": "string", "pattern": "^[0-9a-f]{24}$", "description": "24 lower-case hex characters"},
    "game": {"type": "string", "description": "snake, connect4 or image (any case)"},
    "dockerId": {"type": "integer", "minimum": 1, "default": 1},
    "training": {"type": "boolean", "default": False, "description": "only for image"},
    "seed": {"type": "integer", "minimum": 0, "description": "game seed; random when absent"},
}
_ACCEPTED = {"runId": RUN_ID_EXAMPLE, "status": "requested", "seed": 7,
             "links": {"self": f"/v1/runs/{RUN_ID_EXAMPLE}", "events": f"/v1/runs/{RUN_ID_EXAMPLE}/events",
                       "log": f"/v1/runs/{RUN_ID_EXAMPLE}/log"}}
_STATE_EXAMPLE = {"run_id": RUN_ID_EXAMPLE, "status": "exited", "user_id": USER_EXAMPLE, "game": "snake",
                  "docker_id": 3, "training": False, "seed": 7, "source": "api", "script_name": "my_bot.py",
                  "script_sha256": "9f86d0…", "requested_at": "2026-01-01T10:00:00Z",
                  "started_at": "2026-01-01T10:00:01Z", "ended_at": "2026-01-01T10:00:20Z", "outcome": "win",
                  "score": 12, "moves": 140, "exit_code": 0, "log_path": f"logs/{USER_EXAMPLE}/snake.json",
                  "log_forwarded": True, "last_seq": 42}
_EVENT_EXAMPLE = {"seq": 41, "subject": f"lumia.run.{RUN_ID_EXAMPLE}.exited",
                  "event": {"type": "run.exited", "run_id": RUN_ID_EXAMPLE, "exit_code": 0, "outcome": "win"}}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    texts = {400: "No .py files found in uploads/", 401: "missing or wrong bearer token",
             404: f"run {RUN_ID_EXAMPLE} not found", 409: "several scripts without an owner were waiting",
             413: "request body larger than 1048576 bytes", 415: "send the script as multipart/form-data or JSON",
             422: "userId must be 24 lower-case hexadecimal characters",
             503: "event stream unavailable, try again: NATS is not connected"}
    return {status: {"description": texts[status].split(":")[0],
                     "content": {"application/json": {"example": {"detail": texts[status]}}}}
            for status in statuses}


def _ok(example: Any, description: str = "Success") -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "content": {"application/json": {"example": example}}}}


@router.post("/v1/runs", status_code=202, tags=["runs"], summary="Request a run",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object", "required": ["userId", "game", "script"],
                                                 "properties": {**_RUN_PROPERTIES,
                                                                "script": {"type": "string"},
                                                                "scriptName": {"type": "string",
                                                                               "default": "script.py"}}},
                                      "example": RUN_EXAMPLE},
                 "multipart/form-data": {"schema": {"type": "object", "required": ["file", "userId", "game"],
                                                    "properties": {"file": {"type": "string", "format": "binary"},
                                                                   **_RUN_PROPERTIES}}}}}},
             responses={202: {"description": "Stored in JetStream; the run will start",
                              "headers": {"Location": {"schema": {"type": "string"},
                                                       "description": "/v1/runs/{runId}"}},
                              "content": {"application/json": {"example": _ACCEPTED}}},
                        **_errors(401, 413, 415, 422, 503)})
async def create_run(request: Request) -> JSONResponse:
    """Multipart (``file`` plus fields) or JSON with the script text. Answers 202 once JetStream has
    stored the request; the run id is in the body and in ``Location``."""
    state = state_of(request)
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise vault.InvalidInput("multipart requests need a `file` part with the script")
        raw = await upload.read(state.settings.max_script_bytes + 1)
        name = upload.filename
        body = RunBody(userId=_form_text(form.get("userId")), game=_form_text(form.get("game")), script="",
                       dockerId=_form_int(form.get("dockerId"), "dockerId", 1),
                       training=_form_bool(form.get("training"), "training"),
                       seed=_form_int(form.get("seed"), "seed", None), scriptName=display_name(name))
    elif content_type.startswith("application/json"):
        try:
            body = _run_body.decode(await request.body())
        except msgspec.ValidationError as exc:
            raise vault.InvalidInput(f"invalid body: {exc}") from None
        except msgspec.DecodeError:
            raise vault.InvalidInput("the body must be a JSON object") from None
        raw, name = script_bytes(body.script), body.scriptName
    else:
        raise UnsupportedMediaType("send the script as multipart/form-data (file) or application/json (script)")
    user, game, docker = vault.user_id(body.userId), vault.game(body.game), vault.docker_id(body.dockerId)
    if body.seed is not None and not 0 <= body.seed <= MAX_SEED:
        raise vault.InvalidInput(f"seed must be an integer from 0 to {MAX_SEED}")
    text = validate_script(raw, name, state.settings.max_script_bytes)
    # No AI-Vault copy: that folder belongs to the Java backend's dockerIds; /v1 restarts read the stream.
    key = request.headers.get("idempotency-key")
    # With an Idempotency-Key a retried request (say after a 503) is the same run, stored once.
    run_id = stable_run_id("v1", user, key, vault.sha256(raw)) if key else None
    event = await submit_run(state.require_publisher(), state.data, user_id=user, game=game, docker_id=docker,
                             training=body.training, script=text, script_name=display_name(name),
                             source="api", seed=body.seed, keep_in_vault=False, run_id=run_id)
    state.metrics["runs_submitted"] = state.metrics.get("runs_submitted", 0) + 1
    location = f"/v1/runs/{event.run_id}"
    return JSONResponse({"runId": event.run_id, "status": "requested", "seed": event.seed,
                         "links": {"self": location, "events": f"{location}/events", "log": f"{location}/log"}},
                        status_code=202, headers={"Location": location})


_run_body = msgspec.json.Decoder(RunBody)


def _form_bool(value: object, name: str) -> bool:
    text = _form_text(value).strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise vault.InvalidInput(f"{name} must be true or false")


def _form_text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _form_int(value: object, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise vault.InvalidInput(f"{name} must be an integer") from None


def _subject_filter(subject: str) -> str:
    if len(subject) > 300 or not _SUBJECT.fullmatch(subject):
        raise vault.InvalidInput("subject must start with lumia and be made of tokens of A-Z a-z 0-9 _ - or *, "
                                 "optionally ending in .>, e.g. lumia.run.*.exited or lumia.>")
    return subject


async def _history(js: JetStreamContext, stream: str, subject: str, *, since: datetime | None = None,
                   limit: int | None = None) -> AsyncIterator[tuple[int, str, datetime, Any]]:
    """Stored events on ``subject`` in order; an event of a newer type shows as ``None``, never a 500."""
    try:
        async for stored in read_history(js, stream, subject, since=since, limit=limit):
            yield stored.seq, stored.subject, stored.stored_at, stored.event
    except ValueError as exc:
        raise vault.InvalidInput(str(exc)) from None


async def _run_events(request: Request, run_id: str) -> list[tuple[int, str, Any]]:
    state = state_of(request)
    token(run_id, "run id")
    return [(stored.seq, stored.subject, stored.event)
            for stored in await read_run(state.require_js(), state.settings.stream, run_id)]


async def load_run(request: Request, run_id: str) -> RunState:
    """The run's state folded straight from its events: always current, even before the projection."""
    current: RunState | None = None
    for seq, _subject, event in await _run_events(request, run_id):
        if event is not None:
            current = evolve(current, event)
            if current is not None:
                current = msgspec.structs.replace(current, last_seq=seq)
    if current is None:
        raise NotFound(f"run {run_id} not found")
    return current


@router.get("/v1/runs/{run_id}", tags=["runs"], summary="A run's current state",
            responses={**_ok(_STATE_EXAMPLE), **_errors(401, 404, 422, 503)})
async def get_run(request: Request, run_id: str) -> dict[str, Any]:
    return msgspec.to_builtins(await load_run(request, run_id))


@router.get("/v1/runs", tags=["runs"], summary="Runs, newest first, filtered and paginated",
            responses={**_ok({"total": 1, "offset": 0, "limit": 50, "runs": [_STATE_EXAMPLE]}),
                       **_errors(401, 422, 503)})
async def list_runs(request: Request,
                    user: Annotated[str | None, Query(description="userId", examples=[USER_EXAMPLE])] = None,
                    game: Annotated[str | None, Query(description="snake, connect4 or image")] = None,
                    state: Annotated[str | None, Query(description=f"one of {', '.join(RUN_STATES)}")] = None,
                    status: Annotated[str | None, Query(description="alias of state")] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    """From the run-state projection (it follows the stream within milliseconds)."""
    api = state_of(request)
    wanted_user = vault.user_id(user) if user else None
    wanted_game = vault.game(game) if game else None
    wanted_state = state or status
    if wanted_state and wanted_state not in RUN_STATES:
        raise vault.InvalidInput(f"state must be one of {', '.join(RUN_STATES)}")
    api.require_js()
    runs = await api.runs.all() if api.runs is not None else []
    runs = [run for run in runs if (wanted_user is None or run.user_id == wanted_user)
            and (wanted_game is None or run.game == wanted_game)
            and (not wanted_state or run.status == wanted_state)]
    runs.sort(key=lambda run: (run.requested_at.timestamp() if run.requested_at else 0.0, run.run_id), reverse=True)
    page = runs[offset: offset + limit]
    return {"total": len(runs), "offset": offset, "limit": limit, "runs": [msgspec.to_builtins(r) for r in page]}


@router.delete("/v1/runs/{run_id}", status_code=202, tags=["runs"], summary="Stop a run",
               responses={202: {"description": "Stop requested",
                                "content": {"application/json": {"example": {"runId": RUN_ID_EXAMPLE,
                                                                             "status": "stopping"}}}},
                          **_errors(401, 404, 422, 503)})
async def stop_run(request: Request, run_id: str) -> dict[str, str]:
    run = await load_run(request, run_id)
    alive = run.status in ("requested", "running", "stopping")
    if alive:
        await state_of(request).require_publisher().publish(StopRequested(run_id=run.run_id, reason="api"))
    return {"runId": run.run_id, "status": "stopping" if alive else run.status}


@router.post("/v1/runs/{run_id}/restart", status_code=202, tags=["runs"], summary="Run the same script again",
             responses={202: {"description": "A new run was requested",
                              "content": {"application/json": {"example": {
                                  "runId": "5b1d…", "status": "requested", "restartOf": RUN_ID_EXAMPLE,
                                  "links": {"self": "/v1/runs/5b1d…"}}}}},
                        **_errors(401, 404, 422, 503)})
async def restart_run(request: Request, run_id: str) -> JSONResponse:
    state = state_of(request)
    original = next((event for _seq, _subject, event in await _run_events(request, run_id)
                     if isinstance(event, RunRequested)), None)
    if original is None:
        raise NotFound(f"run {run_id} not found")
    event = await submit_run(state.require_publisher(), state.data, user_id=original.user_id, game=original.game,
                             docker_id=original.docker_id, training=original.training, script=original.script,
                             script_name=original.script_name, source="restart", seed=original.seed,
                             restart_of=original.run_id, keep_in_vault=False)
    location = f"/v1/runs/{event.run_id}"
    return JSONResponse({"runId": event.run_id, "status": "requested", "restartOf": original.run_id,
                         "links": {"self": location}}, status_code=202, headers={"Location": location})


@router.get("/v1/runs/{run_id}/log", tags=["runs"], summary="The run's game log (legacy JSON, protocol.md §5)",
            responses={**_ok({"timestamp": "2026-01-01T10:00:20Z", "gameType": "snake", "userId": USER_EXAMPLE,
                              "gameId": "…", "message": "win", "gameStates": []}, "The game log"),
                       **_errors(401, 404, 422, 503)})
async def run_log(request: Request, run_id: str) -> Response:
    state = state_of(request)
    run = await load_run(request, run_id)
    if not run.log_path:
        raise NotFound(f"run {run_id} has no game log (yet)")
    path = state.data.root / run.log_path
    if not state.data.inside(path) or not path.is_file():
        raise NotFound(f"the log of run {run_id} is gone")
    return Response(path.read_bytes(), media_type="application/json")


@router.get("/v1/runs/{run_id}/events", tags=["events"], summary="The run's events in order",
            responses={**_ok({"runId": RUN_ID_EXAMPLE, "events": [_EVENT_EXAMPLE]}), **_errors(401, 404, 422, 503)})
async def run_events(request: Request, run_id: str) -> dict[str, Any]:
    events = await _run_events(request, run_id)
    if not events:
        raise NotFound(f"run {run_id} not found")
    return {"runId": run_id, "events": [_stored(seq, subject, event) for seq, subject, event in events]}


def _stored(seq: int, subject: str | None, event: Any) -> dict[str, Any]:
    body = to_builtins(event) if event is not None else None
    if body is not None:
        body.pop("script", None)  # scripts stay in the stream; listings keep them out
    return {"seq": seq, "subject": subject, "event": body}


@router.get("/v1/events", tags=["events"], summary="History, filterable by subject, run and time",
            responses={**_ok({"events": [_EVENT_EXAMPLE]}), **_errors(401, 422, 503)})
async def history(request: Request,
                  subject: Annotated[str | None, Query(description="NATS subject filter", examples=["lumia.run.>"])]
                  = None,
                  run: Annotated[str | None, Query(description="a run id (overrides subject)")] = None,
                  since: Annotated[datetime | None, Query(description="ISO 8601 time")] = None,
                  limit: Annotated[int, Query(ge=1, le=5000)] = 100) -> dict[str, Any]:
    state = state_of(request)
    chosen = run_subject(token(run, "run id")) if run else _subject_filter(subject or ALL)
    found = [_stored(seq, subj, event) async for seq, subj, _at, event
             in _history(state.require_js(), state.settings.stream, chosen, since=since, limit=limit)]
    return {"events": found}


@router.get("/v1/events/stream", tags=["events"], summary="Live events as server-sent events",
            response_class=StreamingResponse,
            responses={200: {"description": "`text/event-stream`: one `event: lumia` per stored event",
                             "content": {"text/event-stream": {"example": (
                                 f"event: lumia\nid: 41\ndata: {json.dumps(_EVENT_EXAMPLE)}\n\n")}}},
                       **_errors(401, 422, 503)})
async def live(request: Request,
               subject: Annotated[str, Query(description="NATS subject filter")] = ALL,
               run: Annotated[str | None, Query(description="a run id (overrides subject)")] = None,
               ) -> StreamingResponse:
    state = state_of(request)
    chosen = run_subject(token(run, "run id")) if run else _subject_filter(subject)
    js = state.require_js()

    async def stream() -> AsyncIterator[str]:
        sub = await js.subscribe(chosen, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW)
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    msg = await sub.next_msg(timeout=5)
                except (TimeoutError, NatsTimeout):
                    yield ": keep-alive\n\n"
                    continue
                try:
                    event = decode(msg.data)
                except (UnknownEvent, MalformedEvent):
                    event = None
                seq = msg.metadata.sequence.stream
                yield f"event: lumia\nid: {seq}\ndata: {json.dumps(_stored(seq, msg.subject, event))}\n\n"
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may be gone already
                pass

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/healthz", tags=["health"], summary="The process is alive", responses=_ok({"status": "ok"}))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], summary="NATS and the stream are reachable",
            responses={**_ok({"status": "ready"}),
                       503: {"description": "Not ready", "content": {"application/json": {"example": {
                           "status": "unavailable", "detail": "NATS is not connected"}}}}})
async def readyz(request: Request) -> JSONResponse:
    state = state_of(request)
    try:
        await state.require_js().stream_info(state.settings.stream)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "detail": str(exc) or type(exc).__name__}, status_code=503,
                            headers={"Retry-After": "2"})
    return JSONResponse({"status": "ready"})


LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@router.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=PlainTextResponse,
            responses={200: {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {
                "example": 'lumia_runs{status="exited",outcome="win"} 3\n'
                           'lumia_consumer_pending{consumer="lifecycle"} 0\n'}}}})
async def metrics(request: Request) -> PlainTextResponse:
    state = state_of(request)
    lines = ["# HELP lumia_runs_submitted_total Runs accepted by POST /v1/runs in this process.",
             "# TYPE lumia_runs_submitted_total counter",
             f"lumia_runs_submitted_total {state.metrics.get('runs_submitted', 0)}"]
    if state.runs is not None and state.js is not None and state.nc is not None and state.nc.is_connected:
        runs = await state.runs.all()
        counts: dict[tuple[str, str], int] = {}
        forward_failures = 0
        latencies: list[float] = []
        for run in runs:
            key = (run.status, run.outcome or "none")
            counts[key] = counts.get(key, 0) + 1
            forward_failures += bool(run.log_forward_error)
            if run.started_at is not None and run.requested_at is not None:
                latencies.append(max(0.0, (run.started_at - run.requested_at).total_seconds()))
        lines += ["# HELP lumia_runs Runs by status and outcome (from the run-state projection).",
                  "# TYPE lumia_runs gauge"]
        lines += [f'lumia_runs{{status="{s}",outcome="{o}"}} {n}' for (s, o), n in sorted(counts.items())]
        lines += ["# HELP lumia_log_forward_failures Runs whose game log the backend has not accepted.",
                  "# TYPE lumia_log_forward_failures gauge", f"lumia_log_forward_failures {forward_failures}"]
        lines += ["# HELP lumia_container_start_latency_seconds From RunRequested to RunStarted.",
                  "# TYPE lumia_container_start_latency_seconds histogram"]
        for bound in LATENCY_BUCKETS:
            lines.append(f'lumia_container_start_latency_seconds_bucket{{le="{bound}"}} '
                         f"{sum(1 for value in latencies if value <= bound)}")
        lines += [f'lumia_container_start_latency_seconds_bucket{{le="+Inf"}} {len(latencies)}',
                  f"lumia_container_start_latency_seconds_sum {sum(latencies):.6f}",
                  f"lumia_container_start_latency_seconds_count {len(latencies)}"]
        lines += ["# HELP lumia_consumer_pending Messages not yet delivered to each durable consumer.",
                  "# TYPE lumia_consumer_pending gauge"]
        try:
            for info in await state.js.consumers_info(state.settings.stream):
                if info.config.durable_name:
                    lines.append(f'lumia_consumer_pending{{consumer="{info.name}"}} {info.num_pending}')
        except Exception:  # metrics never fail the scrape
            pass
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
