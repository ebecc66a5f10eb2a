"""The platform opponent X for Connect 4 (protocol §7.5), run by the harness as a real client.

Two strategies, both deterministic for a seed: ``legacy`` keeps the legacy platform's play so
results stay comparable; ``strong`` searches deeper with a positional evaluation.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Callable

from game_vault.connect4 import COLUMNS, ROWS, WINDOWS, Board, other

Strategy = Callable[[Board, str], int]

_WIN = 100_000
_CENTRE = COLUMNS // 2
_CENTRE_FIRST = (3, 2, 4, 1, 5, 0, 6)
_LEGACY_DEPTH = 3
_STRONG_DEPTH = 5


def _winning_column(board: Board, piece: str) -> int | None:
    for column in board.playable_columns():
        row = board.drop(column, piece)
        won = board.wins_at(row, column)
        board.lift(column)
        if won:
            return column
    return None


def legacy_strategy(board: Board, me: str) -> int:
    """Win now, else block, else minimax depth 3 on own centre pieces; ties to the lowest column."""
    for piece in (me, other(me)):
        column = _winning_column(board, piece)
        if column is not None:
            return column
    best_column, best_value = board.playable_columns()[0], -float("inf")
    for column in board.playable_columns():
        row = board.drop(column, me)
        value = _WIN if board.wins_at(row, column) else _legacy_minimax(board, me, _LEGACY_DEPTH - 1, False)
        board.lift(column)
        if value > best_value:
            best_column, best_value = column, value
    return best_column


def _legacy_minimax(board: Board, me: str, depth: int, maximizing: bool) -> float:
    if depth == 0 or board.is_full():
        return 3 * sum(board.cells[row][_CENTRE] == me for row in range(ROWS))
    piece = me if maximizing else other(me)
    values = []
    for column in board.playable_columns():
        row = board.drop(column, piece)
        if board.wins_at(row, column):
            values.append(_WIN if maximizing else -_WIN)
        else:
            values.append(_legacy_minimax(board, me, depth - 1, not maximizing))
        board.lift(column)
    return max(values) if maximizing else min(values)


def strong_strategy_for(seed: int, depth: int = _STRONG_DEPTH) -> Strategy:
    """Alpha-beta negamax over a window evaluation; equal moves are ordered by a seeded RNG."""
    rng = random.Random(seed)

    def strong_strategy(board: Board, me: str) -> int:
        for piece in (me, other(me)):
            column = _winning_column(board, piece)
            if column is not None:
                return column
        root = board.playable_columns()
        rng.shuffle(root)
        best_column, alpha = root[0], -float("inf")
        for column in root:
            row = board.drop(column, me)
            value = -_negamax(board, other(me), row, column, depth - 1, -float("inf"), -alpha)
            board.lift(column)
            if value > alpha:
                best_column, alpha = column, value
        return best_column

    return strong_strategy


def _negamax(board: Board, to_move: str, row: int, column: int, depth: int, alpha: float, beta: float) -> float:
    if board.wins_at(row, column):
        return -(_WIN + depth)  # the previous mover won; sooner wins weigh more
    if depth == 0 or board.is_full():
        return _evaluate(board, to_move)
    for next_column in _CENTRE_FIRST:
        if not board.playable(next_column):
            continue
        next_row = board.drop(next_column, to_move)
        value = -_negamax(board, other(to_move), next_row, next_column, depth - 1, -beta, -alpha)
        board.lift(next_column)
        alpha = max(alpha, value)
        if alpha >= beta:
            break
    return alpha


_WINDOW_VALUE = (0, 1, 4, 16, 0)


def _evaluate(board: Board, me: str) -> float:
    """Open windows weighted by how full they are, plus centre control."""
    cells = board.cells
    them = other(me)
    value = 0.0
    for window in WINDOWS:
        pieces = [cells[r][c] for r, c in window]
        mine, theirs = pieces.count(me), pieces.count(them)
        if theirs == 0:
            value += _WINDOW_VALUE[mine]
        elif mine == 0:
            value -= _WINDOW_VALUE[theirs]
    return value + 2 * sum(cells[row][_CENTRE] == me for row in range(ROWS))


def strategy_named(name: str, seed: int) -> Strategy:
    if name == "legacy":
        return legacy_strategy
    if name == "strong":
        return strong_strategy_for(seed)
    raise ValueError(f"unknown opponent strategy {name!r}")


class PlatformOpponent:
    """Plays X over a real connection; the harness connects it before anyone else may start."""

    def __init__(self, strategy: Strategy) -> None:
        self._strategy = strategy
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def connect(self, host: str, port: int, timeout: float) -> tuple[str, int]:
        """Connect to the listening game; the local address the game will see as the peer."""
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.settimeout(None)
        return self._sock.getsockname()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._play, name="connect4-opponent", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _play(self) -> None:
        assert self._sock is not None
        try:
            with self._sock.makefile("r", encoding="utf-8") as lines:
                for line in lines:
                    state = json.loads(line)
                    if state.get("isGameOver"):
                        return
                    if state.get("currentTurn") == state.get("playerSymbol"):
                        column = self._strategy(Board.from_grid(state["grid"]), state["playerSymbol"])
                        self._sock.sendall(str(column).encode())  # a bare digit, as legacy X sent
        except (OSError, ValueError):
            return  # the game closed the connection; it logs whatever happened
