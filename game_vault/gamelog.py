"""The game log (protocol §5): one JSON document per game, written once and atomically.

Envelope keys in order ``timestamp, gameType, userId, gameId, message, gameStates``; every event
starts with ``timestamp`` and ``itemType``. Only the harness writes the file, after the game ends.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from game_vault.types import Outcome

Clock = Callable[[], str]
Event = dict[str, object]


def local_timestamp() -> str:
    """``YYYY-MM-DD HH:MM:SS`` in the sandbox's local time, whole seconds."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())


def format_seconds(seconds: float) -> str:
    """``10`` for 10.0, ``1.5`` for 1.5: how a configured limit reads in a log line."""
    return f"{seconds:g}"


class GameLog:
    """Collects events in order; :meth:`write` turns them into the one log document."""

    def __init__(self, game_type: str, user_id: str, clock: Clock = local_timestamp) -> None:
        self.game_type = game_type
        self.user_id = user_id
        self._clock = clock
        self.events: list[Event] = []

    def add(self, item_type: str, **fields: object) -> None:
        """Append one event; ``fields`` keep their keyword order (hyphenated keys via ``**{}``)."""
        self.events.append({"timestamp": self._clock(), "itemType": item_type, **fields})

    def info(self, message: str, **extra: object) -> None:
        self.add("system", logType="INFO", message=message, **extra)

    def warning(self, message: str) -> None:
        self.add("system", logType="WARNING", message=message)

    def error(self, message: str) -> None:
        self.add("system", logType="ERROR", message=message)

    def document(self, outcome: Outcome) -> dict[str, object]:
        return {
            "timestamp": self._clock(),
            "gameType": self.game_type,
            "userId": self.user_id,
            "gameId": 1,
            "message": outcome,
            "gameStates": self.events,
        }

    def write(self, path: Path, outcome: Outcome) -> None:
        """Write the document to ``path`` atomically: a temporary file beside it, then a rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(self.document(outcome), indent=4) + "\n"
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
