"""The legacy folders as an edge: files that land under the data dir become events.

    DeliveringQueue/<dockerId>/<game>/<userId>_<game>.py + <userId>.txt  -> RunRequested (source=dropfolder)
    logs/<userId>/<game>.json                                              -> LogWritten
    train/<dockerId>/<game>/<userId>/model.pt                              -> ModelSaved
    anything malformed, unreadable or a symlink                            -> SubmissionRejected

watchfiles only gives hints (PITFALLS W1-W5): a path it reports (or the start-up / periodic scan finds)
becomes *pending*; every tick the pending paths are stat'ed and a path is handled only once its size and
mtime (for a drop folder: of all its files) have been still for ``quiet_s``. So a half-written file is
never read, and a file renamed into place yields one event.

Exactly once: every published id is deterministic (logs and models from user/game/content digest, the
drop folder's run id from dockerId/game/userId/script digest/mtime, rejections from path/size/mtime), so
a repeat after a restart is dropped by the JetStream duplicate window. Drop-folder files and rejected
files are moved or removed only after the publish was acknowledged. ``BrokerUnavailable`` keeps the path
pending and pauses all publishing with a growing backoff; nothing is lost.

A rejected file is moved into ``rejected/`` beside it (never deleted); ``rejected/`` is never watched.
Symlinks are never followed: every symlink found in the watched trees is rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import stat
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from watchfiles import Change, awatch

import vault
from consumers.forwarder import InvalidLog, prepare_log
from events import LogWritten, ModelSaved, SubmissionRejected
from events.bus import BrokerUnavailable
from events.ledger import FileLedger
from producers.submit import submit_run
from vault import DataDir, InvalidInput

if TYPE_CHECKING:
    from events.bus import Publisher
    from lumia.config import Settings

log = logging.getLogger("lumia.watcher")

Source = Literal["dropfolder", "logs", "models"]
REJECTED = "rejected"
_TEMP_SUFFIXES = (".tmp", ".temp", ".swp", ".swx", ".swo", ".part", ".partial", ".crdownload", ".bak",
                  ".orig", "~")
_TEMP_NAMES = frozenset({"4913"})  # vim's write-permission probe
_FLAGS = {"{True}": True, "{False}": False}
_ZIP_MAGIC = b"PK\x03\x04"
_ONE_MB = 1024 * 1024


@dataclass(frozen=True)
class WatchOptions:
    """Timing of the watcher. ``from_env`` reads ``LUMIA_WATCH_*``; tests pass shorter values."""

    quiet_s: float = 0.5          # size+mtime must be still this long before a file is read
    flag_wait_s: float = 30.0     # a .py waits this long for its <userId>.txt, then is rejected
    tick_s: float = 0.1           # how often pending paths are stat'ed
    rescan_s: float = 60.0        # safety-net rescan of the trees (missed inotify events)
    retry_max_s: float = 10.0     # longest pause between publish attempts while NATS is down
    concurrency: int = 32         # paths handled at once
    force_polling: bool = False   # for NFS/SMB/Docker Desktop mounts (W6)
    poll_delay_ms: int = 300

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WatchOptions:
        env = os.environ if environ is None else environ
        base = cls()

        def number(name: str, default: float) -> float:
            raw = env.get(name, "")
            try:
                return float(raw) if raw else default
            except ValueError:
                raise ValueError(f"{name}={raw!r}: expected a number") from None

        return cls(
            quiet_s=number("LUMIA_WATCH_QUIET_S", base.quiet_s),
            flag_wait_s=number("LUMIA_WATCH_FLAG_WAIT_S", base.flag_wait_s),
            rescan_s=number("LUMIA_WATCH_RESCAN_S", base.rescan_s),
            force_polling=env.get("LUMIA_WATCH_POLLING", "").strip().lower() in ("1", "true", "yes", "on"),
            poll_delay_ms=int(number("LUMIA_WATCH_POLL_DELAY_MS", base.poll_delay_ms)),
        )


async def run_watchers(settings: Settings, publisher: Publisher, stop: asyncio.Event, *,
                       force_polling: bool | None = None, options: WatchOptions | None = None,
                       ledger: FileLedger | None = None) -> None:
    """Watch the drop folder, logs and train trees of ``settings.data_dir`` until ``stop`` is set.

    ``force_polling`` overrides ``LUMIA_WATCH_POLLING``; ``options`` defaults to ``WatchOptions.from_env()``.
    Files already present are published at start (W5); one bad file never stops the watcher.
    """
    opts = options or WatchOptions.from_env()
    if force_polling is not None:
        opts = replace(opts, force_polling=force_polling)
    data = _prepare_data_dir(Path(settings.data_dir))
    ledger = ledger or FileLedger(publisher.js, settings.stream_replicas)
    watcher = _Watcher(data, publisher, settings.max_script_bytes, opts, ledger)
    await watcher.run(stop)


class _Result(Enum):
    DONE = "done"      # handled: forget the path until it changes again
    WAIT = "wait"      # look again at ``wake_at`` or when the path changes
    RETRY = "retry"    # NATS did not acknowledge: keep pending, back off


@dataclass
class _Pending:
    sig: object = None
    changed_at: float = 0.0
    wake_at: float = 0.0


@dataclass
class _Watcher:
    data: DataDir
    publisher: Publisher
    max_script_bytes: int
    opts: WatchOptions
    ledger: FileLedger
    pending: dict[Path, _Pending] = field(default_factory=dict)
    done: dict[Path, object] = field(default_factory=dict)         # signature last handled per path
    first_seen: dict[Path, float] = field(default_factory=dict)    # drop-folder scripts waiting for a flag
    broker_wait_until: float = 0.0
    broker_backoff: float = 0.0

    # ---- loop ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        roots = [self.data.delivering, self.data.logs, self.data.train]
        self._scan_paths(roots)
        watch = asyncio.create_task(self._watch(roots, stop), name="lumia-watchfiles")
        rescan = asyncio.create_task(self._rescan(roots, stop), name="lumia-rescan")
        try:
            while not stop.is_set():
                await self._tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.opts.tick_s)
        finally:
            stop.set()
            rescan.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rescan
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _watch(self, roots: list[Path], stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async for changes in awatch(*roots, watch_filter=self.wanted, stop_event=stop, debounce=100,
                                            step=20, force_polling=self.opts.force_polling,
                                            poll_delay_ms=self.opts.poll_delay_ms, recursive=True,
                                            ignore_permission_denied=True):
                    for change, raw in changes:
                        if change is not Change.deleted:
                            self.note(Path(raw), from_event=True)
            except Exception:  # the rescan keeps files flowing while the watch is re-armed
                log.exception("watchfiles failed; re-arming in 1 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _rescan(self, roots: list[Path], stop: asyncio.Event) -> None:
        # One early rescan closes the gap between the start-up scan and the watch being armed.
        delay = min(1.0, self.opts.rescan_s)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if not stop.is_set():
                await asyncio.to_thread(self._scan_paths, roots)
            delay = self.opts.rescan_s

    def wanted(self, change: Change, raw: str) -> bool:
        """watchfiles filter: drop temp/editor files and anything inside a ``rejected/`` folder."""
        path = Path(raw)
        if _is_temp(path.name):
            return False
        try:
            parts = path.relative_to(self.data.root).parts
        except ValueError:
            return False
        return REJECTED not in parts[:-1] and not (parts and parts[-1] == REJECTED)

    def _scan_paths(self, roots: Iterable[Path]) -> None:
        for root in roots:
            for folder, dirs, files in os.walk(root, followlinks=False):
                dirs[:] = [d for d in dirs if d != REJECTED and not _is_temp(d)]
                base = Path(folder)
                for name in files:
                    if not _is_temp(name):
                        self.note(base / name)
                for name in dirs:  # a symlinked directory is listed but not descended into
                    if (base / name).is_symlink():
                        self.note(base / name)

    def note(self, path: Path, from_event: bool = False) -> None:
        """A hint that ``path`` changed: make the item it belongs to pending (idempotent)."""
        if not self.wanted(Change.added, str(path)):
            return
        try:
            info = path.lstat()
        except OSError:
            return
        if stat.S_ISDIR(info.st_mode):
            if from_event:  # a directory moved in brings files that produce no events of their own (W4)
                self._scan_paths([path])
            return
        item = self._item_for(path, info)
        if item is None or item in self.pending:
            return
        sig = self._signature(item)
        if sig is not None and self.done.get(item) == sig:
            return
        # The quiet period starts now; the next ticks confirm the signature before anything is read.
        self.pending[item] = _Pending(sig=sig, changed_at=time.monotonic(), wake_at=0.0)

    def _item_for(self, path: Path, info: os.stat_result) -> Path | None:
        rel = path.relative_to(self.data.root).parts
        if stat.S_ISLNK(info.st_mode):
            return path
        if rel[0] == self.data.delivering.name:
            if path.suffix in (".py", ".txt"):
                return path.parent if len(rel) == 4 else path
            return None
        if rel[0] == self.data.logs.name:
            return path if path.suffix == ".json" else None
        if rel[0] == self.data.train.name:
            return path if path.name == "model.pt" else None
        return None

    def _signature(self, item: Path) -> object:
        if item.parent.parent == self.data.delivering and not item.is_symlink() and item.is_dir():
            return _folder_signature(item)
        try:
            info = item.lstat()
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns, stat.S_IFMT(info.st_mode))

    async def _tick(self) -> None:
        now = time.monotonic()
        ready: list[Path] = []
        for item, state in list(self.pending.items()):
            sig = self._signature(item)
            if sig is None:
                del self.pending[item]
                continue
            if sig != state.sig:
                state.sig, state.changed_at, state.wake_at = sig, now, 0.0
                continue
            if now - state.changed_at >= self.opts.quiet_s and now >= state.wake_at:
                ready.append(item)
        if not ready or now < self.broker_wait_until:
            return
        gate = asyncio.Semaphore(self.opts.concurrency)

        async def one(item: Path) -> None:
            async with gate:
                if time.monotonic() < self.broker_wait_until:
                    return
                await self._handle_item(item)

        await asyncio.gather(*(one(item) for item in ready))

    async def _handle_item(self, item: Path) -> None:
        state = self.pending.get(item)
        if state is None:
            return
        try:
            result, wake_at = await self._dispatch(item)
        except BrokerUnavailable as exc:
            self.broker_backoff = min(self.opts.retry_max_s, max(0.5, self.broker_backoff * 2))
            self.broker_wait_until = time.monotonic() + self.broker_backoff
            log.warning("NATS unavailable, %s stays pending (next try in %.1f s): %s",
                        item, self.broker_backoff, exc)
            return
        except Exception:
            log.exception("watcher: handling %s failed; retrying in 5 s", item)
            state.wake_at = time.monotonic() + 5.0
            return
        self.broker_backoff = 0.0
        if result is _Result.DONE:
            self.pending.pop(item, None)
            self.done[item] = state.sig
        elif result is _Result.WAIT:
            state.wake_at = wake_at

    async def _dispatch(self, item: Path) -> tuple[_Result, float]:
        rel = item.relative_to(self.data.root).parts
        source = _source_of(rel[0])
        if _is_link(item):
            return await self._reject_symlink(item, source), 0.0
        if source == "dropfolder":
            if _is_dir(item):
                return await self._drop_folder(item)
            return await self._reject(item, source, "a script or flag file must be in "
                                      "DeliveringQueue/<dockerId>/<game>/"), 0.0
        if source == "logs":
            return await self._log_file(item, rel), 0.0
        return await self._model_file(item, rel), 0.0

    # ---- logs ------------------------------------------------------------------------------------

    async def _log_file(self, path: Path, rel: tuple[str, ...]) -> _Result:
        try:
            if len(rel) != 3:
                raise InvalidInput("a log must be at logs/<userId>/<game>.json")
            uid = vault.user_id(rel[1])
            game = _exact_game(path.stem)
        except InvalidInput as exc:
            return await self._reject(path, "logs", str(exc))
        try:
            raw, info = _read_regular(path, limit=64 * _ONE_MB)
        except FileNotFoundError:
            return _Result.DONE
        except OSError as exc:
            return await self._reject(path, "logs", f"unreadable: {exc}", user_id=uid, game=game)
        if not self._unchanged(path, info):
            return _Result.WAIT
        digest = vault.sha256(raw)
        if await self.ledger.announced(self._rel(path), digest):
            return _Result.DONE  # announced before (by a run, or before a restart): never twice
        try:
            document = json.loads(prepare_log(raw, uid, game))
        except InvalidLog as exc:
            return await self._reject(path, "logs", f"invalid log: {exc}", user_id=uid, game=game)
        await self.publisher.publish(LogWritten(
            run_id=None, user_id=uid, game=game,  # type: ignore[arg-type]
            path=self._rel(path), size=len(raw), sha256=digest, outcome=document.get("message"),
        ))
        await self.ledger.record(self._rel(path), digest)
        return _Result.DONE

    # ---- models ----------------------------------------------------------------------------------

    async def _model_file(self, path: Path, rel: tuple[str, ...]) -> _Result:
        try:
            if len(rel) != 5:
                raise InvalidInput("a model must be at train/<dockerId>/<game>/<userId>/model.pt")
            did = vault.docker_id(rel[1])
            if str(did) != rel[1]:
                raise InvalidInput("dockerId must be a positive integer")
            game = _exact_game(rel[2])
            uid = vault.user_id(rel[3])
        except InvalidInput as exc:
            return await self._reject(path, "models", str(exc))
        try:
            size, digest, problem, info = await asyncio.to_thread(_digest_model, path)
        except FileNotFoundError:
            return _Result.DONE
        except OSError as exc:
            return await self._reject(path, "models", f"unreadable: {exc}", user_id=uid, game=game)
        if not self._unchanged(path, info):
            return _Result.WAIT
        if problem:
            return await self._reject(path, "models", problem, user_id=uid, game=game)
        if await self.ledger.announced(self._rel(path), digest):
            return _Result.DONE
        await self.publisher.publish(ModelSaved(
            run_id=None, docker_id=did, game=game, user_id=uid,  # type: ignore[arg-type]
            path=self._rel(path), size=size, sha256=digest, training=True,
        ))
        await self.ledger.record(self._rel(path), digest)
        return _Result.DONE

    # ---- drop folder -----------------------------------------------------------------------------

    async def _drop_folder(self, folder: Path) -> tuple[_Result, float]:
        entries = _folder_entries(folder)
        for path in entries:
            if path.is_symlink():
                await self._reject_symlink(path, "dropfolder")
        entries = [p for p in entries if not p.is_symlink()]
        try:
            did = vault.docker_id(folder.parent.name)
            if str(did) != folder.parent.name:
                raise InvalidInput("dockerId must be a positive integer")
            game = _exact_game(folder.name)
        except InvalidInput as exc:
            for path in entries:
                await self._reject(path, "dropfolder", str(exc))
            return _Result.DONE, 0.0
        flags = [p for p in entries if p.suffix == ".txt"]
        scripts = [p for p in entries if p.suffix == ".py"]
        now = time.monotonic()
        for script in scripts:
            self.first_seen.setdefault(script, now)
        if len(flags) > 1:
            reason = f"the drop folder holds {len(flags)} flag files ({', '.join(p.name for p in flags)}); " \
                     "exactly one <userId>.txt is allowed"
            for path in flags + scripts:
                await self._reject(path, "dropfolder", reason, game=game)
            return self._forget_scripts(scripts), 0.0
        if flags:
            flag = flags[0]
            consumed = await self._drop(flag, did, game)
            scripts = [p for p in scripts if p not in consumed]
        # Scripts without their flag file wait a bounded time, then are rejected.
        waiting: list[float] = []
        for script in scripts:
            deadline = self.first_seen.get(script, now) + self.opts.flag_wait_s
            if now >= deadline:
                reason = f"no flag file for {script.name} arrived within {self.opts.flag_wait_s:g} s " \
                         "(expected <userId>.txt containing {True} or {False})"
                await self._reject(script, "dropfolder", reason, game=game)
                self.first_seen.pop(script, None)
            else:
                waiting.append(deadline)
        if waiting:
            return _Result.WAIT, min(waiting)
        remaining = _folder_entries(folder)
        return (_Result.WAIT, math.inf) if remaining else (_Result.DONE, 0.0)

    async def _drop(self, flag: Path, did: int, game: str) -> set[Path]:
        """Handle ``<userId>.txt`` + ``<userId>_<game>.py``; return the paths that are gone now."""
        folder = flag.parent
        try:
            uid = vault.user_id(flag.stem)
        except InvalidInput as exc:
            await self._reject(flag, "dropfolder", f"flag file {flag.name}: {exc}", game=game)
            return {flag}
        try:
            text, _ = _read_regular(flag, limit=64)
        except OSError as exc:
            await self._reject(flag, "dropfolder", f"unreadable flag file: {exc}", user_id=uid, game=game)
            return {flag}
        training = _FLAGS.get(text.decode("utf-8", "replace").strip())
        if training is None:
            await self._reject(flag, "dropfolder", "a flag file must contain exactly {True} or {False}",
                               user_id=uid, game=game)
            return {flag}
        script = folder / f"{uid}_{folder.name}.py"
        if not script.exists() or script.is_symlink():
            return set()  # the flag waits for its script
        problem, source, mtime_ns = self._read_script(script)
        if problem is not None:
            for path in (script, flag):
                await self._reject(path, "dropfolder", problem, user_id=uid, game=game)
            self.first_seen.pop(script, None)
            return {script, flag}
        digest = vault.sha256(source.encode("utf-8"))
        identity = f"dropfolder|{did}|{game}|{uid}|{digest}|{mtime_ns}"
        run_id = hashlib.sha256(identity.encode()).hexdigest()[:32]
        await submit_run(self.publisher, self.data, user_id=uid, game=game, docker_id=did, training=training,
                         script=source, script_name=script.name, source="dropfolder", run_id=run_id)
        log.info("drop folder %s: run %s requested", self._rel(folder), run_id)
        for path in (script, flag):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.first_seen.pop(script, None)
        return {script, flag}

    def _read_script(self, script: Path) -> tuple[str | None, str, int]:
        """(problem, source text, mtime_ns) of a drop-folder script."""
        try:
            raw, info = _read_regular(script, limit=self.max_script_bytes)
        except _TooLarge:
            return f"the script is larger than {self.max_script_bytes} bytes", "", 0
        except OSError as exc:
            return f"unreadable script: {exc}", "", 0
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "the script is not UTF-8 text", "", 0
        try:
            compile(source, script.name, "exec", dont_inherit=True)
        except SyntaxError as exc:
            return f"the script does not compile: {exc.msg} (line {exc.lineno})", "", 0
        except (ValueError, RecursionError, MemoryError) as exc:
            return f"the script does not compile: {exc}", "", 0
        return None, source, info.st_mtime_ns

    def _forget_scripts(self, scripts: list[Path]) -> _Result:
        for script in scripts:
            self.first_seen.pop(script, None)
        return _Result.DONE

    # ---- rejection -------------------------------------------------------------------------------

    async def _reject_symlink(self, path: Path, source: Source) -> _Result:
        if self.data.inside(path):
            reason = "symlinks are not accepted in the watched folders"
        else:
            reason = "symlink points outside the data dir (not followed)"
        return await self._reject(path, source, reason)

    async def _reject(self, path: Path, source: Source, reason: str, *, user_id: str | None = None,
                      game: str | None = None) -> _Result:
        """Publish ``SubmissionRejected`` (deterministic id), then move the file into ``rejected/``."""
        info = _lstat(path)
        if info is None:
            return _Result.DONE
        target = _rejected_target(path)
        movable = self.data.inside(path.parent)
        identity = f"{self._rel(path)}|{info.st_ino}|{info.st_size}|{info.st_mtime_ns}|{reason}"
        event = SubmissionRejected(
            event_id=f"rejected.{hashlib.sha256(identity.encode()).hexdigest()[:32]}",
            source=source, reason=reason, path=self._rel(path), user_id=user_id, game=game,
            moved_to=self._rel(target) if movable else None,
        )
        await self.publisher.publish(event)
        log.warning("rejected %s: %s", event.path, reason)
        if movable:
            try:
                target.parent.mkdir(exist_ok=True)
                os.rename(path, target)
            except OSError as exc:
                log.error("could not move rejected %s into %s: %s", path, target.parent, exc)
        return _Result.DONE

    # ---- helpers ---------------------------------------------------------------------------------

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.data.root).as_posix()

    def _unchanged(self, path: Path, info: os.stat_result) -> bool:
        state = self.pending.get(path)
        expected = state.sig if state else None
        return expected == (info.st_ino, info.st_size, info.st_mtime_ns, stat.S_IFMT(info.st_mode))


class _TooLarge(OSError):
    pass


def _prepare_data_dir(root: Path) -> DataDir:
    data = DataDir(root.resolve())
    data.ensure()
    return data


def _is_link(path: Path) -> bool:
    return path.is_symlink()


def _is_dir(path: Path) -> bool:
    return path.is_dir()


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except FileNotFoundError:
        return None


def _is_temp(name: str) -> bool:
    return (name.startswith((".", "#")) or name.endswith(_TEMP_SUFFIXES) or name in _TEMP_NAMES
            or (name.endswith("#") and name.startswith("#")))


def _source_of(top: str) -> Source:
    return {"DeliveringQueue": "dropfolder", "logs": "logs"}.get(top, "models")  # type: ignore[return-value]


def _exact_game(name: str) -> str:
    value = vault.game(name)
    if value != name:
        raise InvalidInput("game must be one of snake, connect4, image (lower case)")
    return value


def _folder_entries(folder: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    entries = []
    for name in names:
        if _is_temp(name) or not name.endswith((".py", ".txt")):
            continue
        path = folder / name
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            entries.append(path)
    return entries


def _folder_signature(folder: Path) -> object:
    parts = []
    for path in _folder_entries(folder):
        with contextlib.suppress(OSError):
            info = path.lstat()
            parts.append((path.name, info.st_ino, info.st_size, info.st_mtime_ns, stat.S_IFMT(info.st_mode)))
    return tuple(parts) or None


def _rejected_target(path: Path) -> Path:
    folder = path.parent / REJECTED
    target = folder / path.name
    counter = 1
    while os.path.lexists(target):
        target = folder / f"{path.name}.{counter}"
        counter += 1
    return target


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open without following a symlink at the last component; refuse anything but a regular file."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OSError(f"{path.name} is not a regular file")
    return fd, info


def _read_regular(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    fd, info = _open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise _TooLarge(f"{path.name} is larger than {limit} bytes")
        return handle.read(limit + 1), info


def _digest_model(path: Path) -> tuple[int, str, str | None, os.stat_result]:
    """Size, sha256 and a problem (empty or truncated) of a model file; runs in a worker thread."""
    fd, info = _open_regular(path)
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as handle:
        head = handle.read(4)
        handle.seek(0)
        while chunk := handle.read(_ONE_MB):
            digest.update(chunk)
            size += len(chunk)
        problem = None
        if size == 0:
            problem = "the model file is empty"
        elif head == _ZIP_MAGIC:  # torch.save and numpy.savez write zip archives: the directory is last
            handle.seek(0)
            if not zipfile.is_zipfile(handle):
                problem = "the model file is truncated (zip archive without its central directory)"
    return size, digest.hexdigest(), problem, info
