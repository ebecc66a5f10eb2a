"""`python -m game_vault.serve --game connect4`: the built-in X against a user O over sockets."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest
from game_vault_support import LegacyClient, RunningGame, system_messages

from game_vault.bots.connect4_bot import choose

StartGame = Callable[..., RunningGame]
CONNECTION_LINES = [
    "Waiting for two players...",
    "Game's AI (Symbole: X) connected.",
    "Player's AI (Symbole: O) connected.",
]


@pytest.mark.parametrize("opponent", ["legacy", "strong"])
def test_full_game_with_the_bot(start_game: StartGame, opponent: str) -> None:
    running = start_game("connect4", "--opponent", opponent, "--move-timeout", "5")
    completed = running.run_bot("connect4_bot.py")
    assert completed.returncode == 0, completed.stderr
    result = running.result()
    document = running.log()
    messages = system_messages(document)
    assert messages[:3] == CONNECTION_LINES
    moves = [event for event in document["gameStates"] if event["itemType"] == "move"]
    assert len(moves) == result["moves"] and moves[0]["player"] == "X"
    assert [move["player"] for move in moves] == ["X", "O"] * (len(moves) // 2) + ["X"] * (len(moves) % 2)
    kinds = [event.get("message", event["itemType"]) for event in document["gameStates"]]
    ending = {"win": "Player won.", "lose": "Player lost."}[result["outcome"]]
    if result["reason"] == "draw":
        ending = "Game is a draw. Player lost."
    assert kinds[-3:] == [ending, "score", "Game over."]
    score = document["gameStates"][-2]["int"]
    expected = max(0, 100 - 2 * len(moves)) if result["outcome"] == "win" else 2 * len(moves)
    assert score == result["score"] == expected


def test_user_gets_one_state_per_reply_and_both_get_the_end(start_game: StartGame) -> None:
    running = start_game("connect4", "--move-timeout", "5")
    client = LegacyClient(running.port)
    state = client.receive()  # O's first state follows X's first move
    assert state["currentTurn"] == "O" and state["playerSymbol"] == "O" and state["grid"].count("X") == 1
    while not state["isGameOver"]:
        client.send(str(choose([list(line) for line in state["grid"].split("\n")], "O")).encode())
        state = client.receive()
    assert client.receive_nothing_more()
    assert running.result()["outcome"] in ("win", "lose")


def test_three_invalid_inputs_end_in_error_with_a_final_message(start_game: StartGame) -> None:
    running = start_game("connect4")
    client = LegacyClient(running.port)
    client.receive()
    for bad in (b"abc", b"9\n"):
        client.send(bad)
        reply = client.receive()
        assert reply["errorMessage"] == "Invalid move. Try again." and reply["isGameOver"] is False
    client.send(b"-1")
    final = client.receive()
    assert final["isGameOver"] is True and final["currentTurn"] is None
    result = running.result()
    assert (result["outcome"], result["score"]) == ("error", 0)
    kinds = [event.get("message", event["itemType"]) for event in running.log()["gameStates"]]
    assert kinds[-9:] == [
        "Invalid input. Please enter a number.",
        "Wrong input count: 1/3",
        "Invalid column selection: 9. Choose between 0 and 6.",
        "Wrong input count: 2/3",
        "Invalid column selection: -1. Choose between 0 and 6.",
        "Wrong input count: 3/3",
        "Player entered 3 wrong inputs. Game ending in error.",
        "score",
        "Game over.",
    ]


def test_invalid_count_resets_on_the_players_own_valid_move(start_game: StartGame) -> None:
    running = start_game("connect4")
    client = LegacyClient(running.port)
    state = client.receive()
    for _ in range(3):
        client.send(b"x")
        client.receive()
        client.send(b"x")
        client.receive()
        client.send(str(choose([list(line) for line in state["grid"].split("\n")], "O")).encode())
        state = client.receive()
        if state["isGameOver"]:
            break
    client.close()
    running.result()
    messages = system_messages(running.log())
    assert messages.count("Wrong input count: 2/3") >= 2
    assert "Wrong input count: 3/3" not in messages


def test_user_disconnect_mid_game(start_game: StartGame) -> None:
    running = start_game("connect4")
    client = LegacyClient(running.port)
    client.receive()
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x00" * 8)
    client.close()
    result = running.result()
    assert (result["outcome"], result["reason"]) == ("error", "disconnect")
    assert system_messages(running.log())[-3:] == [
        "Player O disconnected.",
        "Player O disconnected. Game ended in error.",
        "Game over.",
    ]


def test_user_never_connects(start_game: StartGame) -> None:
    running = start_game("connect4", "--connect-timeout", "0.5")
    assert running.result()["reason"] == "no client connected"
    assert system_messages(running.log())[:2] == CONNECTION_LINES[:2]
    assert system_messages(running.log())[-2:] == ["No client connected within 0.5 second(s).", "Game over."]


def test_user_never_answers(start_game: StartGame) -> None:
    running = start_game("connect4", "--move-timeout", "0.5")
    client = LegacyClient(running.port)
    client.receive()
    final = client.receive()  # the timeout notice reaches the user too
    assert final["isGameOver"] is True
    assert running.result()["reason"] == "move timeout"
    assert system_messages(running.log())[-2:] == ["Player O timed out after 0.5 second(s).", "Game over."]
    client.close()
