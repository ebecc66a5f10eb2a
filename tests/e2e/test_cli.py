"""The `lumia` command as a person uses it: the README's demo, play, replay, errors in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lumia.natsserver import free_port
from tests.conftest import REPO

BOTS = REPO / "game_vault" / "bots"


def lumia(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lumia.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, cwd=cwd)


@pytest.mark.docker
def test_demo_prints_outcome_timeline_and_where_the_log_went(tmp_path: Path, docker_available: None) -> None:
    result = lumia("demo", env={"LUMIA_DATA_DIR": str(tmp_path / "data"), "LUMIA_API_PORT": str(free_port())},
                   timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "outcome: " in out and "runtime docker" in out
    for step in ("requested", "started", "exited", "log_written", "log_forwarded"):
        assert step in out
    assert f"log: {tmp_path / 'data' / 'logs'}" in out
    assert "backend received: POST /api/game/upload file=snake.json" in out


def test_play_with_the_process_runtime_prints_the_outcome(tmp_path: Path) -> None:
    result = lumia("play", "connect4", str(BOTS / "connect4_bot.py"), "--runtime", "process", "--seed", "2",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no security boundary" in result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    assert lines["outcome"].strip() in ("win", "lose")
    log = Path(lines["log"].strip())
    assert log.is_file() and '"gameType": "connect4"' in log.read_text()


def test_errors_are_one_line_with_a_nonzero_exit(tmp_path: Path) -> None:
    missing = lumia("play", "snake", str(tmp_path / "nope.py"), cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
    assert "no such script" in missing.stderr
    bad_config = lumia("play", "snake", str(BOTS / "snake_bot.py"), env={"LUMIA_RUNTIME": "vm"}, cwd=tmp_path)
    assert bad_config.returncode == 1 and "LUMIA_RUNTIME" in bad_config.stderr
    no_nats = lumia("events", "replay", "--run", "abc", env={"LUMIA_NATS_URL": f"nats://127.0.0.1:{free_port()}"})
    assert no_nats.returncode == 1 and no_nats.stderr.startswith("lumia: cannot reach NATS")


def test_events_schema_lists_every_event() -> None:
    result = lumia("events", "schema")
    assert result.returncode == 0 and "RunRequested" in result.stdout and "DeadLettered" in result.stdout


@pytest.mark.docker
def test_lumia_up_then_submit_follow_then_clean_shutdown(tmp_path: Path, nats_server, backend,
                                                         docker_available: None) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUMIA_NATS_URL": nats_server.url, "LUMIA_API_PORT": str(port),
           "LUMIA_DATA_DIR": str(tmp_path / "data"), "LUMIA_BACKEND_URL": backend.url, "LUMIA_NODE": "upnode"}
    up = subprocess.Popen([sys.executable, "-m", "lumia.cli", "up"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        banner = up.stdout.readline()
        assert "lumia up: running" in banner and f"127.0.0.1:{port}" in banner, banner
        result = lumia("submit", str(BOTS / "snake_bot.py"), "--game", "snake", "--user", "65a1f0c2e4b0a1b2c3d4e5f6",
                       "--follow", "--timeout", "120", env={"LUMIA_API_PORT": str(port)})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "run.requested" in result.stdout and "log.forwarded" in result.stdout
        assert "outcome: win" in result.stdout or "outcome: lose" in result.stdout
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            up.kill()
    assert len(backend.backend.uploads("65a1f0c2e4b0a1b2c3d4e5f6")) == 1
