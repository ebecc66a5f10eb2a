"""The shape every game offers the harness (:mod:`game_vault.session`).

A game is a pure state machine over commands: it never touches a socket or a clock. The harness
seats the clients, feeds it one command at a time from the seat it is :meth:`Game.awaiting`, sends
back what it returns, and tells it how the session ended when the game itself did not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from game_vault.gamelog import GameLog, format_seconds
from game_vault.types import Outbound, Outcome, Result, Seat

PLAYER: Seat = "player"
GAME_OVER = "Game over."
SHUTDOWN_COMPLETE = "Sockets closed properly. Server shutdown complete."
INTERRUPTED = "Ctrl+C detected. Shutting down gracefully..."
CRASH_WAIT = (
    "Player's input is wrong. A crash occured. The program had to wait until its runtime limit has been reached."
)


SERVER_ERROR_REASON = "server error"


def no_client_message(seconds: float) -> str:
    return f"No client connected within {format_seconds(seconds)} second(s)."


class Game(ABC):
    """A seeded game. Subclasses set ``game_type`` and ``seats`` (in connection order)."""

    game_type: ClassVar[str]
    seats: ClassVar[tuple[Seat, ...]]

    def __init__(self, log: GameLog) -> None:
        self.log = log
        self.result: Result | None = None
        self.moves = 0

    @property
    def is_over(self) -> bool:
        return self.result is not None

    @abstractmethod
    def open(self) -> None:
        """Log the events that precede the first connection."""

    @abstractmethod
    def seated(self, seat: Seat) -> None:
        """A client took ``seat``."""

    @abstractmethod
    def start(self) -> list[Outbound]:
        """Every seat is taken: the first messages."""

    @abstractmethod
    def accepts(self, token: str) -> bool:
        """Whether a stripped, unterminated token is a complete valid command (framing rule 2)."""

    @abstractmethod
    def awaiting(self) -> Seat:
        """The seat whose command the game needs next."""

    @abstractmethod
    def apply(self, seat: Seat, command: str) -> list[Outbound]:
        """Play one stripped command from ``seat``; the replies to send."""

    # Endings the game does not decide itself. Each logs its tail, sets ``result`` and returns the
    # terminal notices for the clients that are still there.

    @abstractmethod
    def disconnected(self, seat: Seat, abrupt: bool) -> list[Outbound]: ...

    @abstractmethod
    def move_timed_out(self, seat: Seat, seconds: float) -> list[Outbound]: ...

    @abstractmethod
    def game_timed_out(self, seconds: float) -> list[Outbound]: ...

    @abstractmethod
    def no_client(self, seconds: float) -> list[Outbound]: ...

    @abstractmethod
    def interrupted(self) -> list[Outbound]: ...

    def server_error(self, error: Exception) -> None:
        """A fault of the harness or the game itself: logged, and the game ends in ``error``."""
        self.log.error(f"Server error: {error}")
        self.log.info(GAME_OVER)
        self._finish("error", 0, SERVER_ERROR_REASON)

    def _finish(self, outcome: Outcome, score: int, reason: str) -> None:
        self.result = Result(outcome=outcome, score=score, moves=self.moves, reason=reason)


class SingleClientGame(Game):
    """Snake and Image: one client, and the same lifecycle lines (§6.4, §8.3).

    Subclasses decide the outcome of an early disconnect through :meth:`_outcome_on_disconnect`.
    """

    seats = (PLAYER,)
    _game_timeout_lines: ClassVar[tuple[str, ...]] = ()

    def seated(self, seat: Seat) -> None:
        self.log.info("Client connected.")

    def disconnected(self, seat: Seat, abrupt: bool) -> list[Outbound]:
        self.log.error("Client disconnected abruptly." if abrupt else "Client disconnected.")
        outcome, score = self._outcome_on_disconnect()
        self._end(outcome, score, "client disconnected")
        return []

    def move_timed_out(self, seat: Seat, seconds: float) -> list[Outbound]:
        self.log.error(f"Player timed out after {format_seconds(seconds)} second(s).")
        self._end("error", self._score(), "move timeout")
        return []

    def game_timed_out(self, seconds: float) -> list[Outbound]:
        for line in self._game_timeout_lines:
            self.log.error(line)
        self.log.error(f"Program timeout of {format_seconds(seconds)} seconds reached. Game terminated.")
        self.log.info(GAME_OVER)  # legacy logs no shutdown line after a program timeout
        self._finish("error", self._score(), "game timeout")
        return []

    def no_client(self, seconds: float) -> list[Outbound]:
        self.log.error(no_client_message(seconds))
        self._end("error", 0, "no client connected")
        return []

    def interrupted(self) -> list[Outbound]:
        self.log.warning(INTERRUPTED)
        self._end("error", self._score(), "interrupted")
        return []

    def _end(self, outcome: Outcome, score: int, reason: str) -> None:
        self.log.info(GAME_OVER)
        self.log.info(SHUTDOWN_COMPLETE)
        self._finish(outcome, score, reason)

    @abstractmethod
    def _score(self) -> int: ...

    @abstractmethod
    def _outcome_on_disconnect(self) -> tuple[Outcome, int]: ...
