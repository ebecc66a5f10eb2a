"""Connect 4 rules, delivery and the platform strategies (protocol §7)."""

from __future__ import annotations

from game_vault.connect4 import SEAT_O, SEAT_X, Board, Connect4Game
from game_vault.gamelog import GameLog
from game_vault.opponent import legacy_strategy, strong_strategy_for


def _game() -> Connect4Game:
    game = Connect4Game(GameLog("connect4", "NA", clock=lambda: "T"))
    game.open()
    game.seated(SEAT_X)
    game.seated(SEAT_O)
    return game


def _messages(game: Connect4Game) -> list[str]:
    return [str(event.get("message", event["itemType"])) for event in game.log.events]


def test_only_the_next_player_gets_the_new_state() -> None:
    game = _game()
    assert [seat for seat, _ in game.start()] == [SEAT_X]
    replies = game.apply(SEAT_X, "3")
    assert [seat for seat, _ in replies] == [SEAT_O]
    assert replies[0][1] == {
        "grid": game.board.grid(),
        "currentTurn": "O",
        "playerSymbol": "O",
        "isGameOver": False,
    }
    assert game.log.events[-1] == {
        "timestamp": "T",
        "itemType": "move",
        "player-type": "non-user",
        "player": "X",
        "column": 3,
        "row": 5,
    }


def test_invalid_inputs_count_per_player_and_reset_on_own_valid_move() -> None:
    game = _game()
    game.apply(SEAT_X, "0")
    for bad in ("abc", "9"):
        (reply,) = game.apply(SEAT_O, bad)
        assert reply == (SEAT_O, {**game.state(SEAT_O), "errorMessage": "Invalid move. Try again."})
    game.apply(SEAT_O, "+1")  # valid: O's counter resets
    assert game.wrong_inputs == {"X": 0, "O": 0}
    game.apply(SEAT_X, "x")
    game.apply(SEAT_X, "0")
    for bad in ("-1", "7"):
        game.apply(SEAT_O, bad)
    assert not game.is_over
    replies = game.apply(SEAT_O, "")
    assert game.result is not None and game.result.outcome == "error" and game.result.score == 0
    assert {seat for seat, _ in replies} == {"X", "O"}
    assert all(message["isGameOver"] is True for _, message in replies)
    assert _messages(game)[-5:] == [
        "Invalid input. Please enter a number.",
        "Wrong input count: 3/3",
        "Player entered 3 wrong inputs. Game ending in error.",
        "score",
        "Game over.",
    ]


def test_full_column_is_invalid() -> None:
    game = _game()
    for _ in range(3):
        game.apply(SEAT_X, "6")
        game.apply(SEAT_O, "6")
    game.apply(SEAT_X, "06")
    assert _messages(game)[-2:] == ["Column 6 is full.", "Wrong input count: 1/3"]


def test_user_win_scores_and_both_get_the_final_state() -> None:
    game = _game()
    for column in "0101010":
        replies = game.apply(game.awaiting(), column)
    game2 = _game()
    for column in "6050403":
        replies = game2.apply(game2.awaiting(), column)
    assert game.result is not None and game.result.outcome == "lose" and game.result.score == 14
    assert game2.result is not None and game2.result.outcome == "lose"
    game3 = _game()
    for column in "60504030":
        replies = game3.apply(game3.awaiting(), column)
    assert game3.result is not None
    assert (game3.result.outcome, game3.result.score) == ("win", 100 - 2 * 8)
    assert _messages(game3)[-3:] == ["Player won.", "score", "Game over."]
    assert {seat for seat, message in replies if message["isGameOver"]} == {"X", "O"}


def test_legacy_strategy_wins_then_blocks_then_prefers_the_centre() -> None:
    board = Board()
    for column in (0, 1, 2):
        board.drop(column, "X")
    assert legacy_strategy(board, "X") == 3
    block = Board()
    for column in (4, 5, 6):
        block.drop(column, "O")
    assert legacy_strategy(block, "X") == 3
    assert legacy_strategy(Board(), "X") == 3


def test_strong_beats_legacy_and_is_deterministic_for_a_seed() -> None:
    def play(seed: int) -> tuple[str, str]:
        board, moves = Board(), []
        strategies = {"X": strong_strategy_for(seed), "O": legacy_strategy}
        piece = "X"
        while not board.is_full():
            column = strategies[piece](board, piece)
            moves.append(str(column))
            row = board.drop(column, piece)
            if board.wins_at(row, column):
                return piece, "".join(moves)
            piece = "O" if piece == "X" else "X"
        return "draw", "".join(moves)

    winner, moves = play(1)
    assert winner == "X"
    assert play(1) == (winner, moves)
