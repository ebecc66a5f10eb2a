"""The sandbox port: what a runtime is given (``SandboxJob``) and what it reports (``SandboxResult``).

Two runtimes implement it, Docker (the security boundary) and process (demos only, no boundary);
both build the game server and user commands here, so they run exactly the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from lumia.config import SandboxLimits

GAME_PORT = 5001
READY_LINE = "LUMIA_READY"
RESULT_PREFIX = "LUMIA_RESULT "
TRAIN_DATASET_DIR = "dataset-imagerecognition"


@dataclass(frozen=True)
class SandboxJob:
    run_id: str
    user_id: str
    game: str
    docker_id: int
    training: bool
    seed: int
    script: bytes
    limits: SandboxLimits
    # Extra files for the user's working directory (model.pt, evaluation images, the training set).
    files: dict[str, bytes] = field(default_factory=dict)
    # Image game only: labels of the evaluation images; stays with the game, out of the user's reach.
    manifest: bytes | None = None
    game_delay_s: float = 0.0

    @property
    def script_name(self) -> str:
        return f"{self.user_id}_{self.game}.py"

    def user_command(self, model_path: str) -> list[str]:
        command = ["python3", "-u", self.script_name]
        if self.training:
            # One --name=value token each: legacy scripts declare --train with argparse type=bool.
            command += ["--train=True", f"--dataset={TRAIN_DATASET_DIR}", f"--model_path={model_path}"]
        return command

    def user_env(self) -> dict[str, str]:
        return {
            "USER_ID": self.user_id,
            "GAME_NAME": self.game,
            "IS_TRAINING": "true" if self.training else "false",
            "PORT": str(GAME_PORT),
            "WORKDIR_PATH": f"/{self.docker_id}/{self.game}",
            "HOME": "/tmp",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def game_command(self, python: str, log_path: str, manifest_path: str | None, port: int = GAME_PORT) -> list[str]:
        limits = self.limits
        command = [
            python, "-m", "game_vault.serve",
            "--game", self.game,
            "--log", log_path,
            "--user-id", self.user_id,
            "--seed", str(self.seed),
            "--port", str(port),
            "--move-timeout", str(limits.move_timeout_s),
            "--game-timeout", str(limits.game_timeout_s),
            "--connect-timeout", str(limits.connect_timeout_s),
            "--delay", str(self.game_delay_s),
        ]
        if manifest_path is not None:
            command += ["--images", manifest_path]
        return command


@dataclass
class SandboxResult:
    exit_code: int | None = None
    oom_killed: bool = False
    timed_out: bool = False
    stopped: bool = False
    output_truncated: bool = False
    duration_s: float = 0.0
    game: dict[str, object] | None = None
    log: bytes | None = None
    model: bytes | None = None
    output_tail: str = ""
    # Set when the platform failed (image missing, engine down): not the user's fault.
    infrastructure_error: str | None = None


class Runtime(Protocol):
    name: str

    async def run(self, job: SandboxJob) -> SandboxResult: ...

    async def stop(self, run_id: str) -> bool: ...

    async def reconcile(self, live_run_ids: set[str]) -> list[str]: ...

    async def close(self) -> None: ...


def parse_result_line(line: str) -> dict[str, object] | None:
    if not line.startswith(RESULT_PREFIX):
        return None
    try:
        value = json.loads(line[len(RESULT_PREFIX):])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class OutputCapture:
    """Keeps the head and tail of a stream up to ``cap`` bytes and counts everything."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.total = 0
        self._head = bytearray()
        self._tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap // 2 - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            if len(self._tail) > self.cap // 2:
                del self._tail[: len(self._tail) - self.cap // 2]

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def text(self) -> str:
        joined = bytes(self._head)
        if self._tail:
            joined += (b"\n...[output truncated]...\n" if self.truncated else b"") + bytes(self._tail)
        return joined.decode("utf-8", "replace")
