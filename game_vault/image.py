"""Image recognition evaluation (protocol §8): 20 prompts, one answer each, no end message."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from game_vault.game import PLAYER, SingleClientGame
from game_vault.gamelog import GameLog
from game_vault.protocol import MessageTooLarge, encode_message
from game_vault.types import Outbound, Outcome, Seat

PROMPTS = 20
WIN_SCORE = 15
MAX_INVALID_IN_A_ROW = 3
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LOGGED_RAW_CHARS = 200


@dataclass(frozen=True)
class Prompt:
    image_path: str
    label: int


@dataclass(frozen=True)
class Manifest:
    prompts: tuple[Prompt, ...]
    classes: tuple[str, ...]


class ManifestError(ValueError):
    """The image manifest is missing or malformed: a harness fault, not the player's."""


def load_manifest(path: Path) -> Manifest:
    """Read ``{"images": [{"path", "label"}...], "classes": [...]}``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        classes = tuple(str(name) for name in raw["classes"])
        prompts = tuple(Prompt(str(item["path"]), int(item["label"])) for item in raw["images"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"cannot read image manifest {path}: {exc}") from exc
    if not prompts:
        raise ManifestError(f"image manifest {path} lists no images")
    if any(not 0 <= prompt.label < len(classes) for prompt in prompts):
        raise ManifestError(f"image manifest {path} has a label outside its classes")
    for prompt in prompts:
        try:
            encode_message({"imagePath": prompt.image_path})
        except MessageTooLarge as exc:
            raise ManifestError(f"image path too long for one message: {prompt.image_path[:80]}...") from exc
    return Manifest(prompts=prompts, classes=classes)


def parse_answer(token: str) -> int | None:
    """Any ASCII integer is an answer (``01`` is 1, ``5`` is simply wrong)."""
    return int(token) if _INTEGER.fullmatch(token) else None


class ImageGame(SingleClientGame):
    game_type = "image"

    def __init__(self, log: GameLog, seed: int, manifest: Manifest) -> None:
        super().__init__(log)
        rng = random.Random(seed)
        prompts = list(manifest.prompts)
        self.prompts = rng.sample(prompts, PROMPTS) if len(prompts) > PROMPTS else prompts
        self.classes = manifest.classes
        self.score = 0
        self._index = 0
        self._invalid_in_a_row = 0

    def open(self) -> None:
        self.log.info(f"{len(self.prompts)} images loaded for evaluation.")
        self.log.info("Game Manager waiting for a client...")

    def start(self) -> list[Outbound]:
        return self._prompt()

    def accepts(self, token: str) -> bool:
        return parse_answer(token) is not None

    def awaiting(self) -> Seat:
        return PLAYER

    def apply(self, seat: Seat, command: str) -> list[Outbound]:
        answer = parse_answer(command)
        if answer is None:
            self.log.error(f"Invalid response: {command[:_LOGGED_RAW_CHARS]}")
            self._invalid_in_a_row += 1
            if self._invalid_in_a_row >= MAX_INVALID_IN_A_ROW:
                self.log.error(f"{MAX_INVALID_IN_A_ROW} invalid responses in a row. Game ending in error.")
                self._end("error", self.score, "invalid responses")
                return []
            return self._prompt()  # the same image again
        self._invalid_in_a_row = 0
        self.moves += 1
        prompt = self.prompts[self._index]
        correct = answer == prompt.label
        self.score += int(correct)
        self.log.add(
            "response",
            AIrespons=answer,
            expected=self.classes[prompt.label],
            correct=correct,
            score=self.score,
        )
        self._index += 1
        if self._index == len(self.prompts):
            outcome, score = self._outcome_on_disconnect()
            self._end(outcome, score, "all images answered")
            return []  # legacy sends no end message: the server just closes
        return self._prompt()

    def _prompt(self) -> list[Outbound]:
        return [(PLAYER, {"imagePath": self.prompts[self._index].image_path})]

    def _score(self) -> int:
        return self.score

    def _outcome_on_disconnect(self) -> tuple[Outcome, int]:
        return ("win" if self.score >= WIN_SCORE else "lose"), self.score
