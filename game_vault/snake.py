"""Snake on a 10 × 10 grid (protocol §6). One client command moves the snake exactly one cell."""

from __future__ import annotations

import random

from game_vault.game import CRASH_WAIT, PLAYER, SingleClientGame
from game_vault.gamelog import GameLog
from game_vault.types import Outbound, Outcome, Seat

Cell = tuple[int, int]

SIZE = 10
DIRECTIONS: dict[str, Cell] = {
    "MOVE_UP": (0, -1),
    "MOVE_DOWN": (0, 1),
    "MOVE_LEFT": (-1, 0),
    "MOVE_RIGHT": (1, 0),
}
_OPPOSITE = {
    "MOVE_UP": "MOVE_DOWN",
    "MOVE_DOWN": "MOVE_UP",
    "MOVE_LEFT": "MOVE_RIGHT",
    "MOVE_RIGHT": "MOVE_LEFT",
}
_FOOD_POINTS = 10


class SnakeGame(SingleClientGame):
    game_type = "snake"
    _game_timeout_lines = (CRASH_WAIT,)

    def __init__(self, log: GameLog, seed: int) -> None:
        super().__init__(log)
        self._rng = random.Random(seed)
        self.body: list[Cell] = [(5, 5), (4, 5)]
        self.direction = "MOVE_RIGHT"
        self.score = 0
        self.last_cmd = "NA"
        self.food: Cell | None = self._place_food()

    def open(self) -> None:
        self.log.info("Game initialized.")
        self.log.add("score", int=self.score)
        self._log_food()
        self._log_snake()
        self.log.info("Game Manager waiting for a client...")

    def start(self) -> list[Outbound]:
        return [(PLAYER, self.state())]

    def accepts(self, token: str) -> bool:
        return token in DIRECTIONS

    def awaiting(self) -> Seat:
        return PLAYER

    def apply(self, seat: Seat, command: str) -> list[Outbound]:
        self.moves += 1
        # Anything that is not a direction, and a reversal, is ignored but the snake still advances.
        if command in DIRECTIONS and command != _OPPOSITE[self.direction]:
            self.direction = command
            self.last_cmd = command
        dx, dy = DIRECTIONS[self.direction]
        head = (self.body[0][0] + dx, self.body[0][1] + dy)
        if not (0 <= head[0] < SIZE and 0 <= head[1] < SIZE) or head in self.body:
            # The tail cell counts too, although it is about to move (legacy rule).
            self.log.info("Player lost. Collision detected.", **{"last-cmd": self.last_cmd})
            self._end("lose", self.score, "collision")
            return [(PLAYER, self.state())]
        self.body.insert(0, head)
        if head == self.food:
            self.food = self._place_food()
            if self.food is None:
                self.log.info("Player won. No more space left on the grid!")
                self._end("win", self.score, "grid full")
                return [(PLAYER, self.state())]
            self.score += _FOOD_POINTS
            self._log_food()
            self.log.add("score", int=self.score)
        else:
            self.body.pop()
        self._log_snake()
        return [(PLAYER, self.state())]

    def state(self) -> dict[str, object]:
        return {
            "grid": self._grid(),
            "snake": [list(cell) for cell in self.body],
            "food": list(self.food) if self.food is not None else "None",
            "direction": self.direction,
            "score": self.score,
            "isGameOver": self.is_over,
        }

    def _grid(self) -> str:
        rows = [["."] * SIZE for _ in range(SIZE)]
        if self.food is not None:
            rows[self.food[1]][self.food[0]] = "F"
        for x, y in self.body[1:]:
            rows[y][x] = "B"
        head_x, head_y = self.body[0]
        rows[head_y][head_x] = "H"
        return "\n".join("".join(row) for row in rows)

    def _place_food(self) -> Cell | None:
        occupied = set(self.body)
        free = [(x, y) for y in range(SIZE) for x in range(SIZE) if (x, y) not in occupied]
        return self._rng.choice(free) if free else None

    def _log_food(self) -> None:
        assert self.food is not None
        self.log.add("food", position=list(self.food))

    def _log_snake(self) -> None:
        self.log.add("snake", **{"last-cmd": self.last_cmd, "position": [list(cell) for cell in self.body]})

    def _score(self) -> int:
        return self.score

    def _outcome_on_disconnect(self) -> tuple[Outcome, int]:
        return "error", self.score
