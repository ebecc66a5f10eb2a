"""``python3 -m game_vault.serve``: run one game in the sandbox and report its result.

Prints ``LUMIA_READY`` once the user's script may start, writes the log atomically when the game
ends, then prints ``LUMIA_RESULT {json}`` and exits 0. Bad arguments exit 2 with one stderr line;
a port that cannot be bound exits 1; a fault inside the harness still writes the log (``Server
error: ...``) and the result line, then exits 1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from game_vault.connect4 import SEAT_X, Connect4Game
from game_vault.game import SERVER_ERROR_REASON, Game
from game_vault.gamelog import GameLog
from game_vault.image import ImageGame, ManifestError, load_manifest
from game_vault.opponent import PlatformOpponent, strategy_named
from game_vault.session import Limits, PlatformPlayer, run_session
from game_vault.snake import SnakeGame

READY_LINE = "LUMIA_READY"
RESULT_PREFIX = "LUMIA_RESULT "


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"game_vault.serve: error: {message}\n")  # one line, no usage block


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="python3 -m game_vault.serve", description=__doc__)
    parser.add_argument("--game", required=True, choices=("snake", "connect4", "image"))
    parser.add_argument("--log", required=True, type=Path, help="where the game log is written")
    parser.add_argument("--user-id", default="NA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--move-timeout", type=_positive, default=10.0)
    parser.add_argument("--game-timeout", type=_positive, default=300.0)
    parser.add_argument("--connect-timeout", type=_positive, default=30.0)
    parser.add_argument("--delay", type=_non_negative, default=0.0, help="pause after each state (legacy 0.3)")
    parser.add_argument("--opponent", choices=("legacy", "strong"), default="legacy")
    parser.add_argument("--images", type=Path, help="image manifest JSON (required for --game image)")
    return parser


def _build_game(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Game:
    log = GameLog(args.game, args.user_id)
    if args.game == "snake":
        return SnakeGame(log, args.seed)
    if args.game == "connect4":
        return Connect4Game(log, args.seed)
    if args.images is None:
        parser.error("--images is required for --game image")
    try:
        return ImageGame(log, args.seed, load_manifest(args.images))
    except ManifestError as exc:
        parser.error(str(exc))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the game the way Ctrl+C does


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    game = _build_game(args, parser)
    platform: dict[str, PlatformPlayer] = {}
    if args.game == "connect4":
        platform[SEAT_X] = PlatformOpponent(strategy_named(args.opponent, args.seed))
    limits = Limits(args.move_timeout, args.game_timeout, args.connect_timeout, args.delay)
    started = time.monotonic()

    def announce_ready() -> None:
        nonlocal started
        started = time.monotonic()
        print(READY_LINE, flush=True)

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        result = run_session(
            game, host=args.host, port=args.port, limits=limits, platform=platform, on_ready=announce_ready
        )
    except OSError as error:
        print(f"game_vault.serve: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    # The game has ended: a late signal must not cut the log or the result line short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    duration = round(time.monotonic() - started, 3)
    game.log.write(args.log, result.outcome)
    report = {
        "outcome": result.outcome,
        "score": result.score,
        "moves": result.moves,
        "reason": result.reason,
        "duration_s": duration,
    }
    print(RESULT_PREFIX + json.dumps(report, separators=(",", ":")), flush=True)
    return 1 if result.reason == SERVER_ERROR_REASON else 0  # a harness fault, though still logged


if __name__ == "__main__":
    sys.exit(main())
