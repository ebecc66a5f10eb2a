"""The node's data directory: legacy folder layout, id validation and atomic writes.

Every path is built here from validated ids, so no request field or file name ever becomes a path.

    <data>/uploads/<uploadId>.py + .json     scripts uploaded through POST /upload
    <data>/DeliveringQueue/<dockerId>/<game>/ drop folder watched by producers/
    <data>/AI-Vault/<dockerId>/<game>/        durable copy: <userId>.txt + <userId>_<game>.py
    <data>/logs/<userId>/<game>.json          the latest game log of a user and game (legacy layout)
    <data>/runs/<runId>/log.json              each run's own log, kept (what was forwarded, /v1/runs/{id}/log)
    <data>/train/<dockerId>/<game>/<userId>/model.pt
    <data>/nats/                              embedded nats-server store
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

GAMES = ("snake", "connect4", "image")
_USER_ID = re.compile(r"[0-9a-f]{24}")


class InvalidInput(ValueError):
    """A request field that breaks a rule; the message states the rule."""


def user_id(value: object) -> str:
    if not isinstance(value, str) or not _USER_ID.fullmatch(value):
        raise InvalidInput("userId must be 24 lower-case hexadecimal characters")
    return value


def docker_id(value: object) -> int:
    if isinstance(value, bool):
        raise InvalidInput("dockerId must be a positive integer")
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise InvalidInput("dockerId must be a positive integer") from None
    if number < 1 or number > 2**31 - 1 or (isinstance(value, float) and not value.is_integer()):
        raise InvalidInput("dockerId must be a positive integer")
    return number


def game(value: object) -> str:
    name = value.strip().lower() if isinstance(value, str) else ""
    if name not in GAMES:
        raise InvalidInput("game must be one of snake, connect4, image (any case)")
    return name


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write to a temporary sibling, fsync, then rename: readers see nothing or everything."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def delivering(self) -> Path:
        return self.root / "DeliveringQueue"

    @property
    def ai_vault(self) -> Path:
        return self.root / "AI-Vault"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_log_path(self, run_id: str) -> Path:
        if not run_id or not run_id.replace("-", "").replace("_", "").isalnum() or len(run_id) > 64:
            raise InvalidInput("run id must be 1-64 characters of A-Z a-z 0-9 _ -")
        return self.runs / run_id / "log.json"

    @property
    def nats_store(self) -> Path:
        return self.root / "nats"

    def ensure(self) -> None:
        for folder in (self.uploads, self.delivering, self.ai_vault, self.logs, self.train):
            folder.mkdir(parents=True, exist_ok=True)

    def log_path(self, uid: str, game_name: str) -> Path:
        return self.logs / user_id(uid) / f"{game(game_name)}.json"

    def model_path(self, did: int, game_name: str, uid: str) -> Path:
        return self.train / str(docker_id(did)) / game(game_name) / user_id(uid) / "model.pt"

    def vault_dir(self, did: int, game_name: str) -> Path:
        return self.ai_vault / str(docker_id(did)) / game(game_name)

    def drop_dir(self, did: int, game_name: str) -> Path:
        return self.delivering / str(docker_id(did)) / game(game_name)

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def inside(self, path: Path) -> bool:
        """True when ``path`` (symlinks resolved) stays inside the data dir."""
        try:
            path.resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True


def flag_text(training: bool) -> str:
    return "{True}" if training else "{False}"


def store_in_vault(data: DataDir, did: int, game_name: str, uid: str, script: bytes, training: bool) -> Path:
    """The durable copy used by restart: flag first, then the script (either order is tolerated)."""
    folder = data.vault_dir(did, game_name)
    atomic_write(folder / f"{user_id(uid)}.txt", flag_text(training).encode())
    script_path = folder / f"{uid}_{game(game_name)}.py"
    atomic_write(script_path, script)
    return script_path
