"""Helpers for the game_vault tests: run the game server on a free port, talk like legacy clients."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOTS = REPO / "game_vault" / "bots"
WAIT_S = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningGame:
    """One game server subprocess; its stdout lines are collected by a reader thread."""

    def __init__(self, game: str, log_path: Path, *options: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        command = [sys.executable, "-m", "game_vault.serve", "--game", game, "--log", str(log_path)]
        command += ["--port", str(self.port), *options]
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        assert self._lines.get(timeout=WAIT_S) == "LUMIA_READY"

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))

    def result(self) -> dict[str, object]:
        """Wait for the end; the parsed ``LUMIA_RESULT`` line (and exit code 0)."""
        assert self.process.wait(timeout=WAIT_S) == 0, self.process.stderr.read() if self.process.stderr else ""
        line = self._lines.get(timeout=WAIT_S)
        assert line.startswith("LUMIA_RESULT "), line
        return json.loads(line.removeprefix("LUMIA_RESULT "))

    def log(self) -> dict:
        return json.loads(self.log_path.read_text(encoding="utf-8"))

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def run_bot(self, name: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "PORT": str(self.port), **env}
        return subprocess.run(
            [sys.executable, str(BOTS / name)],
            cwd=cwd or REPO,
            env=environment,
            capture_output=True,
            text=True,
            timeout=WAIT_S * 3,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT_S)


class LegacyClient:
    """Reads like legacy scripts (one ``recv(1024)`` per message) and checks the framing rules."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)

    def receive(self) -> dict:
        data = self.sock.recv(1024)
        assert data, "server closed the connection"
        assert data.endswith(b"\n") and data.count(b"\n") == 1  # exactly one message per recv
        assert len(data) <= 1024
        return json.loads(data)

    def receive_nothing_more(self, wait_s: float = 0.2) -> bool:
        """True if the server sends nothing (or just closes) within ``wait_s``."""
        self.sock.settimeout(wait_s)
        try:
            return self.sock.recv(1024) == b""
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(WAIT_S)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def start_game(tmp_path: Path) -> Iterator[Callable[..., RunningGame]]:
    games: list[RunningGame] = []

    def start(game: str, *options: str) -> RunningGame:
        running = RunningGame(game, tmp_path / f"logs-{len(games)}" / f"{game}.json", *options)
        games.append(running)
        return running

    yield start
    for running in games:
        running.kill()


def without_timestamps(document: dict) -> dict:
    events = [{k: v for k, v in event.items() if k != "timestamp"} for event in document["gameStates"]]
    return {**{k: v for k, v in document.items() if k != "timestamp"}, "gameStates": events}


def system_messages(document: dict) -> list[str]:
    return [event["message"] for event in document["gameStates"] if event["itemType"] == "system"]
