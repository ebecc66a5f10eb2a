"""`python -m game_vault.serve --game snake` end to end, driven like legacy clients."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from game_vault_support import REPO, LegacyClient, RunningGame, system_messages, without_timestamps

from game_vault.bots.snake_bot import choose

StartGame = Callable[..., RunningGame]


def _play(running: RunningGame, moves: list[bytes]) -> LegacyClient:
    client = LegacyClient(running.port)
    client.receive()
    for move in moves:
        client.send(move)
        if client.receive()["isGameOver"]:
            break
    return client


def test_full_game_with_the_bot_log_envelope_and_order(start_game: StartGame) -> None:
    running = start_game("snake", "--user-id", "65a1f0c2e4b0a1b2c3d4e5f6", "--seed", "3", "--move-timeout", "2")
    client = LegacyClient(running.port)
    state = client.receive()
    moves = 0
    while not state["isGameOver"]:
        client.send(choose(state).encode())
        state = client.receive()
        moves += 1
    result = running.result()
    document = running.log()
    assert list(document) == ["timestamp", "gameType", "userId", "gameId", "message", "gameStates"]
    assert (document["gameType"], document["userId"], document["gameId"]) == (
        "snake",
        "65a1f0c2e4b0a1b2c3d4e5f6",
        1,
    )
    assert document["message"] == result["outcome"] in ("win", "lose")
    assert result["score"] == state["score"] and result["moves"] == moves
    events = document["gameStates"]
    assert all(list(event)[:2] == ["timestamp", "itemType"] for event in events)
    kinds = [event.get("message", event["itemType"]) for event in events]
    assert kinds[:6] == [
        "Game initialized.",
        "score",
        "food",
        "snake",
        "Game Manager waiting for a client...",
        "Client connected.",
    ]
    ending = (
        "Player won. No more space left on the grid!"
        if result["outcome"] == "win"
        else "Player lost. Collision detected."
    )
    assert kinds[-3:] == [ending, "Game over.", "Sockets closed properly. Server shutdown complete."]
    body = kinds[6:-3]
    assert body.count("snake") == moves - 1  # no snake event for the fatal or winning move
    text = "".join("s" if kind == "snake" else "f" if kind == "food" else "c" for kind in body)
    assert text.replace("fcs", "").replace("s", "") in ("", "fc")
    assert [e["int"] for e in events if e["itemType"] == "score"][-1] == result["score"]


def _average_score(start_game: StartGame, bot: str, seeds: range) -> float:
    scores = []
    for seed in seeds:
        running = start_game("snake", "--seed", str(seed), "--move-timeout", "2")
        completed = running.run_bot(bot, SEED=str(seed))
        assert completed.returncode == 0, completed.stderr
        scores.append(running.result()["score"])
    return sum(scores) / len(scores)


def test_the_bot_beats_a_random_mover_by_a_wide_margin(start_game: StartGame) -> None:
    bot = _average_score(start_game, "snake_bot.py", range(3))
    random_mover = _average_score(start_game, "snake_random.py", range(3))
    assert bot >= 200 and bot >= 5 * max(random_mover, 10)


def test_same_seed_and_moves_give_the_same_log(start_game: StartGame) -> None:
    moves = [b"MOVE_UP", b"MOVE_LEFT", b"MOVE_LEFT", b"MOVE_DOWN", b"junk", b"MOVE_RIGHT"]
    logs = []
    for _ in range(2):
        running = start_game("snake", "--seed", "11")
        _play(running, moves).close()
        running.result()
        logs.append(without_timestamps(running.log()))
    assert logs[0] == logs[1]


def test_bare_newline_and_split_commands_read_the_same(start_game: StartGame) -> None:
    directions = ["MOVE_UP", "MOVE_LEFT", "MOVE_LEFT", "MOVE_DOWN", "MOVE_DOWN"]
    logs = []
    for framing in ("bare", "newline", "crlf", "split"):
        running = start_game("snake", "--seed", "5")
        client = LegacyClient(running.port)
        client.receive()
        for direction in directions:
            if framing == "split":
                client.send(direction[:5].encode())
                time.sleep(0.01)  # well within the 0.1 s grace
                client.send(direction[5:].encode())
            else:
                client.send((direction + {"bare": "", "newline": "\n", "crlf": "\r\n"}[framing]).encode())
            client.receive()
        client.close()
        running.result()
        logs.append(without_timestamps(running.log()))
    assert logs[1:] == logs[:1] * 3
    assert [e["last-cmd"] for e in logs[0]["gameStates"] if e["itemType"] == "snake"][1:] == directions


def test_glued_commands_and_garbage(start_game: StartGame) -> None:
    running = start_game("snake", "--seed", "5")
    client = LegacyClient(running.port)
    client.receive()
    client.send(b"MOVE_UP\nMOVE_LEFT\n")  # two commands, two replies (which may share one recv)
    replies = b""
    while replies.count(b"\n") < 2:
        replies += client.sock.recv(4096)
    assert [json.loads(line)["direction"] for line in replies.splitlines()] == ["MOVE_UP", "MOVE_LEFT"]
    client.send(b"MOVE_DOWNMOVE_DOWN")  # glued without newline: one invalid command
    state = client.receive()
    assert state["direction"] == "MOVE_LEFT" and state["snake"][0] == [3, 4]
    client.send(b"\xff\xfe\x00\x01garbage\n")
    assert client.receive()["snake"][0] == [2, 4]
    assert client.receive_nothing_more()
    client.close()
    running.result()
    snakes = [e for e in running.log()["gameStates"] if e["itemType"] == "snake"]
    assert [e["last-cmd"] for e in snakes[1:]] == ["MOVE_UP", "MOVE_LEFT", "MOVE_LEFT", "MOVE_LEFT"]


def test_a_10_mb_message_is_one_invalid_command(start_game: StartGame) -> None:
    running = start_game("snake", "--seed", "5")
    client = LegacyClient(running.port)
    client.receive()
    client.send(b"A" * 10_000_000 + b"\n")
    state = client.receive()
    assert state["snake"][0] == [6, 5] and not state["isGameOver"]
    client.send(b"MOVE_UP")
    assert client.receive()["snake"][0] == [6, 4]
    client.close()
    assert running.result()["moves"] == 2


def test_disconnect_mid_game(start_game: StartGame) -> None:
    running = start_game("snake")
    _play(running, [b"MOVE_UP"]).close()
    result = running.result()
    assert (result["outcome"], result["reason"]) == ("error", "client disconnected")
    assert system_messages(running.log())[-3:] == [
        "Client disconnected.",
        "Game over.",
        "Sockets closed properly. Server shutdown complete.",
    ]


def test_nobody_connects(start_game: StartGame) -> None:
    running = start_game("snake", "--connect-timeout", "0.5")
    assert running.result()["outcome"] == "error"
    assert system_messages(running.log())[-3:-1] == [
        "No client connected within 0.5 second(s).",
        "Game over.",
    ]


def test_a_client_that_never_answers_times_out(start_game: StartGame) -> None:
    running = start_game("snake", "--move-timeout", "0.5")
    client = LegacyClient(running.port)
    client.receive()
    result = running.result()
    assert (result["outcome"], result["reason"]) == ("error", "move timeout")
    assert system_messages(running.log())[-3:-1] == ["Player timed out after 0.5 second(s).", "Game over."]
    client.close()


def test_the_whole_game_limit(start_game: StartGame) -> None:
    running = start_game("snake", "--move-timeout", "5", "--game-timeout", "0.5")
    client = LegacyClient(running.port)
    client.receive()
    assert running.result()["reason"] == "game timeout"
    assert system_messages(running.log())[-3:] == [
        "Player's input is wrong. A crash occured. The program had to wait until its runtime limit has been reached.",
        "Program timeout of 0.5 seconds reached. Game terminated.",
        "Game over.",
    ]
    client.close()


def test_sigterm_ends_with_the_ctrl_c_lines_and_one_log(start_game: StartGame) -> None:
    running = start_game("snake")
    client = LegacyClient(running.port)
    client.receive()
    running.interrupt()
    assert running.result()["reason"] == "interrupted"
    assert system_messages(running.log())[-3:] == [
        "Ctrl+C detected. Shutting down gracefully...",
        "Game over.",
        "Sockets closed properly. Server shutdown complete.",
    ]
    assert [path.name for path in running.log_path.parent.iterdir()] == ["snake.json"]
    json.loads(running.log_path.read_text())  # exactly one document
    client.close()


def test_the_delay_setting_paces_states(start_game: StartGame) -> None:
    running = start_game("snake", "--delay", "0.3")
    client = LegacyClient(running.port)
    client.receive()
    started = time.monotonic()
    for move in (b"MOVE_UP", b"MOVE_UP"):
        client.send(move)
        client.receive()
    assert time.monotonic() - started >= 0.3
    client.close()
    running.result()


def test_bad_arguments_exit_2_with_one_line(tmp_path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "game_vault.serve", "--game", "chess", "--log", str(tmp_path / "x.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert completed.returncode == 2
    assert len(completed.stderr.strip().splitlines()) == 1
    missing = subprocess.run(
        [sys.executable, "-m", "game_vault.serve", "--game", "image", "--log", str(tmp_path / "x.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert missing.returncode == 2 and "--images" in missing.stderr


def test_a_second_client_is_refused(start_game: StartGame) -> None:
    running = start_game("snake")
    client = LegacyClient(running.port)
    client.receive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", running.port), timeout=2).close()
    client.close()
    running.result()


def test_a_port_in_use_exits_1(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "game_vault.serve",
                "--game",
                "snake",
                "--log",
                str(tmp_path / "x.json"),
                "--port",
                port,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
    assert completed.returncode == 1 and "cannot listen" in completed.stderr
    assert not (tmp_path / "x.json").exists()
