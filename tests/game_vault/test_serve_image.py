"""`python -m game_vault.serve --game image` with the reference bot trained on a generated dataset."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from game_vault_support import BOTS, LegacyClient, RunningGame, system_messages

from game_vault.images import copy_images, generate_dataset, select_images, write_manifest

StartGame = Callable[..., RunningGame]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained model at ``model.pt`` and 20 held-out images under neutral names."""
    root = tmp_path_factory.mktemp("image")
    training = generate_dataset(root / "train", seed=1, per_class=40, size=64)
    evaluation = generate_dataset(root / "eval", seed=2, per_class=20, size=64)
    work = root / "work"
    work.mkdir()
    trained = subprocess.run(
        [
            sys.executable,
            str(BOTS / "image_bot.py"),
            "--train=True",
            f"--dataset={training}",
            f"--model_path={work / 'model.pt'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert trained.returncode == 0, trained.stderr
    selected = select_images(evaluation, seed=3)
    copy_images(selected, work)
    write_manifest(selected, root / "manifest.json")
    return work


def test_evaluation_with_the_trained_bot(start_game: StartGame, workdir: Path) -> None:
    running = start_game("image", "--images", str(workdir.parent / "manifest.json"), "--move-timeout", "2")
    completed = running.run_bot("image_bot.py", cwd=workdir)
    assert completed.returncode == 0, completed.stderr
    result = running.result()
    document = running.log()
    events = document["gameStates"]
    assert len(events) == 25 and document["gameType"] == "image"
    responses = [event for event in events if event["itemType"] == "response"]
    assert len(responses) == 20
    assert all(
        list(event) == ["timestamp", "itemType", "AIrespons", "expected", "correct", "score"] for event in responses
    )
    assert {event["expected"] for event in responses} <= {"cat", "dog"}
    assert system_messages(document) == [
        "20 images loaded for evaluation.",
        "Game Manager waiting for a client...",
        "Client connected.",
        "Game over.",
        "Sockets closed properly. Server shutdown complete.",
    ]
    assert result["score"] == responses[-1]["score"] >= 15
    assert result["outcome"] == document["message"] == "win"


def test_invalid_answers_are_capped(start_game: StartGame, workdir: Path) -> None:
    running = start_game("image", "--images", str(workdir.parent / "manifest.json"))
    client = LegacyClient(running.port)
    prompt = client.receive()
    assert prompt["imagePath"].startswith("images/img_")
    for answer in (b"cat", b"1.5\n"):
        client.send(answer)
        assert client.receive() == prompt  # the same image again
    client.send(b"dog")
    assert client.receive_nothing_more()
    result = running.result()
    assert (result["outcome"], result["reason"]) == ("error", "invalid responses")
    assert system_messages(running.log())[-5:-2] == [
        "Invalid response: 1.5",
        "Invalid response: dog",
        "3 invalid responses in a row. Game ending in error.",
    ]


def test_no_model_fails_fast_on_the_move_limit(start_game: StartGame, workdir: Path) -> None:
    running = start_game("image", "--images", str(workdir.parent / "manifest.json"), "--move-timeout", "0.5")
    client = LegacyClient(running.port)
    client.receive()
    result = running.result()
    assert (result["outcome"], result["reason"]) == ("error", "move timeout")
    client.close()
