"""Process runtime: the game server and the user's script as local processes. NO SECURITY BOUNDARY.

For demos and development on machines without Docker: rlimits (memory, CPU time, file size, open
files), a temporary working directory, a minimal environment and a process group killed at the end.
It does not isolate the network, the file system or other processes; never feed it untrusted code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

from consumers.lifecycle.sandbox import (
    GAME_PORT,
    READY_LINE,
    OutputCapture,
    SandboxJob,
    SandboxResult,
    parse_result_line,
)
from lumia.config import SandboxLimits

WARNING = "process runtime: no security boundary; use it only for your own scripts"


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _limit_child(limits: SandboxLimits) -> None:
    memory = limits.memory_mb * 1024 * 1024
    cpu = int(limits.wall_s) + 1
    for name, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, limits.tmpfs_mb * 1024 * 1024),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(name, (value, value))


class ProcessRuntime:
    name = "process"

    def __init__(self) -> None:
        self._groups: dict[str, list[asyncio.subprocess.Process]] = {}
        self._stopped: set[str] = set()

    async def close(self) -> None:
        for run_id in list(self._groups):
            await self.stop(run_id)

    async def run(self, job: SandboxJob) -> SandboxResult:
        started = time.monotonic()
        result = SandboxResult()
        with tempfile.TemporaryDirectory(prefix=f"lumia-{job.run_id}-") as scratch:
            root = Path(scratch)
            workdir, private = root / "app", root / "game"
            for folder in (workdir, private, root / "tmp"):
                folder.mkdir()
            for name, data in {job.script_name: job.script, **job.files}.items():
                target = workdir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            model_path = root / "train" / "model.pt"
            model_path.parent.mkdir()
            processes: list[asyncio.subprocess.Process] = []
            self._groups[job.run_id] = processes
            try:
                game, port = None, GAME_PORT
                if not job.training:
                    port = _free_port()
                    manifest = None
                    if job.manifest is not None:
                        (private / "manifest.json").write_bytes(job.manifest)
                        manifest = str(private / "manifest.json")
                    game = await asyncio.create_subprocess_exec(
                        *job.game_command(sys.executable, str(private / "log.json"), manifest, port=port),
                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True, cwd=private,
                    )
                    processes.append(game)
                    if not await _wait_ready(game, job.limits.connect_timeout_s + 10):
                        result.infrastructure_error = "game server did not become ready"
                        return result
                env = {**job.user_env(), "PORT": str(port), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                       "HOME": str(root / "tmp"), "TMPDIR": str(root / "tmp"), "LUMIA_GAME_PORT": str(port)}
                command = job.user_command(str(model_path))
                command[0] = sys.executable
                # The game listens on a free port; scripts that hard-code 5001 are redirected by a
                # tiny sitecustomize shim so they run unchanged.
                shim = root / "shim"
                shim.mkdir()
                (shim / "sitecustomize.py").write_text(_PORT_SHIM)
                env["PYTHONPATH"] = str(shim)
                user = await asyncio.create_subprocess_exec(
                    *command, cwd=workdir, env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True, preexec_fn=lambda: _limit_child(job.limits),
                )
                processes.append(user)
                capture = OutputCapture(job.limits.output_kb * 1024)
                pump = asyncio.create_task(_pump(user, capture))
                watched = user if job.training else game
                assert watched is not None
                try:
                    async with asyncio.timeout(job.limits.wall_s):
                        await watched.wait()
                except TimeoutError:
                    result.timed_out = True
                    _kill_group(user)
                    _kill_group(watched)
                    await watched.wait()
                if game is not None:
                    try:
                        async with asyncio.timeout(2.0):
                            await user.wait()
                    except TimeoutError:
                        _kill_group(user)
                        await user.wait()
                    result.game = await _read_result(game)
                    log_file = private / "log.json"
                    result.log = log_file.read_bytes() if log_file.exists() else None
                else:
                    result.model = model_path.read_bytes() if model_path.exists() else None
                _kill_group(user)  # background processes the script left behind
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pump, 2.0)
                result.exit_code = user.returncode
                result.output_tail = capture.text()
                result.output_truncated = capture.truncated
            finally:
                for process in processes:
                    _kill_group(process)
                self._groups.pop(job.run_id, None)
                result.stopped = job.run_id in self._stopped
                self._stopped.discard(job.run_id)
                result.duration_s = round(time.monotonic() - started, 3)
        return result

    async def stop(self, run_id: str) -> bool:
        processes = self._groups.get(run_id, [])
        if processes:
            self._stopped.add(run_id)
        for process in processes:
            _kill_group(process)
        return bool(processes)

    async def reconcile(self, live_run_ids: set[str]) -> list[str]:
        return []  # processes die with the runner: nothing can be left behind


_PORT_SHIM = """\
import os, socket
_port = int(os.environ.get("LUMIA_GAME_PORT", "5001"))
_connect = socket.socket.connect
def connect(self, address):
    if isinstance(address, tuple) and len(address) >= 2 and address[1] == 5001:
        address = (address[0], _port) + tuple(address[2:])
    return _connect(self, address)
socket.socket.connect = connect
_create = socket.create_connection
def create_connection(address, *args, **kwargs):
    if address[1] == 5001:
        address = (address[0], _port)
    return _create(address, *args, **kwargs)
socket.create_connection = create_connection
"""


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # Also once the leader has exited: its group lives on while a child the script left behind does
    # (and a group id is never reused while the group exists). A child that called setsid() escapes:
    # this runtime is no security boundary.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _wait_ready(game: asyncio.subprocess.Process, timeout: float) -> bool:
    assert game.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            while line := await game.stdout.readline():
                if line.decode(errors="replace").strip() == READY_LINE:
                    return True
    except TimeoutError:
        pass
    return False


async def _read_result(game: asyncio.subprocess.Process) -> dict[str, object] | None:
    assert game.stdout is not None
    result = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5.0):
            while line := await game.stdout.readline():
                result = parse_result_line(line.decode(errors="replace").strip()) or result
    return result


async def _pump(process: asyncio.subprocess.Process, capture: OutputCapture) -> None:
    assert process.stdout is not None
    while chunk := await process.stdout.read(65536):
        capture.feed(chunk)
