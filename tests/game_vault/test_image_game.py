"""Image evaluation as a pure state machine (protocol §8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from game_vault.game import PLAYER
from game_vault.gamelog import GameLog
from game_vault.image import ImageGame, Manifest, ManifestError, Prompt, load_manifest, parse_answer


def _game(labels: list[int]) -> ImageGame:
    manifest = Manifest(
        prompts=tuple(Prompt(f"images/img_{i:02d}.png", label) for i, label in enumerate(labels)),
        classes=("cat", "dog"),
    )
    game = ImageGame(GameLog("image", "NA", clock=lambda: "T"), 0, manifest)
    game.open()
    game.seated(PLAYER)
    return game


@pytest.mark.parametrize(
    ("token", "value"), [("1", 1), ("01", 1), ("+0", 0), ("-3", -3), ("5", 5), ("1.0", None), ("cat", None)]
)
def test_answers(token: str, value: int | None) -> None:
    assert parse_answer(token) == value


def test_twenty_answers_make_twenty_five_events() -> None:
    labels = [i % 2 for i in range(20)]
    game = _game(labels)
    prompts = game.start()
    for label in labels:
        assert prompts == [(PLAYER, {"imagePath": game.prompts[game._index].image_path})]
        prompts = game.apply(PLAYER, str(label))
    assert prompts == []
    assert len(game.log.events) == 25
    assert game.log.events[3] == {
        "timestamp": "T",
        "itemType": "response",
        "AIrespons": 0,
        "expected": "cat",
        "correct": True,
        "score": 1,
    }
    assert game.result is not None and (game.result.outcome, game.result.score) == ("win", 20)


def test_invalid_answers_repeat_the_prompt_up_to_the_cap() -> None:
    game = _game([1] * 20)
    (first,) = game.start()
    assert game.apply(PLAYER, "dog") == [first]
    assert game.apply(PLAYER, "0") != [first]  # a valid answer resets the run of invalid ones
    (second,) = game.apply(PLAYER, "x")
    assert game.apply(PLAYER, "y") == [second]
    assert game.apply(PLAYER, "z") == []
    assert game.result is not None and game.result.outcome == "error"
    messages = [event.get("message") for event in game.log.events[-4:]]
    assert messages == [
        "Invalid response: z",
        "3 invalid responses in a row. Game ending in error.",
        "Game over.",
        "Sockets closed properly. Server shutdown complete.",
    ]


def test_an_early_disconnect_is_scored_not_an_error() -> None:
    game = _game([0] * 20)
    game.start()
    game.apply(PLAYER, "0")
    game.disconnected(PLAYER, abrupt=True)
    assert game.result is not None and (game.result.outcome, game.result.score) == ("lose", 1)


def test_manifest_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"images": [{"path": "images/a.png", "label": 2}], "classes": ["cat", "dog"]}))
    with pytest.raises(ManifestError):
        load_manifest(path)
    with pytest.raises(ManifestError):
        load_manifest(tmp_path / "missing.json")
