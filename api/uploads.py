"""Uploaded scripts: validated, stored under generated ids, and taken exactly once.

Two ways in. ``POST /upload`` stores the script under a generated id, tied to a user when the caller
says which; the Java backend instead drops files into ``uploads/`` through a bind mount. ``take_upload``
consumes one script for a user under a lock, with an atomic rename, so two requests never get the same
file and a user never gets a file tied to someone else. Untied files older than ``STALE_AFTER_S`` are
moved to ``uploads/quarantine/`` instead of being run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import vault

STALE_AFTER_S = 15 * 60
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ScriptRejected(ValueError):
    """A script that is not acceptable Python; the message names the problem (and line)."""


class NoUpload(LookupError):
    """No upload is waiting for this user."""


def display_name(filename: str | None) -> str:
    """A harmless name to show: never used as a path."""
    name = PurePosixPath((filename or "script.py").replace("\\", "/")).name
    name = _SAFE_NAME.sub("_", name).strip("._") or "script.py"
    return name[-100:]


def validate_script(data: bytes, filename: str | None, max_bytes: int) -> str:
    """The script's text, or ``ScriptRejected`` saying what is wrong."""
    if filename is not None and not display_name(filename).lower().endswith(".py"):
        raise ScriptRejected("only .py files are accepted")
    if not data.strip():
        raise ScriptRejected("the script is empty")
    if len(data) > max_bytes:
        raise ScriptRejected(f"the script is larger than {max_bytes} bytes")
    if b"\x00" in data:
        raise ScriptRejected("the script is binary, not Python source")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptRejected(f"the script is not UTF-8 (byte {exc.start})") from None
    try:
        compile(text, display_name(filename), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ScriptRejected(f"syntax error on line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise ScriptRejected(f"the script cannot be compiled: {exc}") from None
    return text


@dataclass(frozen=True)
class Upload:
    upload_id: str
    name: str
    user_id: str | None
    size: int
    sha256: str
    path: Path


class UploadStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tied = folder / ".lumia"
        self.claimed = folder / ".claimed"
        self.quarantine = folder / "quarantine"
        self._lock = asyncio.Lock()

    def save(self, text: str, filename: str | None, user_id: str | None) -> Upload:
        upload_id = uuid.uuid4().hex
        data = text.encode("utf-8")
        path = self.tied / f"{upload_id}.py"
        meta = {"name": display_name(filename), "userId": user_id, "size": len(data),
                "sha256": vault.sha256(data), "at": time.time()}
        vault.atomic_write(self.tied / f"{upload_id}.json", json.dumps(meta).encode())
        vault.atomic_write(path, data)
        return Upload(upload_id, meta["name"], user_id, len(data), meta["sha256"], path)

    @contextlib.asynccontextmanager
    async def claim(self, user_id: str, upload_id: str | None = None) -> AsyncIterator[tuple[Upload, bytes]]:
        """Consume one script for ``user_id``: the named upload, else the user's oldest, else the
        oldest fresh file the backend dropped into ``uploads/``. If the body of the ``async with``
        fails (JetStream down), the script is put back, so nothing is lost."""
        async with self._lock:
            self._quarantine_stale()
            for candidate in self._candidates(user_id, upload_id):
                claimed = self.claimed / f"{uuid.uuid4().hex}.py"
                self.claimed.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(candidate.path, claimed)  # atomic: only one taker can win
                except FileNotFoundError:
                    continue
                try:
                    yield candidate, claimed.read_bytes()
                except BaseException:
                    os.replace(claimed, candidate.path)
                    raise
                claimed.unlink()
                with contextlib.suppress(FileNotFoundError):
                    (self.tied / f"{candidate.upload_id}.json").unlink()
                return
        if upload_id is not None:
            raise NoUpload(f"upload {upload_id} does not exist or belongs to another user")
        raise NoUpload("No .py files found in uploads/")

    def _candidates(self, user_id: str, upload_id: str | None) -> list[Upload]:
        tied = [upload for upload in self._tied() if upload.user_id in (user_id, None)]
        if upload_id is not None:
            return [upload for upload in tied if upload.upload_id == upload_id]
        mine = [upload for upload in tied if upload.user_id == user_id]
        anonymous = [upload for upload in tied if upload.user_id is None] + self._dropped()
        return mine + sorted(anonymous, key=lambda upload: upload.path.stat().st_mtime)

    def _tied(self) -> list[Upload]:
        uploads = []
        for meta_path in sorted(self.tied.glob("*.json")) if self.tied.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads(meta_path.read_text())
                path = meta_path.with_suffix(".py")
                if path.exists():
                    uploads.append(Upload(meta_path.stem, meta["name"], meta.get("userId"), meta["size"],
                                          meta["sha256"], path))
        return sorted(uploads, key=lambda upload: upload.path.stat().st_mtime)

    def _dropped(self) -> list[Upload]:
        uploads = []
        for path in self.folder.glob("*.py") if self.folder.is_dir() else []:
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                uploads.append(Upload(f"dropped-{path.name}", display_name(path.name), None, len(data),
                                      vault.sha256(data), path))
        return uploads

    def _quarantine_stale(self) -> None:
        now = time.time()
        for path in self.folder.glob("*.py") if self.folder.is_dir() else []:
            with contextlib.suppress(OSError):
                if path.is_symlink() or now - path.stat().st_mtime > STALE_AFTER_S:
                    self.quarantine.mkdir(parents=True, exist_ok=True)
                    os.replace(path, self.quarantine / f"{int(now)}-{display_name(path.name)}")
