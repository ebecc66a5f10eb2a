"""The legacy cluster manager's endpoints, same paths, fields and success bodies (protocol.md §10).

The Java backend keeps working unchanged; what changed behind them: runs are requested through the
event stream, uploads are tied to their user and taken under a lock, every id is validated before any
path is built, and a delete stops the runs of that dockerId and game.
"""

from __future__ import annotations

import shutil
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response

import vault
from api.app import NotFound, UnsupportedMediaType, state_of
from api.uploads import validate_script
from events import DockerDeleted, LogWritten, ModelSaved, StopRequested
from events.subjects import token
from producers.submit import stable_run_id, submit_run

router = APIRouter(tags=["legacy"])

USER = "65a1f0c2e4b0a1b2c3d4e5f6"


class RunDockerBody(msgspec.Struct):
    game: str
    dockerId: int
    userId: str
    isTraining: bool = False
    uploadId: str | None = None


class DeleteBody(msgspec.Struct):
    game: str
    dockerId: int | None = None


class RestartBody(msgspec.Struct):
    dockerId: int
    game: str
    userId: str


_USER_ID = {"type": "string", "pattern": "^[0-9a-f]{24}$", "description": "24 lower-case hex characters"}
_GAME = {"type": "string", "description": "SNAKE, CONNECT4 or IMAGE (any case)"}
_DOCKER_ID = {"type": "integer", "minimum": 1}


def _json_doc(properties: dict[str, Any], required: list[str], example: dict[str, Any], *statuses: int,
              ok: Any = None, ok_text: str = "Done (legacy body `null`)") -> dict[str, Any]:
    """OpenAPI for a route that decodes its JSON body itself (msgspec, not pydantic)."""
    return {"openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": required, "properties": properties}, "example": example}}}},
        "responses": {200: {"description": ok_text, "content": {"application/json": {"example": ok}}},
                      **_legacy_errors(*statuses)}}


def _legacy_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    texts = {400: "No .py files found in uploads/", 401: "missing or wrong bearer token",
             404: "No stored script for dockerId 3, game snake, user " + USER,
             409: "2 scripts without an owner were waiting in uploads/, so none can be given to user … safely",
             413: "the script is larger than 262144 bytes", 415: "send a multipart/form-data body",
             422: "syntax error on line 3: invalid syntax",
             503: "event stream unavailable, try again: NATS is not connected"}
    return {status: {"description": texts[status].split(":")[0],
                     "content": {"application/json": {"example": {"detail": texts[status]}}}}
            for status in statuses}


async def _json_body(request: Request, kind: type[msgspec.Struct]) -> Any:
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except msgspec.ValidationError as exc:
        raise vault.InvalidInput(f"invalid body: {exc}") from None
    except msgspec.DecodeError:
        raise vault.InvalidInput("the body must be a JSON object") from None


def _multipart(request: Request) -> None:
    """A dependency: file routes take multipart/form-data only (415 instead of a list of missing fields)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("send a multipart/form-data body")


@router.post("/upload", summary="Upload a script (multipart `file`; optional `userId` ties it to that user)",
             dependencies=[Depends(_multipart)],
             responses={200: {"description": "Stored; pass `uploadId` to /api/rundocker, or rely on `userId`",
                              "content": {"application/json": {"example": {
                                  "uploadId": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "filename": "my_bot.py",
                                  "size": 1234, "sha256": "9f86d0…", "userId": USER}}}},
                        **_legacy_errors(401, 413, 415, 422)})
async def upload(request: Request, file: Annotated[UploadFile, File(description="the .py script (UTF-8)")],
                 userId: Annotated[str | None, Form(description="the owner; rundocker for another user never "
                                                                "takes this file")] = None) -> dict[str, object]:
    state = state_of(request)
    user = vault.user_id(userId) if userId else None
    data = await file.read(state.settings.max_script_bytes + 1)
    text = validate_script(data, file.filename or "", state.settings.max_script_bytes)
    stored = state.uploads.save(text, file.filename, user)
    return {"uploadId": stored.upload_id, "filename": stored.name, "size": stored.size, "sha256": stored.sha256,
            "userId": user}


@router.post("/api/rundocker", summary="Start a run of the user's uploaded script",
             **_json_doc({"game": _GAME, "dockerId": _DOCKER_ID, "userId": _USER_ID, "isTraining": {"type": "boolean"},
                          "uploadId": {"type": "string", "description": "optional: the id POST /upload returned"}},
                         ["game", "dockerId", "userId"],
                         {"game": "SNAKE", "dockerId": 3, "userId": USER, "isTraining": False},
                         400, 401, 409, 413, 422, 503))
async def rundocker(request: Request) -> None:
    """Takes the user's upload (see ``api.uploads``) and requests the run; 200 ``null`` after the ack."""
    state = state_of(request)
    body: RunDockerBody = await _json_body(request, RunDockerBody)
    user, game, docker = vault.user_id(body.userId), vault.game(body.game), vault.docker_id(body.dockerId)
    upload_id = token(body.uploadId, "uploadId") if body.uploadId is not None else None
    publisher = state.require_publisher()
    limit = state.settings.max_script_bytes
    async with state.uploads.claim(user, upload_id, max_bytes=limit) as (upload, script):
        text = validate_script(script, upload.name, limit)
        # The same upload retried after a 503 (put back unchanged) maps to the same run: stored once.
        run_id = stable_run_id("legacy", request.headers.get("idempotency-key") or "", user, game, docker,
                               body.isTraining, upload.upload_id, upload.stamp, vault.sha256(script))
        await submit_run(publisher, state.data, user_id=user, game=game, docker_id=docker, run_id=run_id,
                         training=body.isTraining, script=text, script_name=upload.name, source="legacy")
    return None


async def _delete_docker(request: Request, docker_id: int | None) -> None:
    state = state_of(request)
    body: DeleteBody = await _json_body(request, DeleteBody)
    docker = vault.docker_id(docker_id if docker_id is not None else body.dockerId)
    if docker_id is not None and body.dockerId is not None and vault.docker_id(body.dockerId) != docker:
        raise vault.InvalidInput(f"dockerId in the body ({body.dockerId}) differs from the path ({docker_id})")
    game = vault.game(body.game)
    publisher = state.require_publisher()
    reason = f"deleted by the backend (dockerId {docker}, game {game})"
    stopped: list[str] = []
    if state.runs is not None:
        for run in await state.runs.all():
            alive = run.status in ("requested", "running", "stopping")
            if alive and run.docker_id == docker and run.game == game:
                await publisher.publish(StopRequested(run_id=run.run_id, reason=reason))
                stopped.append(run.run_id)
    for folder in (state.data.drop_dir(docker, game), state.data.vault_dir(docker, game)):
        shutil.rmtree(folder, ignore_errors=True)
    # The record of the delete itself (an id per call: two deletes are two facts).
    await publisher.publish(DockerDeleted(docker_id=docker, game=game, stopped_runs=stopped,  # type: ignore[arg-type]
                                          reason=reason))


_DELETE_DOC = _json_doc({"dockerId": _DOCKER_ID, "game": _GAME}, ["game"], {"dockerId": 3, "game": "SNAKE"},
                        401, 413, 422, 503)


@router.delete("/api/rundocker/{dockerId}", summary="Stop the runs of a dockerId and game; remove its folders",
               **_DELETE_DOC)
async def delete_rundocker(request: Request, dockerId: int) -> None:
    """What the Java backend calls; it deletes its own records only on 200. Other games are untouched."""
    await _delete_docker(request, dockerId)


@router.delete("/api/delete/docker", summary="Legacy alias of DELETE /api/rundocker/{dockerId}", **_DELETE_DOC)
async def delete_docker(request: Request) -> None:
    await _delete_docker(request, None)


@router.post("/api/restartdocker", summary="Run the stored AI-Vault copy again, with its flag",
             **_json_doc({"dockerId": _DOCKER_ID, "game": _GAME, "userId": _USER_ID}, ["dockerId", "game", "userId"],
                         {"dockerId": 3, "game": "SNAKE", "userId": USER}, 401, 404, 413, 422, 503))
async def restartdocker(request: Request) -> None:
    state = state_of(request)
    body: RestartBody = await _json_body(request, RestartBody)
    user, game, docker = vault.user_id(body.userId), vault.game(body.game), vault.docker_id(body.dockerId)
    folder = state.data.vault_dir(docker, game)
    script_path, flag_path = folder / f"{user}_{game}.py", folder / f"{user}.txt"
    if not script_path.is_file():
        raise NotFound(f"No stored script for dockerId {docker}, game {game}, user {user}")
    training = flag_path.is_file() and flag_path.read_text(errors="replace").strip() == "{True}"
    limit = state.settings.max_script_bytes
    with script_path.open("rb") as handle:
        text = validate_script(handle.read(limit + 1), script_path.name, limit)
    await submit_run(state.require_publisher(), state.data, user_id=user, game=game, docker_id=docker,
                     training=training, script=text, script_name=script_path.name, source="restart",
                     keep_in_vault=False)


@router.post("/api/game_data", summary="Hand a game log over for delivery to the backend",
             dependencies=[Depends(_multipart)],
             responses={200: {"description": "Recorded; the forwarder delivers it",
                              "content": {"application/json": {"example": {
                                  "message": "Game data sent successfully"}}}},
                        **_legacy_errors(401, 413, 415, 422, 503)})
async def game_data(request: Request, file: Annotated[UploadFile, File(description="the game log (JSON)")],
                    userId: Annotated[str, Form()], game: Annotated[str, Form()]) -> dict[str, str]:
    from consumers.forwarder import InvalidLog, prepare_log

    state = state_of(request)
    user, game_name = vault.user_id(userId), vault.game(game)
    publisher = state.require_publisher()
    raw = await file.read()
    try:
        prepare_log(raw, user, game_name)
    except InvalidLog as exc:
        raise vault.InvalidInput(f"invalid game log: {exc}") from None
    except RecursionError:
        raise vault.InvalidInput("invalid game log: nested too deeply") from None
    path = state.data.log_path(user, game_name)
    # The file first, then the fact: an event never points at a log that is not there yet.
    vault.atomic_write(path, raw)
    await publisher.publish(LogWritten(user_id=user, game=game_name,  # type: ignore[arg-type]
                                       path=state.data.relative(path), size=len(raw), sha256=vault.sha256(raw)))
    return {"message": "Game data sent successfully"}


@router.put("/api/training_finished", summary="Announce a finished training (the forwarder tells the backend)",
            responses={200: {"description": "Recorded (legacy body `null`)",
                             "content": {"application/json": {"example": None}}},
                       **_legacy_errors(401, 422, 503)})
async def training_finished(request: Request, dockerId: Annotated[int, Form()], userId: Annotated[str, Form()],
                            gameName: Annotated[str, Form(description="IMAGE (any case)")]) -> None:
    state = state_of(request)
    user, game, docker = vault.user_id(userId), vault.game(gameName), vault.docker_id(dockerId)
    publisher = state.require_publisher()
    path = state.data.model_path(docker, game, user)
    content = path.read_bytes() if path.is_file() else b""
    if not content:
        raise NotFound("Model file not found")  # never tell the backend "trained" without a model
    await publisher.publish(ModelSaved(
        docker_id=docker, game=game, user_id=user, path=state.data.relative(path),  # type: ignore[arg-type]
        size=len(content), sha256=vault.sha256(content)))


@router.get("/api/getfile", summary="Download a trained model", response_class=FileResponse, response_model=None,
            responses={200: {"description": "`<userId>_<game>.pt`",
                             "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                 "format": "binary"}}}},
                       404: {"description": "Model file not found",
                             "content": {"application/json": {"example": {"detail": "Model file not found"}}}},
                       **_legacy_errors(401, 422)})
async def getfile(request: Request, userId: str, game: str, dockerId: int) -> Response:
    state = state_of(request)
    user, game_name, docker = vault.user_id(userId), vault.game(game), vault.docker_id(dockerId)
    path = state.data.model_path(docker, game_name, user)
    if not path.is_file():
        return JSONResponse({"detail": "Model file not found"}, status_code=404)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{user}_{game_name}.pt")
