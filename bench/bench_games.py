"""Game server throughput: Snake moves per second, one Connect 4 game, one image evaluation.

Run from the repository root: ``python bench/bench_games.py``. Each game runs as the sandbox runs
it (``python -m game_vault.serve`` in a subprocess) and is driven over loopback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from game_vault.bots.connect4_bot import choose as choose_column  # noqa: E402
from game_vault.images import copy_images, generate_dataset, select_images, write_manifest  # noqa: E402

SNAKE_TARGET_MOVES_PER_S = 2000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(game: str, log: Path, *options: str) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "game_vault.serve",
        "--game",
        game,
        "--log",
        str(log),
        "--port",
        str(port),
    ]
    process = subprocess.Popen([*command, *options], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "LUMIA_READY"
    return process, port


def _result(process: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = process.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1].removeprefix("LUMIA_RESULT "))


def _cycle_move(x: int, y: int) -> str:
    """A Hamiltonian cycle through the 10 × 10 grid: the trivial bot never dies and fills the grid."""
    if x == 0:
        return "MOVE_DOWN" if y < 9 else "MOVE_RIGHT"
    if y % 2 == 1:
        return "MOVE_RIGHT" if x < 9 else "MOVE_UP"
    if x > 1 or y == 0:
        return "MOVE_LEFT"
    return "MOVE_UP"


def bench_snake(work: Path) -> None:
    process, port = _serve("snake", work / "snake.json")
    sock = socket.create_connection(("127.0.0.1", port))
    moves, started = 0, time.perf_counter()
    while True:
        state = json.loads(sock.recv(1024))
        if state["isGameOver"]:
            break
        sock.send(_cycle_move(*state["snake"][0]).encode())
        moves += 1
    elapsed = time.perf_counter() - started
    sock.close()
    result = _result(process)
    rate = moves / elapsed
    verdict = "ok" if rate >= SNAKE_TARGET_MOVES_PER_S else f"BELOW target {SNAKE_TARGET_MOVES_PER_S}/s"
    print(f"snake: {moves} moves in {elapsed:.2f} s = {rate:,.0f} moves/s ({verdict}); {result['outcome']}")


def bench_connect4(work: Path, opponent: str) -> None:
    started = time.perf_counter()
    process, port = _serve("connect4", work / "connect4.json", "--opponent", opponent)
    sock = socket.create_connection(("127.0.0.1", port))
    while True:
        state = json.loads(sock.recv(1024))
        if state["isGameOver"]:
            break
        grid = [list(line) for line in state["grid"].split("\n")]
        sock.send(str(choose_column(grid, "O")).encode())
    sock.close()
    result = _result(process)
    elapsed = time.perf_counter() - started
    print(
        f"connect4 ({opponent} X): full game in {elapsed:.2f} s including start-up, "
        f"{result['moves']} moves, user {result['outcome']}"
    )


def bench_image(work: Path) -> None:
    training = generate_dataset(work / "train", seed=1, per_class=60)
    evaluation = generate_dataset(work / "eval", seed=2, per_class=20)
    player = work / "player"
    player.mkdir()
    bot = REPO / "game_vault" / "bots" / "image_bot.py"
    train_started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(bot),
            "--train=True",
            f"--dataset={training}",
            f"--model_path={player / 'model.pt'}",
        ],
        check=True,
        capture_output=True,
    )
    train_s = time.perf_counter() - train_started
    selected = select_images(evaluation, seed=3)
    copy_images(selected, player)
    write_manifest(selected, work / "manifest.json")
    started = time.perf_counter()
    process, port = _serve("image", work / "image.json", "--images", str(work / "manifest.json"))
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, str(bot)], cwd=player, env=env, check=True, capture_output=True)
    result = _result(process)
    elapsed = time.perf_counter() - started
    print(
        f"image: evaluation of 20 prompts in {elapsed:.2f} s including start-up (training {train_s:.2f} s), "
        f"score {result['score']}/20, {result['outcome']}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        bench_snake(work)
        bench_connect4(work, "legacy")
        bench_connect4(work, "strong")
        bench_image(work)


if __name__ == "__main__":
    main()
