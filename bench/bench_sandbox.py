"""Sandbox speed: the Docker pipeline (``DockerRuntime.run``) against raw Docker API calls.

    python bench/bench_sandbox.py [--rounds 5] [--runs 8] [--concurrency 4] [--games 20]

1. Submission to first move. The user's script prints its start time (``time.time()``: containers
   share the host's clock) before it connects and plays; that is the first move minus the
   interpreter's start-up, which is the same on both sides. Pipeline: ``DockerRuntime.run`` (clean
   slate, volumes, archive put, game container, ready line, user container). Raw: create and start
   the same two containers with aiodocker (the script passed by ``python3 -c``, no volumes, no
   archive), waiting for the same ready line. Target: pipeline overhead <= 15 %.
2. Saturation: complete snake runs per second with ``--concurrency`` runs in flight, pipeline
   against the raw create/start/wait/delete of the same two containers, in interleaved batches.
   Target: >= 0.9x.
3. ``--games`` concurrent snake games through the pipeline: zero failures; peak memory per run
   (game + user container, cgroup v1 ``memory.max_usage_in_bytes``, sampled while they run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiodocker  # noqa: E402

from consumers.lifecycle.docker_runtime import GAME_UID, USER_UID, DockerRuntime  # noqa: E402
from consumers.lifecycle.sandbox import READY_LINE, SandboxJob  # noqa: E402
from lumia.config import SandboxLimits, Settings  # noqa: E402

NODE = "bench"
LIMITS = SandboxLimits(move_timeout_s=5.0, game_timeout_s=60.0, connect_timeout_s=20.0, wall_s=120.0)
STAMP = 'import time as _t; print("LUMIA_T0 %.6f" % _t.time(), flush=True)\n'
SCRIPT = STAMP + (REPO / "game_vault" / "bots" / "snake_bot.py").read_text()
CGROUP = Path("/sys/fs/cgroup/memory/docker")


def _job(run_id: str) -> SandboxJob:
    return SandboxJob(run_id=run_id, user_id="bench", game="snake", docker_id=1, training=False, seed=3,
                      script=SCRIPT.encode(), limits=LIMITS)


def _t0(output: str) -> float:
    for line in output.splitlines():
        if line.startswith("LUMIA_T0 "):
            return float(line.split()[1])
    raise RuntimeError(f"no start stamp in output: {output[-300:]!r}")


async def pipeline_run(runtime: DockerRuntime) -> tuple[float, bool]:
    """Seconds from submission to the script's start, and whether the game ended normally."""
    job = _job(f"bench{uuid.uuid4().hex[:10]}")
    submitted = time.time()
    result = await runtime.run(job)
    ok = result.infrastructure_error is None and result.exit_code == 0 and bool(result.game) and bool(result.log)
    return _t0(result.output_tail) - submitted, ok


async def raw_run(docker: aiodocker.Docker, image: str, copy_log: bool = False) -> tuple[float, bool]:
    """The same two containers by hand: create, start, ready line, create, start, wait, delete.

    With ``copy_log`` the game's log is also copied out (one archive get, as ``docker cp`` does): the
    output a run exists for, which the plain raw run never produces.
    """
    run_id = f"raw{uuid.uuid4().hex[:10]}"
    job = _job(run_id)
    labels = {"lumia.node": NODE, "lumia.run_id": run_id}
    host = {"CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"], "IpcMode": "private"}
    submitted = time.time()
    game = await docker.containers.create({
        "Image": image, "User": GAME_UID, "WorkingDir": "/opt/lumia", "Labels": labels,
        "Cmd": job.game_command("python3", "/out/log.json", None),
        "HostConfig": {**host, "NetworkMode": "none", "Memory": 256 << 20, "PidsLimit": 32},
    }, name=f"lumia-{run_id}-game")
    user = None
    try:
        await game.start()
        async for chunk in game.log(stdout=True, follow=True):
            if READY_LINE in chunk:
                break
        user = await docker.containers.create({
            "Image": image, "User": USER_UID, "WorkingDir": "/tmp", "Labels": labels,
            "Cmd": ["python3", "-u", "-c", SCRIPT], "Env": [f"{k}={v}" for k, v in job.user_env().items()],
            "HostConfig": {**host, "NetworkMode": f"container:lumia-{run_id}-game", "ReadonlyRootfs": True,
                           "Tmpfs": {"/tmp": "size=64m"}, "Memory": 512 << 20, "PidsLimit": 64},
        }, name=f"lumia-{run_id}-user")
        await user.start()
        await game.wait()
        status = await user.wait()
        output = "".join(await user.log(stdout=True))
        if copy_log:
            with await game.get_archive("/out/log.json") as archive:
                archive.getmembers()
        return _t0(output) - submitted, status.get("StatusCode") == 0
    finally:
        for container in (user, game):
            if container is not None:
                await container.delete(force=True)


async def first_move(runtime: DockerRuntime, docker: aiodocker.Docker, rounds: int) -> None:
    await pipeline_run(runtime)  # warm caches on both paths
    await raw_run(docker, runtime.image)
    pipeline, raw = [], []
    for _ in range(rounds):  # interleaved, so drift on the machine hits both alike
        raw.append((await raw_run(docker, runtime.image))[0])
        pipeline.append((await pipeline_run(runtime))[0])
    p, r = statistics.median(pipeline), statistics.median(raw)
    print(f"submission -> first move   pipeline {p * 1000:7.0f} ms   raw {r * 1000:7.0f} ms   "
          f"overhead {100 * (p / r - 1):+5.1f} %   (target <= +15 %; medians of {rounds})")


async def _saturate(make, runs: int, concurrency: int) -> tuple[float, int]:
    gate = asyncio.Semaphore(concurrency)
    failures = 0

    async def one() -> None:
        nonlocal failures
        async with gate:
            try:
                _, ok = await make()
            except Exception as exc:  # a failure is counted, not fatal
                print("  run failed:", exc)
                ok = False
            failures += not ok

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(runs)))
    return runs / (time.monotonic() - started), failures


async def saturation(runtime: DockerRuntime, docker: aiodocker.Docker, runs: int, concurrency: int,
                     rounds: int = 3) -> None:
    """Interleaved batches (raw, pipeline, raw, ...): this machine's load drifts; both see the same."""
    times = {"raw": 0.0, "raw+cp": 0.0, "pipeline": 0.0}
    failed = dict.fromkeys(times, 0)
    makers = {"raw": lambda: raw_run(docker, runtime.image),
              "raw+cp": lambda: raw_run(docker, runtime.image, copy_log=True),
              "pipeline": lambda: pipeline_run(runtime)}
    for _ in range(rounds):
        for kind, make in makers.items():
            rate, bad = await _saturate(make, runs, concurrency)
            times[kind] += runs / rate
            failed[kind] += bad
    total = runs * rounds
    rate = {kind: total / spent for kind, spent in times.items()}
    print(f"saturation ({rounds} x {runs} runs, {concurrency} in flight)   pipeline {rate['pipeline']:5.2f} runs/s   "
          f"raw {rate['raw']:5.2f} runs/s (ratio {rate['pipeline'] / rate['raw']:4.2f}x)   "
          f"raw + log copy {rate['raw+cp']:5.2f} runs/s (ratio {rate['pipeline'] / rate['raw+cp']:4.2f}x)   "
          f"target >= 0.9x   failures {failed}")


async def concurrent_games(runtime: DockerRuntime, docker: aiodocker.Docker, games: int) -> None:
    peaks: dict[str, tuple[str, int]] = {}
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            with _suppress():
                filters = json.dumps({"label": [f"lumia.node={NODE}"]})
                for container in await docker.containers.list(filters=filters):
                    path = CGROUP / container.id / "memory.max_usage_in_bytes"
                    with _suppress():
                        usage = int(path.read_text())
                        run_id = container["Labels"]["lumia.run_id"]
                        old = peaks.get(container.id, (run_id, 0))[1]
                        peaks[container.id] = (run_id, max(old, usage))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    results = await asyncio.gather(*(pipeline_run(runtime) for _ in range(games)), return_exceptions=True)
    elapsed = time.monotonic() - started
    done.set()
    await sampler
    failures = sum(1 for r in results if isinstance(r, BaseException) or not r[1])
    per_run: dict[str, int] = {}
    for run_id, usage in peaks.values():
        per_run[run_id] = per_run.get(run_id, 0) + usage
    memory = (f"peak memory per run (game + user) median {statistics.median(per_run.values()) / 2**20:5.1f} MiB, "
              f"max {max(per_run.values()) / 2**20:5.1f} MiB ({len(per_run)} runs sampled)" if per_run
              else "memory not sampled (no cgroup v1 files)")
    print(f"{games} concurrent snake games   failures {failures}   wall {elapsed:5.1f} s   {memory}")


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (OSError, KeyError, ValueError, aiodocker.DockerError))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=8, help="runs per saturation batch (3 batches each)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--games", type=int, default=20)
    args = parser.parse_args()
    runtime = await DockerRuntime.connect(Settings().runner_image, NODE)
    docker = aiodocker.Docker()
    try:
        await runtime.reconcile(set())
        await first_move(runtime, docker, args.rounds)
        await saturation(runtime, docker, args.runs, args.concurrency)
        await concurrent_games(runtime, docker, args.games)
    finally:
        await runtime.reconcile(set())
        await docker.close()
        await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
