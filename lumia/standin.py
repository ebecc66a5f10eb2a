"""A stand-in for the Java backend: a real HTTP server that records what it receives.

It answers the two calls the cluster manager makes (``POST /api/game/upload`` and
``PUT /api/training/change-status``) like the backend does, and can fail on demand: answer a status
for a while, answer slowly, or hang. Used by the tests and by ``lumia demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from lumia.natsserver import free_port

BACKEND_LOG_KEYS = {"timestamp", "gameType", "logLevel", "message", "userId", "gameId", "gameStates", "id"}


@dataclass
class Fault:
    """Misbehave for the next ``count`` calls or until ``until`` (monotonic), whichever is set."""

    status: int | None = None
    delay_s: float = 0.0
    hang: bool = False
    message: str = "Service unavailable"
    until: float | None = None
    count: int | None = None

    def active(self) -> bool:
        if self.until is not None and time.monotonic() >= self.until:
            return False
        return self.count is None or self.count > 0


@dataclass
class Recorded:
    method: str
    path: str
    idempotency_key: str | None
    fields: dict[str, str]
    file_name: str | None = None
    document: Any = None
    status: int = 200
    at: float = field(default_factory=time.time)


class BackendStandIn:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.fault: Fault | None = None
        self.app = self._build()

    # -- programming faults ----------------------------------------------------------------------

    def fail(self, status: int = 503, *, seconds: float | None = None, count: int | None = None,
             message: str = "Service unavailable", delay_s: float = 0.0, hang: bool = False) -> None:
        until = time.monotonic() + seconds if seconds is not None else None
        self.fault = Fault(status=status, delay_s=delay_s, hang=hang, message=message, until=until, count=count)

    def heal(self) -> None:
        self.fault = None

    def uploads(self, user_id: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/api/game/upload" and r.status == 200
                and (user_id is None or r.fields.get("userId") == user_id)]

    def status_changes(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/api/training/change-status" and r.status == 200]

    async def _misbehave(self) -> Response | None:
        fault = self.fault
        if fault is None or not fault.active():
            return None
        if fault.count is not None:
            fault.count -= 1
        if fault.hang:
            await asyncio.sleep(3600)
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.status is None:
            return None
        return PlainTextResponse(fault.message, status_code=fault.status)

    def _build(self) -> FastAPI:
        app = FastAPI(title="Lumia backend stand-in")

        @app.get("/_requests")
        async def recorded() -> list[dict[str, Any]]:
            """What was received, for a stand-in running in another process (benchmarks)."""
            return [{"method": r.method, "path": r.path, "key": r.idempotency_key, "fields": r.fields,
                     "status": r.status, "at": r.at} for r in self.requests]

        @app.post("/api/game/upload")
        async def upload(request: Request) -> Response:
            form = await request.form()
            upload = form.get("file")
            fields = {k: str(v) for k, v in form.items() if k != "file"}
            record = Recorded("POST", "/api/game/upload", request.headers.get("idempotency-key"), fields)
            self.requests.append(record)
            if (answer := await self._misbehave()) is not None:
                record.status = answer.status_code
                return answer
            if upload is None or isinstance(upload, str):
                record.status = 400
                return PlainTextResponse("Le fichier est vide", status_code=400)
            record.file_name = upload.filename
            raw = await upload.read()
            if not raw:
                record.status = 400
                return PlainTextResponse("Le fichier est vide", status_code=400)
            if not fields.get("userId") or not fields.get("game"):
                record.status = 400
                return PlainTextResponse("UserId et game sont requis", status_code=400)
            try:
                document = json.loads(raw)
            except ValueError:
                record.status = 500
                return PlainTextResponse("Internal error", status_code=500)
            unknown = set(document) - BACKEND_LOG_KEYS if isinstance(document, dict) else {"<not an object>"}
            if unknown:
                record.status = 400
                return PlainTextResponse(f"Format de fichier JSON invalide : {sorted(unknown)}", status_code=400)
            record.document = document
            return PlainTextResponse("Log de jeu téléchargé avec succès")

        @app.put("/api/training/change-status")
        async def change_status(request: Request) -> Response:
            form = await request.form()
            fields = {k: str(v) for k, v in {**dict(request.query_params), **dict(form)}.items()}
            record = Recorded("PUT", "/api/training/change-status", request.headers.get("idempotency-key"), fields)
            self.requests.append(record)
            if (answer := await self._misbehave()) is not None:
                record.status = answer.status_code
                return answer
            return JSONResponse({"status": fields.get("status"), "userId": fields.get("userId")})

        return app


class StandInServer:
    """Runs a ``BackendStandIn`` on a free loopback port in a background thread (tests, demo)."""

    def __init__(self, port: int | None = None) -> None:
        self.backend = BackendStandIn()
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandInServer:
        config = uvicorn.Config(self.backend.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="backend-stand-in")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the backend stand-in did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(10)
        self._server = self._thread = None


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the backend stand-in until interrupted.")
    parser.add_argument("--port", type=int, default=8000)
    uvicorn.run(BackendStandIn().app, host="127.0.0.1", port=parser.parse_args().port, log_level="warning",
                access_log=False)
