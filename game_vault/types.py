"""Type aliases and small value types shared by the harness and the games."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Seat = str
"""A connected player's role: ``"player"`` for one-client games, ``"X"``/``"O"`` for Connect 4."""

Message = dict[str, object]
"""One server → client JSON object, keys in wire order."""

Outbound = tuple[Seat, Message]
"""A message and the seat it goes to."""

Outcome = Literal["win", "lose", "error"]


@dataclass(frozen=True)
class Result:
    """How a game ended, from the user's point of view; printed as the ``LUMIA_RESULT`` line."""

    outcome: Outcome
    score: int
    moves: int
    reason: str
