"""Run state is a pure fold; the live projection and a rebuild from the stream agree."""

from __future__ import annotations

import msgspec

from consumers.loop import run_consumer
from consumers.projection import RunState, RunStore, consumer_specs, evolve, rebuild
from events import LogForwarded, LogWritten, RunExited, RunFailed, RunRequested, RunStarted, StopRequested
from tests.conftest import eventually

USER = "65a1f0c2e4b0a1b2c3d4e5f6"


def _requested(run_id: str) -> RunRequested:
    return RunRequested(run_id=run_id, user_id=USER, game="snake", docker_id=2, script_name="b.py", script="x=1",
                        script_sha256="0" * 64, seed=5)


def test_the_fold_follows_a_run_through_its_life() -> None:
    state = evolve(None, _requested("r1"))
    assert state is not None and state.status == "requested" and state.seed == 5
    state = evolve(state, RunStarted(run_id="r1", node="n1", runtime="docker"))
    assert state.status == "running" and state.node == "n1"
    state = evolve(state, RunExited(run_id="r1", exit_code=0, outcome="win", score=90, moves=12))
    assert (state.status, state.outcome, state.score) == ("exited", "win", 90)
    state = evolve(state, LogWritten(run_id="r1", user_id=USER, game="snake", path="logs/x", size=1, sha256="a" * 64))
    state = evolve(state, LogForwarded(run_id="r1", user_id=USER, game="snake", sha256="a" * 64, status=200))
    assert state.log_path == "logs/x" and state.log_forwarded
    assert evolve(None, RunStarted(run_id="unknown", node="n", runtime="docker")) is None
    stopped = evolve(evolve(_state("r2"), StopRequested(run_id="r2")), RunFailed(run_id="r2", kind="stopped",
                                                                                  reason="stopped before start"))
    assert stopped.status == "failed" and stopped.stopped


def _state(run_id: str) -> RunState:
    state = evolve(None, _requested(run_id))
    assert state is not None
    return state


async def test_rebuild_equals_the_live_projection(js, publisher) -> None:
    import asyncio

    store = await RunStore.open(js)
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumer(js, "LUMIA", consumer_specs(store)[0], publisher, stop, fetch_timeout=0.3))
    last = 0
    for index in range(5):
        run_id = f"p{index}"
        last = await publisher.publish(_requested(run_id))
        last = await publisher.publish(RunStarted(run_id=run_id, node="n", runtime="docker"))
        if index % 2 == 0:
            last = await publisher.publish(RunExited(run_id=run_id, exit_code=0, outcome="lose", score=index))
    final_seq = last

    async def caught_up() -> bool:
        states = await store.all()
        return len(states) == 5 and max(s.last_seq for s in states) == final_seq

    await eventually(caught_up, timeout=20)
    stop.set()
    await task
    live = {state.run_id: msgspec.to_builtins(state) for state in await store.all()}
    rebuilt = {run_id: msgspec.to_builtins(state) for run_id, state in (await rebuild(js, "LUMIA")).items()}
    assert live == rebuilt
    assert rebuilt["p2"]["status"] == "exited" and rebuilt["p1"]["status"] == "running"
