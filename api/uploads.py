"""Uploaded scripts: validated, stored under generated ids, and taken exactly once.

Two ways in. ``POST /upload`` stores the script under a generated id, tied to a user when the caller
says which; the Java backend instead drops files into ``uploads/`` through a bind mount, tied to nobody.
``UploadStore.claim`` consumes one script for a user under a lock, with an atomic rename, so two
requests never get the same file, and picks in this order:

1. the upload id the caller named (tied to this user or to nobody), else
2. the user's own oldest tied upload, else
3. an untied script (a ``POST /upload`` without ``userId`` or a file the backend dropped), but only
   when it cannot be someone else's: it is the only untied script waiting, or the only one whose name
   contains the user id. With several untied scripts waiting nobody can tell whose is whose, so they
   are all moved to ``uploads/quarantine/`` and the caller gets ``AmbiguousUpload`` (409) instead of
   possibly running another user's file.

Untied files older than ``STALE_AFTER_S`` are quarantined instead of being run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import stat
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import vault

STALE_AFTER_S = 15 * 60
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ScriptRejected(ValueError):
    """A script that is not acceptable Python; the message names the problem (and line)."""


class ScriptTooLarge(ScriptRejected):
    """A script over the configured size (413)."""


class NoUpload(LookupError):
    """No upload is waiting for this user."""


class AmbiguousUpload(LookupError):
    """Several untied scripts were waiting; none could be safely given to this user (409)."""


def display_name(filename: str | None) -> str:
    """A harmless name to show: never used as a path."""
    name = PurePosixPath((filename or "script.py").replace("\\", "/")).name
    name = _SAFE_NAME.sub("_", name).strip("._") or "script.py"
    return name[-100:]


def validate_script(data: bytes, filename: str | None, max_bytes: int) -> str:
    """The script's text, or ``ScriptRejected`` saying what is wrong."""
    if filename is not None and not (filename.strip() and display_name(filename).lower().endswith(".py")):
        raise ScriptRejected("only .py files are accepted")
    if len(data) > max_bytes:
        raise ScriptTooLarge(f"the script is larger than {max_bytes} bytes")
    if not data.strip():
        raise ScriptRejected("the script is empty")
    if b"\x00" in data:
        raise ScriptRejected("the script is binary, not Python source")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptRejected(f"the script is not UTF-8 (byte {exc.start})") from None
    try:
        with warnings.catch_warnings():  # SyntaxWarning (invalid escapes...) is the user's business
            warnings.simplefilter("ignore")
            compile(text, display_name(filename), "exec", dont_inherit=True)
    except SyntaxError as exc:  # IndentationError and TabError included
        raise ScriptRejected(f"syntax error on line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # nesting too deep for the compiler
        raise ScriptRejected(f"the script cannot be compiled: {type(exc).__name__}: {exc}") from None
    return text


def script_bytes(text: str) -> bytes:
    """A script given as JSON text in UTF-8; lone surrogates are refused instead of failing later."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ScriptRejected(f"the script is not valid Unicode (character {exc.start})") from None


@dataclass(frozen=True)
class Upload:
    upload_id: str
    name: str
    user_id: str | None
    size: int
    sha256: str
    path: Path
    stamp: int = 0  # mtime_ns when taken: the same file put back after a failure keeps it


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
    async def claim(self, user_id: str, upload_id: str | None = None,
                    max_bytes: int = 16 * 1024 * 1024) -> AsyncIterator[tuple[Upload, bytes]]:
        """Consume one script for ``user_id`` (order in the module docstring). The lock is held only
        while choosing and renaming. If the body of the ``async with`` rejects the script, it goes to
        ``quarantine/``; if it fails otherwise (JetStream down), the script is put back where it was,
        so nothing is lost and nothing is half-recorded. At most ``max_bytes + 1`` bytes are read."""
        async with self._lock:
            upload, claimed = self._take(user_id, upload_id)
        try:
            yield upload, _read_limited(claimed, max_bytes + 1)
        except ScriptRejected:
            self.quarantine.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.replace(claimed, self.quarantine / f"{int(time.time())}-{uuid.uuid4().hex[:8]}-{upload.name}")
            (self.tied / f"{upload.upload_id}.json").unlink(missing_ok=True)
            raise
        except BaseException:
            with contextlib.suppress(OSError):
                os.replace(claimed, upload.path)
            raise
        claimed.unlink(missing_ok=True)
        (self.tied / f"{upload.upload_id}.json").unlink(missing_ok=True)

    def _take(self, user_id: str, upload_id: str | None) -> tuple[Upload, Path]:
        self._quarantine_stale()
        self.claimed.mkdir(parents=True, exist_ok=True)
        for candidate in self._candidates(user_id, upload_id):
            claimed = self.claimed / f"{uuid.uuid4().hex}.py"
            try:
                os.replace(candidate.path, claimed)  # atomic: only one taker can win
            except FileNotFoundError:
                continue
            return dataclasses.replace(candidate, stamp=claimed.stat().st_mtime_ns), claimed
        if upload_id is not None:
            raise NoUpload(f"upload {upload_id} does not exist or belongs to another user")
        raise NoUpload("No .py files found in uploads/")

    def _candidates(self, user_id: str, upload_id: str | None) -> list[Upload]:
        tied = self._tied()
        if upload_id is not None:
            return [u for u in tied if u.upload_id == upload_id and u.user_id in (user_id, None)]
        mine = [u for u in tied if u.user_id == user_id]
        if mine:
            return mine
        untied = [u for u in tied if u.user_id is None] + self._dropped()
        if len(untied) <= 1:
            return untied
        named = [u for u in untied if user_id in u.name or user_id in u.path.name]
        if len(named) == 1:
            return named
        self._quarantine(untied)
        raise AmbiguousUpload(f"{len(untied)} scripts without an owner were waiting in uploads/, so none can be "
                              f"given to user {user_id} safely; they were set aside: upload again (with "
                              "userId, or pass the uploadId to rundocker)")

    def _quarantine(self, uploads: list[Upload]) -> None:
        self.quarantine.mkdir(parents=True, exist_ok=True)
        stamp = int(time.time())
        for upload in uploads:
            with contextlib.suppress(OSError):
                os.replace(upload.path, self.quarantine / f"{stamp}-{uuid.uuid4().hex[:8]}-{upload.name}")
            (self.tied / f"{upload.upload_id}.json").unlink(missing_ok=True)

    def _tied(self) -> list[Upload]:
        found: list[tuple[float, Upload]] = []
        for meta_path in sorted(self.tied.glob("*.json")) if self.tied.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                meta = json.loads(meta_path.read_text())
                path = meta_path.with_suffix(".py")
                if path.exists():
                    found.append((float(meta["at"]), Upload(meta_path.stem, meta["name"], meta.get("userId"),
                                                            meta["size"], meta["sha256"], path)))
        return [upload for _at, upload in sorted(found, key=lambda item: item[0])]

    def _dropped(self) -> list[Upload]:
        found: list[tuple[float, Upload]] = []
        for path in self.folder.glob("*.py") if self.folder.is_dir() else []:
            with contextlib.suppress(OSError):
                info = path.lstat()
                if stat.S_ISREG(info.st_mode):
                    found.append((info.st_mtime, Upload(f"dropped-{path.name}", display_name(path.name), None,
                                                        info.st_size, "", path)))
        return [upload for _at, upload in sorted(found, key=lambda item: item[0])]

    def _quarantine_stale(self) -> None:
        """Leftovers nobody claimed in time (and symlinks) are set aside, never run."""
        now = time.time()
        for path in self.folder.glob("*.py") if self.folder.is_dir() else []:
            with contextlib.suppress(OSError):
                if path.is_symlink() or now - path.lstat().st_mtime > STALE_AFTER_S:
                    self.quarantine.mkdir(parents=True, exist_ok=True)
                    os.replace(path, self.quarantine / f"{int(now)}-{display_name(path.name)}")


def _read_limited(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit)
