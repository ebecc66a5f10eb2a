"""Connect Four, 7 × 6 (protocol §7). X is the platform opponent, O the user; X moves first.

A player receives a state only when it must act or the game ends, so two states never glue.
"""

from __future__ import annotations

import re

from game_vault.game import CRASH_WAIT, GAME_OVER, INTERRUPTED, Game, no_client_message
from game_vault.gamelog import GameLog, format_seconds
from game_vault.types import Message, Outbound, Outcome, Seat

ROWS = 6
COLUMNS = 7
SEAT_X: Seat = "X"
SEAT_O: Seat = "O"
MAX_WRONG_INPUTS = 3
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _windows() -> tuple[tuple[tuple[int, int], ...], ...]:
    """Every run of four cells, as ``(row, column)``: the 69 ways to win."""
    runs = []
    for row in range(ROWS):
        for column in range(COLUMNS):
            for d_row, d_column in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                cells = tuple((row + i * d_row, column + i * d_column) for i in range(4))
                if all(0 <= r < ROWS and 0 <= c < COLUMNS for r, c in cells):
                    runs.append(cells)
    return tuple(runs)


WINDOWS = _windows()
WINDOWS_THROUGH = {
    (row, column): tuple(window for window in WINDOWS if (row, column) in window)
    for row in range(ROWS)
    for column in range(COLUMNS)
}


def other(seat: Seat) -> Seat:
    return SEAT_O if seat == SEAT_X else SEAT_X


def parse_column(token: str) -> int | None:
    """ASCII decimal, surrounding whitespace already stripped; ``03`` and ``+3`` are 3."""
    return int(token) if _INTEGER.fullmatch(token) else None


class Board:
    """Cells by ``[row][column]``, row 0 at the top, ``.`` for empty."""

    def __init__(self, cells: list[list[str]] | None = None) -> None:
        self.cells = cells or [["."] * COLUMNS for _ in range(ROWS)]

    @classmethod
    def from_grid(cls, grid: str) -> Board:
        return cls([list(line) for line in grid.split("\n")])

    def grid(self) -> str:
        return "\n".join("".join(row) for row in self.cells)

    def playable(self, column: int) -> bool:
        return self.cells[0][column] == "."

    def playable_columns(self) -> list[int]:
        return [column for column in range(COLUMNS) if self.playable(column)]

    def drop(self, column: int, piece: str) -> int:
        """Place ``piece`` in the lowest empty cell of a playable column; the row it landed on."""
        for row in range(ROWS - 1, -1, -1):
            if self.cells[row][column] == ".":
                self.cells[row][column] = piece
                return row
        raise ValueError(f"column {column} is full")

    def lift(self, column: int) -> None:
        """Undo the last drop in ``column`` (search helper)."""
        for row in range(ROWS):
            if self.cells[row][column] != ".":
                self.cells[row][column] = "."
                return

    def is_full(self) -> bool:
        return not self.playable_columns()

    def wins_at(self, row: int, column: int) -> bool:
        """Whether the piece at ``(row, column)`` completes four in a row."""
        cells = self.cells
        piece = cells[row][column]
        return any(all(cells[r][c] == piece for r, c in window) for window in WINDOWS_THROUGH[row, column])


class Connect4Game(Game):
    game_type = "connect4"
    seats = (SEAT_X, SEAT_O)

    def __init__(self, log: GameLog, seed: int = 0) -> None:
        super().__init__(log)  # the rules have no randomness; the seed is the opponent's
        self.board = Board()
        self.turn: Seat = SEAT_X
        self.wrong_inputs = {SEAT_X: 0, SEAT_O: 0}

    def open(self) -> None:
        self.log.info("Waiting for two players...")

    def seated(self, seat: Seat) -> None:
        who = "Game's AI" if seat == SEAT_X else "Player's AI"
        self.log.info(f"{who} (Symbole: {seat}) connected.")

    def start(self) -> list[Outbound]:
        return [(SEAT_X, self.state(SEAT_X))]

    def accepts(self, token: str) -> bool:
        return parse_column(token) is not None

    def awaiting(self) -> Seat:
        return self.turn

    def apply(self, seat: Seat, command: str) -> list[Outbound]:
        column = parse_column(command)
        if column is None:
            return self._wrong_input(seat, "Invalid input. Please enter a number.")
        if not 0 <= column < COLUMNS:
            return self._wrong_input(seat, f"Invalid column selection: {column}. Choose between 0 and 6.")
        if not self.board.playable(column):
            return self._wrong_input(seat, f"Column {column} is full.")
        self.wrong_inputs[seat] = 0
        row = self.board.drop(column, seat)
        self.moves += 1
        self.log.add(
            "move",
            **{"player-type": "non-user" if seat == SEAT_X else "user"},
            player=seat,
            column=column,
            row=row,
        )
        self.turn = other(seat)
        if self.board.wins_at(row, column):
            if seat == SEAT_O:
                return self._decided("Player won.", "win", max(0, 100 - 2 * self.moves), "player won")
            return self._decided("Player lost.", "lose", 2 * self.moves, "opponent won")
        if self.board.is_full():
            return self._decided("Game is a draw. Player lost.", "lose", 2 * self.moves, "draw")
        return [(self.turn, self.state(self.turn))]

    def state(self, receiver: Seat) -> Message:
        return {
            "grid": self.board.grid(),
            "currentTurn": self.turn,
            "playerSymbol": receiver,
            "isGameOver": self.is_over,
        }

    def disconnected(self, seat: Seat, abrupt: bool) -> list[Outbound]:
        self.log.error(f"Player {seat} disconnected.")
        self.log.error(f"Player {seat} disconnected. Game ended in error.")
        self._end_in_error("disconnect")
        return [(other(seat), self._ended(other(seat), "Opponent disconnected. Game ended."))]

    def move_timed_out(self, seat: Seat, seconds: float) -> list[Outbound]:
        self.log.error(f"Player {seat} timed out after {_duration(seconds)}.")
        self._end_in_error("move timeout")
        return self._to_both(f"Player {seat} timed out. Game ended.")

    def game_timed_out(self, seconds: float) -> list[Outbound]:
        self.log.error(CRASH_WAIT)
        self.log.error(f"Program timeout of {format_seconds(seconds)} seconds reached. Terminating game.")
        self._end_in_error("game timeout")
        message = "Program timeout reached. Game ended."
        return [(seat, self._ended(None, message)) for seat in self.seats]

    def no_client(self, seconds: float) -> list[Outbound]:
        self.log.error(no_client_message(seconds))
        self._end_in_error("no client connected")
        return self._to_both("No opponent connected. Game ended.")

    def interrupted(self) -> list[Outbound]:
        self.log.warning(INTERRUPTED)
        self._end_in_error("interrupted")
        return self._to_both("Server shutting down. Game ended.")

    def _wrong_input(self, seat: Seat, reason: str) -> list[Outbound]:
        self.log.error(reason)
        self.wrong_inputs[seat] += 1
        self.log.error(f"Wrong input count: {self.wrong_inputs[seat]}/{MAX_WRONG_INPUTS}")
        if self.wrong_inputs[seat] < MAX_WRONG_INPUTS:
            return [(seat, {**self.state(seat), "errorMessage": "Invalid move. Try again."})]
        self.log.error("Player entered 3 wrong inputs. Game ending in error.")
        self._end_in_error("invalid inputs")
        return self._to_both(f"Player {seat} entered 3 wrong inputs. Game ended.")

    def _decided(self, line: str, outcome: Outcome, score: int, reason: str) -> list[Outbound]:
        self.log.info(line)
        self.log.add("score", int=score)
        self.log.info(GAME_OVER)
        self._finish(outcome, score, reason)
        return [(seat, self.state(seat)) for seat in self.seats]

    def _end_in_error(self, reason: str) -> None:
        self.log.add("score", int=0)
        self.log.info(GAME_OVER)
        self._finish("error", 0, reason)

    def _ended(self, receiver: Seat | None, message: str) -> Message:
        return {
            "grid": self.board.grid(),
            "currentTurn": None,
            "playerSymbol": receiver,
            "isGameOver": True,
            "message": message,
        }

    def _to_both(self, message: str) -> list[Outbound]:
        return [(seat, self._ended(seat, message)) for seat in self.seats]


def _duration(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    if minutes >= 1:
        return f"{int(minutes)} minute(s) and {format_seconds(rest)} second(s)"
    return f"{format_seconds(seconds)} second(s)"
