"""Settings: read once from ``LUMIA_*`` environment variables (and a ``.env`` file), then passed down.

Nothing here runs at import time; ``load_settings()`` is called by the entry points. A bad value
raises ``ConfigError`` with the variable's name and the rule it broke, so the CLI can print one line.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path


class ConfigError(ValueError):
    """A ``LUMIA_*`` value that cannot be used."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one user sandbox. The defaults hold hostile code; games may override them."""

    memory_mb: int = 512
    cpus: float = 1.0
    pids: int = 64
    open_files: int = 256
    tmpfs_mb: int = 64
    output_kb: int = 256
    wall_s: float = 120.0
    move_timeout_s: float = 10.0
    game_timeout_s: float = 90.0
    connect_timeout_s: float = 20.0


# Training needs more memory and time than a game, and no per-move limit.
TRAINING_LIMITS = SandboxLimits(memory_mb=2048, cpus=1.0, pids=128, tmpfs_mb=512, wall_s=1800.0)


@dataclass(frozen=True)
class Settings:
    nats_urls: tuple[str, ...] = ()
    api_host: str = "127.0.0.1"
    api_port: int = 8010
    api_token: str | None = None
    backend_url: str = "http://localhost:8000"
    data_dir: Path = Path("./data")
    runtime: str = "auto"
    image_dataset: Path | None = None
    node: str = field(default_factory=lambda: _token(socket.gethostname()))
    stream: str = "LUMIA"
    stream_replicas: int = 1
    stream_max_age_s: float = 0.0
    stream_max_bytes: int = 10 * 1024**3
    runner_image: str = "lumia-runner:latest"
    base_image: str = "lumia-base:bookworm"
    max_concurrent_runs: int = 4
    max_script_bytes: int = 256 * 1024
    max_upload_bytes: int = 1024 * 1024
    limits: SandboxLimits = SandboxLimits()
    training_limits: SandboxLimits = TRAINING_LIMITS
    backend_timeout_s: float = 10.0
    game_delay_s: float = 0.0

    @property
    def embedded_nats(self) -> bool:
        return not self.nats_urls

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _token(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:64]
    return cleaned or "node"


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _float(env: dict[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def load_settings(environ: dict[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
    """Settings from ``.env`` overlaid by the process environment."""
    env = _read_dotenv(dotenv) if dotenv is not None else {}
    env.update(os.environ if environ is None else environ)

    urls = tuple(u.strip() for u in env.get("LUMIA_NATS_URL", "").split(",") if u.strip())
    runtime = env.get("LUMIA_RUNTIME", "auto") or "auto"
    if runtime not in ("auto", "docker", "process"):
        raise ConfigError(f"LUMIA_RUNTIME={runtime!r}: expected docker, process or auto")
    backend = (env.get("LUMIA_BACKEND_URL") or "http://localhost:8000").rstrip("/")
    if not backend.startswith(("http://", "https://")):
        raise ConfigError(f"LUMIA_BACKEND_URL={backend!r}: expected an http:// or https:// URL")
    dataset = env.get("LUMIA_IMAGE_DATASET")
    base = Settings()
    limits = SandboxLimits(
        memory_mb=_int(env, "LUMIA_SANDBOX_MEMORY_MB", base.limits.memory_mb, 32),
        cpus=_float(env, "LUMIA_SANDBOX_CPUS", base.limits.cpus, 0.1),
        pids=_int(env, "LUMIA_SANDBOX_PIDS", base.limits.pids, 8),
        wall_s=_float(env, "LUMIA_SANDBOX_WALL_S", base.limits.wall_s, 1.0),
        move_timeout_s=_float(env, "LUMIA_MOVE_TIMEOUT_S", base.limits.move_timeout_s, 0.1),
        game_timeout_s=_float(env, "LUMIA_GAME_TIMEOUT_S", base.limits.game_timeout_s, 1.0),
    )
    if limits.move_timeout_s >= limits.game_timeout_s:
        raise ConfigError("LUMIA_MOVE_TIMEOUT_S must be shorter than LUMIA_GAME_TIMEOUT_S")
    training = replace(TRAINING_LIMITS, wall_s=_float(env, "LUMIA_TRAINING_WALL_S", TRAINING_LIMITS.wall_s, 1.0))
    return Settings(
        nats_urls=urls,
        api_host=env.get("LUMIA_API_HOST") or base.api_host,
        api_port=_int(env, "LUMIA_API_PORT", base.api_port, 1),
        api_token=env.get("LUMIA_API_TOKEN") or None,
        backend_url=backend,
        data_dir=Path(env.get("LUMIA_DATA_DIR") or "./data").resolve(),
        runtime=runtime,
        image_dataset=Path(dataset).resolve() if dataset else None,
        node=_token(env.get("LUMIA_NODE") or base.node),
        stream=env.get("LUMIA_STREAM") or base.stream,
        stream_replicas=_int(env, "LUMIA_STREAM_REPLICAS", 1, 1),
        stream_max_age_s=_float(env, "LUMIA_STREAM_MAX_AGE_S", 0.0),
        stream_max_bytes=_int(env, "LUMIA_STREAM_MAX_BYTES", base.stream_max_bytes, 1024 * 1024),
        runner_image=env.get("LUMIA_RUNNER_IMAGE") or base.runner_image,
        base_image=env.get("LUMIA_BASE_IMAGE") or base.base_image,
        max_concurrent_runs=_int(env, "LUMIA_MAX_CONCURRENT_RUNS", base.max_concurrent_runs, 1),
        max_script_bytes=_int(env, "LUMIA_MAX_SCRIPT_BYTES", base.max_script_bytes, 1024),
        max_upload_bytes=_int(env, "LUMIA_MAX_UPLOAD_BYTES", base.max_upload_bytes, 4096),
        limits=limits,
        training_limits=training,
        game_delay_s=_float(env, "LUMIA_GAME_DELAY_S", 0.0),
    )
