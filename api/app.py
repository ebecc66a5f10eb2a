"""The FastAPI application: wiring, authentication, body limits and the one error table.

Edges translate and publish: routes validate, build an event, wait for the JetStream ack and answer.
They never run containers or call the backend themselves.

Errors raised anywhere below the routes are ours and are answered from ``ERROR_STATUS``::

    InvalidInput, InvalidId, ScriptRejected, msgspec errors   422  (the message states the rule)
    RecursionError (JSON nested too deeply)                   422
    ScriptTooLarge, and any body over the limit              413
    UnsupportedMediaType                                     415
    NoUpload                                                 400  (legacy text: No .py files found in uploads/)
    AmbiguousUpload                                          409
    NotFound                                                 404
    BrokerUnavailable, nats errors                           503  with Retry-After
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.uploads import AmbiguousUpload, NoUpload, ScriptRejected, ScriptTooLarge, UploadStore
from consumers.projection import RunStore
from events.bus import BrokerUnavailable, Publisher, StreamSettings, connect, ensure_stream
from events.subjects import InvalidId
from lumia.config import Settings
from vault import DataDir, InvalidInput

log = logging.getLogger("lumia.api")


class NotFound(LookupError):
    """A run, model or file that does not exist."""


class UnsupportedMediaType(ValueError):
    """A request body in a content type the route does not take."""


@dataclass
class ApiState:
    settings: Settings
    data: DataDir
    uploads: UploadStore
    nc: NATS | None = None
    js: JetStreamContext | None = None
    publisher: Publisher | None = None
    runs: RunStore | None = None
    metrics: dict[str, int] = field(default_factory=dict)

    def require_publisher(self) -> Publisher:
        if self.publisher is None or self.nc is None or not self.nc.is_connected:
            raise BrokerUnavailable("NATS is not connected")
        return self.publisher

    def require_js(self) -> JetStreamContext:
        if self.js is None or self.nc is None or not self.nc.is_connected:
            raise BrokerUnavailable("NATS is not connected")
        return self.js


def state_of(request: Request) -> ApiState:
    return request.app.state.lumia


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


# The one table from our errors to HTTP answers.
ERROR_STATUS: dict[type[Exception], int] = {
    InvalidInput: 422,
    InvalidId: 422,
    ScriptRejected: 422,
    msgspec.ValidationError: 422,
    msgspec.DecodeError: 422,
    RecursionError: 422,  # JSON nested thousands deep: msgspec and json give up by recursion
    ScriptTooLarge: 413,
    UnsupportedMediaType: 415,
    NoUpload: 400,
    AmbiguousUpload: 409,
    NotFound: 404,
    BrokerUnavailable: 503,
    NatsError: 503,  # a NATS call that failed mid-request (timeout, reconnecting): same as unavailable
}
RETRY_AFTER_S = "2"
GAME_LOG_BODY_LIMIT = 8 * 1024 * 1024


def _install_error_handlers(app: FastAPI) -> None:
    for error, status in ERROR_STATUS.items():
        headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None

        async def handler(_request: Request, exc: Exception, status: int = status,
                          headers: dict[str, str] | None = headers) -> JSONResponse:
            if isinstance(exc, RecursionError):
                detail = "the body is nested too deeply"
            elif status == 503:
                detail = (f"event stream unavailable ({exc or type(exc).__name__}). The request may or may not "
                          "have been recorded: retry it with the same Idempotency-Key and it is stored once")
            else:
                detail = str(exc)
            return _error(status, detail, headers)

        app.add_exception_handler(error, handler)


class BodyLimit:
    """Rejects bodies over ``limit`` bytes with 413 while they stream in.

    A declared ``Content-Length`` over the limit is refused before the app runs. A body that grows
    past the limit (chunked, or lying about its length) stops being read: the app gets a disconnect,
    whatever it answers or raises after that is dropped, and the client gets the 413. Multipart parts
    stay in memory (python-multipart spools to disk only above 1 MiB, and the limit is at most that
    by default), so nothing is left on disk.
    """

    def __init__(self, app: ASGIApp, limit: int, per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = limit
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.default)
        too_large = _error(413, f"request body larger than {limit} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.strip().isdigit() and int(value) > limit:
                await too_large(scope, receive, send)
                return
        seen = 0
        exceeded = False
        started = False

        async def limited() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await too_large(scope, receive, send)


class BearerAuth:
    """Every path but health checks needs ``Authorization: Bearer <LUMIA_API_TOKEN>`` when one is set."""

    OPEN = ("/healthz", "/readyz")

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or scope["path"] in self.OPEN:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
        if not hmac.compare_digest(given, self.token):
            response = _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _attach_nats(state: ApiState) -> None:
    """Connect to NATS, retrying until it answers; until then every call that needs it gets 503."""
    settings = state.settings
    delay = 1.0
    while True:
        nc = None
        try:
            nc = await connect(settings.nats_urls, name=f"lumia-api-{settings.node}", initial_attempts=2)
            js = nc.jetstream(timeout=5)
            await ensure_stream(js, StreamSettings.of(settings))
            state.runs = await RunStore.open(js, settings.stream_replicas)
        except Exception as exc:  # unreachable or not ready yet: keep trying
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
            log.error("%s; the API answers 503 until it can reach NATS", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)
            continue
        state.nc, state.js, state.publisher = nc, js, Publisher(js, settings.stream)
        return


def create_app(settings: Settings, *, connect_nats: bool = True) -> FastAPI:
    data = DataDir(settings.data_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ApiState = app.state.lumia
        data.ensure()
        attach = asyncio.create_task(_attach_nats(state)) if connect_nats else None
        if attach is not None:
            await asyncio.wait({attach}, timeout=10)  # usually connected here; else 503 until it is
        yield
        if attach is not None:
            attach.cancel()
        if state.nc is not None:
            with contextlib.suppress(Exception):
                await state.nc.drain()

    from api import legacy, v1  # the routers import app helpers; wired here, not at import time

    app = FastAPI(
        title="Lumia Cluster Manager",
        version="1.0",
        description="Runs Lumia user scripts in sandboxes. Legacy endpoints keep the old cluster manager's "
                    "paths and fields for the Java backend; /v1 is the versioned API.",
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry hooks cost about a third of a request here and export
        # nothing without a configured provider; GET /metrics is the project's metrics surface.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.lumia = ApiState(settings=settings, data=data, uploads=UploadStore(data.uploads))
    _install_error_handlers(app)
    app.include_router(legacy.router)
    app.include_router(v1.router)
    # Game logs are bigger than scripts; multipart parts above 1 MiB are spooled to an anonymous
    # (already unlinked) temporary file, so even then nothing is left on disk.
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes,
                       per_path={"/api/game_data": max(settings.max_upload_bytes, GAME_LOG_BODY_LIMIT)})
    app.add_middleware(BearerAuth, token=settings.api_token)
    return app


def check_bind(settings: Settings) -> None:
    """Refuse to listen beyond loopback without a token."""
    loopback = settings.api_host in ("127.0.0.1", "localhost", "::1") or settings.api_host.startswith("127.")
    if not loopback and not settings.api_token:
        raise InvalidInput(f"refusing to listen on {settings.api_host} without LUMIA_API_TOKEN")
