"""The legacy cluster manager's endpoints, same paths, fields and success bodies (protocol.md §10).

The Java backend keeps working unchanged; what changed behind them: runs are requested through the
event stream, uploads are taken under a lock, and every id is validated before any path is built.
"""

from __future__ import annotations

import shutil
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response

import vault
from api.app import NotFound, state_of
from api.uploads import validate_script
from events import LogWritten, ModelSaved, StopRequested
from producers.submit import submit_run

router = APIRouter(tags=["legacy"])


class RunDockerBody(msgspec.Struct):
    game: str
    dockerId: int
    userId: str
    isTraining: bool = False
    uploadId: str | None = None


class DeleteBody(msgspec.Struct):
    game: str | None = None
    dockerId: int | None = None


class RestartBody(msgspec.Struct):
    dockerId: int
    game: str
    userId: str


async def _json_body(request: Request, kind: type[msgspec.Struct], required: bool = True) -> Any:
    raw = await request.body()
    if not raw and not required:
        return kind()
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise vault.InvalidInput(f"invalid body: {exc}") from None
    except msgspec.DecodeError:
        raise vault.InvalidInput("the body must be JSON") from None


@router.post("/upload", summary="Upload a script (multipart field `file`, optional `userId` to tie it to a user)")
async def upload(request: Request, file: Annotated[UploadFile, File()],
                 userId: Annotated[str | None, Form()] = None) -> dict[str, object]:
    state = state_of(request)
    user = vault.user_id(userId) if userId else None
    data = await file.read(state.settings.max_script_bytes + 1)
    text = validate_script(data, file.filename, state.settings.max_script_bytes)
    stored = state.uploads.save(text, file.filename, user)
    return {"uploadId": stored.upload_id, "filename": stored.name, "size": stored.size, "sha256": stored.sha256,
            "userId": user}


@router.post("/api/rundocker", summary="Start a run of the user's uploaded script")
async def rundocker(request: Request) -> None:
    state = state_of(request)
    body: RunDockerBody = await _json_body(request, RunDockerBody)
    user, game, docker = vault.user_id(body.userId), vault.game(body.game), vault.docker_id(body.dockerId)
    publisher = state.require_publisher()
    async with state.uploads.claim(user, body.uploadId) as (upload, script):
        text = validate_script(script, upload.name, state.settings.max_script_bytes)
        await submit_run(publisher, state.data, user_id=user, game=game, docker_id=docker,
                         training=body.isTraining, script=text, script_name=upload.name, source="legacy")
    return None


async def _delete_docker(request: Request, docker_id: int | None) -> None:
    state = state_of(request)
    body: DeleteBody = await _json_body(request, DeleteBody, required=False)
    docker = vault.docker_id(docker_id if docker_id is not None else body.dockerId)
    game = vault.game(body.game) if body.game else None
    publisher = state.require_publisher()
    if state.runs is not None:
        for run in await state.runs.all():
            alive = run.status in ("requested", "running")
            if alive and run.docker_id == docker and (game is None or run.game == game):
                await publisher.publish(StopRequested(run_id=run.run_id, reason="deleted by the backend"))
    for game_name in [game] if game else list(vault.GAMES):
        for folder in (state.data.drop_dir(docker, game_name), state.data.vault_dir(docker, game_name)):
            shutil.rmtree(folder, ignore_errors=True)


@router.delete("/api/rundocker/{dockerId}", summary="Stop the runs of a dockerId and remove its folders")
async def delete_rundocker(request: Request, dockerId: int) -> None:
    await _delete_docker(request, dockerId)


@router.delete("/api/delete/docker", summary="Legacy alias of DELETE /api/rundocker/{dockerId}")
async def delete_docker(request: Request) -> None:
    await _delete_docker(request, None)


@router.post("/api/restartdocker", summary="Run the stored copy again")
async def restartdocker(request: Request) -> None:
    state = state_of(request)
    body: RestartBody = await _json_body(request, RestartBody)
    user, game, docker = vault.user_id(body.userId), vault.game(body.game), vault.docker_id(body.dockerId)
    folder = state.data.vault_dir(docker, game)
    script_path, flag_path = folder / f"{user}_{game}.py", folder / f"{user}.txt"
    if not script_path.is_file():
        raise NotFound(f"No stored script for dockerId {docker}, game {game}, user {user}")
    training = flag_path.is_file() and flag_path.read_text(errors="replace").strip() == "{True}"
    text = validate_script(script_path.read_bytes(), script_path.name, state.settings.max_script_bytes)
    await submit_run(state.require_publisher(), state.data, user_id=user, game=game, docker_id=docker,
                     training=training, script=text, script_name=script_path.name, source="restart",
                     keep_in_vault=False)


@router.post("/api/game_data", summary="Hand a game log over for delivery to the backend")
async def game_data(request: Request, file: Annotated[UploadFile, File()], userId: Annotated[str, Form()],
                    game: Annotated[str, Form()]) -> dict[str, str]:
    from consumers.forwarder import InvalidLog, prepare_log

    state = state_of(request)
    user, game_name = vault.user_id(userId), vault.game(game)
    raw = await file.read()
    try:
        prepare_log(raw, user, game_name)
    except InvalidLog as exc:
        raise vault.InvalidInput(f"invalid game log: {exc}") from None
    path = state.data.log_path(user, game_name)
    event = LogWritten(user_id=user, game=game_name, path=state.data.relative(path),  # type: ignore[arg-type]
                       size=len(raw), sha256=vault.sha256(raw))
    await state.require_publisher().publish(event)
    vault.atomic_write(path, raw)
    return {"message": "Game data sent successfully"}


@router.put("/api/training_finished", summary="Announce a finished training (the notifier tells the backend)")
async def training_finished(request: Request, dockerId: Annotated[int, Form()], userId: Annotated[str, Form()],
                            gameName: Annotated[str, Form()]) -> None:
    state = state_of(request)
    user, game, docker = vault.user_id(userId), vault.game(gameName), vault.docker_id(dockerId)
    path = state.data.model_path(docker, game, user)
    content = path.read_bytes() if path.is_file() else b""
    await state.require_publisher().publish(ModelSaved(
        docker_id=docker, game=game, user_id=user, path=state.data.relative(path),  # type: ignore[arg-type]
        size=len(content), sha256=vault.sha256(content)))


@router.get("/api/getfile", summary="Download a trained model", response_class=FileResponse, response_model=None,
            responses={404: {"description": "Model file not found"}})
async def getfile(request: Request, userId: str, game: str, dockerId: int) -> Response:
    state = state_of(request)
    user, game_name, docker = vault.user_id(userId), vault.game(game), vault.docker_id(dockerId)
    path = state.data.model_path(docker, game_name, user)
    if not path.is_file():
        return JSONResponse({"detail": "Model file not found"}, status_code=404)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{user}_{game_name}.pt")
