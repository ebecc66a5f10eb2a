"""The harness in-process: a waiting player's disconnect is noticed at once, and a fault is logged."""

from __future__ import annotations

import json
import socket
import threading

from game_vault_support import free_port

from game_vault.connect4 import SEAT_X, Connect4Game
from game_vault.game import SERVER_ERROR_REASON
from game_vault.gamelog import GameLog
from game_vault.session import Limits, PlatformPlayer, run_session
from game_vault.snake import SnakeGame
from game_vault.types import Outbound, Result, Seat

LIMITS = Limits(move_timeout=5, game_timeout=10, connect_timeout=5)


class ScriptedX:
    """A platform player the test drives by hand."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None

    def connect(self, host: str, port: int, timeout: float) -> tuple[str, int]:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        return self.sock.getsockname()

    def start(self) -> None:
        pass

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def _run_in_thread(game, platform: dict[Seat, PlatformPlayer]) -> tuple[int, threading.Thread, list[Result]]:
    port, ready, results = free_port(), threading.Event(), []

    def target() -> None:
        results.append(
            run_session(game, host="127.0.0.1", port=port, limits=LIMITS, platform=platform, on_ready=ready.set)
        )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(5)
    return port, thread, results


def _messages(game) -> list[str]:
    return [event["message"] for event in game.log.events if event["itemType"] == "system"]


def test_a_waiting_player_disconnect_is_noticed_at_once() -> None:
    game = Connect4Game(GameLog("connect4", "NA"))
    x = ScriptedX()
    port, thread, results = _run_in_thread(game, {SEAT_X: x})
    user = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert x.sock is not None
    assert json.loads(x.sock.recv(1024))["currentTurn"] == "X"
    x.sock.sendall(b"3\n")
    assert json.loads(user.recv(1024))["currentTurn"] == "O"
    x.sock.close()  # X leaves while O is thinking
    notice = json.loads(user.recv(1024))
    assert notice["isGameOver"] is True and notice["message"] == "Opponent disconnected. Game ended."
    thread.join(5)
    assert results[0].outcome == "error"
    assert _messages(game)[-3:] == [
        "Player X disconnected.",
        "Player X disconnected. Game ended in error.",
        "Game over.",
    ]
    user.close()


class _BrokenSnake(SnakeGame):
    def apply(self, seat: Seat, command: str) -> list[Outbound]:
        raise RuntimeError("boom")


def test_a_fault_in_the_game_still_ends_it_with_a_log_line() -> None:
    game = _BrokenSnake(GameLog("snake", "NA"), seed=0)
    port, thread, results = _run_in_thread(game, {})
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.recv(1024)
    client.sendall(b"MOVE_UP")
    thread.join(5)
    assert results[0].reason == SERVER_ERROR_REASON
    assert _messages(game)[-2:] == ["Server error: boom", "Game over."]
    client.close()
