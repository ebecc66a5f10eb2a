"""Snake rules as a pure state machine (protocol §6)."""

from __future__ import annotations

from game_vault.game import PLAYER
from game_vault.gamelog import GameLog
from game_vault.protocol import encode_message
from game_vault.snake import SIZE, SnakeGame


def _game(seed: int = 0) -> SnakeGame:
    game = SnakeGame(GameLog("snake", "NA", clock=lambda: "T"), seed)
    game.open()
    game.seated(PLAYER)
    return game


def _kinds(game: SnakeGame) -> list[str]:
    return [event.get("message", event["itemType"]) for event in game.log.events]  # type: ignore[misc]


def test_opening_events_in_order() -> None:
    game = _game()
    assert _kinds(game) == [
        "Game initialized.",
        "score",
        "food",
        "snake",
        "Game Manager waiting for a client...",
        "Client connected.",
    ]
    assert game.log.events[3] == {
        "timestamp": "T",
        "itemType": "snake",
        "last-cmd": "NA",
        "position": [[5, 5], [4, 5]],
    }
    assert list(game.state()) == ["grid", "snake", "food", "direction", "score", "isGameOver"]


def test_invalid_and_reverse_commands_still_advance() -> None:
    game = _game()
    game.food = (0, 0)
    game.apply(PLAYER, "MOVE_LEFT")  # reverse: ignored
    assert game.body[0] == (6, 5) and game.last_cmd == "NA"
    game.apply(PLAYER, "move_up")
    assert game.body[0] == (7, 5)
    game.apply(PLAYER, "MOVE_UP")
    assert game.body[0] == (7, 4) and game.last_cmd == "MOVE_UP"
    assert game.log.events[-1]["last-cmd"] == "MOVE_UP"


def test_eating_logs_food_score_then_snake() -> None:
    game = _game()
    game.food = (6, 5)
    game.apply(PLAYER, "MOVE_RIGHT")
    assert _kinds(game)[-3:] == ["food", "score", "snake"]
    assert game.score == 10 and len(game.body) == 3


def test_the_tail_cell_is_a_collision() -> None:
    game = _game()
    game.food = (0, 0)
    game.body = [(5, 5), (5, 6), (4, 6), (4, 5)]
    game.direction = "MOVE_UP"
    (reply,) = game.apply(PLAYER, "MOVE_LEFT")
    assert reply[1]["isGameOver"] is True
    assert game.result is not None and game.result.outcome == "lose"
    assert _kinds(game)[-3:] == [
        "Player lost. Collision detected.",
        "Game over.",
        "Sockets closed properly. Server shutdown complete.",
    ]
    assert game.log.events[-3]["last-cmd"] == "MOVE_LEFT"


def test_filling_the_grid_wins_and_the_largest_state_fits() -> None:
    game = _game()
    # A boustrophedon body covering every cell except (0, 9), with the food there.
    cells = [(x if y % 2 == 0 else SIZE - 1 - x, y) for y in range(SIZE) for x in range(SIZE)]
    game.body = list(reversed(cells[:-1]))
    game.food = cells[-1]
    game.direction = "MOVE_LEFT"
    game.score = 960
    (reply,) = game.apply(PLAYER, "MOVE_LEFT")
    message = reply[1]
    assert message["food"] == "None" and message["isGameOver"] is True and message["score"] == 960
    assert game.result is not None and game.result.outcome == "win"
    assert len(encode_message(message)) <= 1024
    assert "snake" not in _kinds(game)[-4:]


def test_same_seed_same_food() -> None:
    assert _game(7).food == _game(7).food
    assert {_game(seed).food for seed in range(10)} != {_game(0).food}
