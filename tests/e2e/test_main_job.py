"""The main job end to end on real parts: nats-server, the Docker engine, the stand-in backend.

A bot written like existing Lumia user scripts goes in through the Java backend's legacy calls (and
through /v1); the backend must receive exactly one game log with the real user id.
"""

from __future__ import annotations

import asyncio
import json

import aiodocker
import httpx
import pytest

from lumia.natsserver import free_port
from tests.conftest import FIXTURES, eventually, running_services

pytestmark = pytest.mark.docker

USER = "65a1f0c2e4b0a1b2c3d4e5f6"
EXPECTED_ORDER = ["run.requested", "run.started", "run.exited", "log.written", "log.forwarded"]


async def _containers_of(run_id: str) -> list:
    docker = aiodocker.Docker()
    try:
        return await docker.containers.list(all=True, filters=json.dumps({"label": [f"lumia.run_id={run_id}"]}))
    finally:
        await docker.close()


async def _assert_delivered(http: httpx.AsyncClient, api: str, backend, run_id: str) -> None:
    await eventually(lambda: _async(backend.backend.uploads(USER)), timeout=60)

    async def recorded() -> list[str] | None:  # the backend answered; the forwarder then records it
        events = (await http.get(f"{api}/v1/runs/{run_id}/events")).json()["events"]
        types = [item["event"]["type"] for item in events]
        return types if "log.forwarded" in types else None

    types = await eventually(recorded, timeout=30)
    assert types == EXPECTED_ORDER, types
    await asyncio.sleep(1.0)  # a late duplicate delivery would show up here
    uploads = backend.backend.uploads(USER)
    assert len(uploads) == 1, f"expected exactly one upload, got {len(uploads)}"
    upload = uploads[0]
    assert upload.file_name == "snake.json"
    assert upload.fields == {"userId": USER, "game": "snake"}
    document = upload.document
    assert document["gameType"] == "snake"
    assert document["userId"] == USER
    assert document["message"] in ("win", "lose")
    assert document["gameStates"], "the log has no game states"
    assert list(document)[:6] == ["timestamp", "gameType", "userId", "gameId", "message", "gameStates"]
    state = (await http.get(f"{api}/v1/runs/{run_id}")).json()
    assert state["status"] == "exited" and state["outcome"] == document["message"]
    assert state["log_forwarded"] is True
    assert await _containers_of(run_id) == [], "the run's containers were not removed"


async def _async(value: object) -> object:
    return value


async def test_legacy_backend_flow_runs_the_bot_and_delivers_its_log(settings_for, backend, docker_available):
    settings = settings_for(backend_url=backend.url, api_port=free_port())
    api = f"http://127.0.0.1:{settings.api_port}"
    async with running_services(settings, ("api", "runner", "forwarder")), httpx.AsyncClient(timeout=30) as http:
        script = (FIXTURES / "legacy_snake_bot.py").read_bytes()
        uploaded = await http.post(f"{api}/upload", files={"file": ("my_bot.py", script, "text/x-python")})
        assert uploaded.status_code == 200, uploaded.text
        started = await http.post(f"{api}/api/rundocker",
                                  json={"game": "SNAKE", "dockerId": 3, "userId": USER, "isTraining": False})
        assert started.status_code == 200, started.text
        assert started.json() is None

        async def run_listed() -> list:
            return (await http.get(f"{api}/v1/runs", params={"user": USER})).json()["runs"]

        runs = await eventually(run_listed, timeout=30)
        run_id = runs[0]["run_id"]
        assert runs[0]["docker_id"] == 3 and runs[0]["source"] == "legacy"
        await _assert_delivered(http, api, backend, run_id)
        # The durable copy restart uses, in the legacy layout.
        vault_dir = settings.data_dir / "AI-Vault" / "3" / "snake"
        assert (vault_dir / f"{USER}.txt").read_bytes() == b"{False}"
        assert (vault_dir / f"{USER}_snake.py").read_bytes() == script
        assert (settings.data_dir / "logs" / USER / "snake.json").is_file()


async def test_v1_runs_flow_runs_the_bot_and_delivers_its_log(settings_for, backend, docker_available):
    settings = settings_for(backend_url=backend.url, api_port=free_port())
    api = f"http://127.0.0.1:{settings.api_port}"
    async with running_services(settings, ("api", "runner", "forwarder")), httpx.AsyncClient(timeout=30) as http:
        script = (FIXTURES / "legacy_snake_bot.py").read_text()
        response = await http.post(f"{api}/v1/runs", json={"userId": USER, "game": "snake", "dockerId": 4,
                                                           "script": script, "seed": 11})
        assert response.status_code == 202, response.text
        run_id = response.json()["runId"]
        await _assert_delivered(http, api, backend, run_id)
        log = await http.get(f"{api}/v1/runs/{run_id}/log")
        assert log.status_code == 200 and log.json()["userId"] == USER


async def test_two_runs_of_one_user_keep_their_own_logs_while_the_backend_is_down(settings_for, backend,
                                                                                  docker_available):
    settings = settings_for(backend_url=backend.url, api_port=free_port())
    api = f"http://127.0.0.1:{settings.api_port}"
    backend.backend.fail(503, seconds=8)  # both logs wait for the backend
    script = (FIXTURES / "legacy_snake_bot.py").read_text()
    async with running_services(settings, ("api", "runner", "forwarder")), httpx.AsyncClient(timeout=30) as http:
        run_ids = []
        for seed in (1, 2):
            response = await http.post(f"{api}/v1/runs", json={"userId": USER, "game": "snake", "script": script,
                                                               "seed": seed})
            run_ids.append(response.json()["runId"])
            await eventually(lambda run=run_ids[-1]: _exited(http, api, run), timeout=60)
        await eventually(lambda: _async(len(backend.backend.uploads(USER)) >= 2), timeout=60)
        logs = [(await http.get(f"{api}/v1/runs/{run}/log")).json() for run in run_ids]
    assert logs[0] != logs[1]  # two different games (seeds 1 and 2), each log served for its own run
    delivered = sorted(json.dumps(upload.document, sort_keys=True) for upload in backend.backend.uploads(USER))
    assert delivered == sorted(json.dumps(log, sort_keys=True) for log in logs)  # each run's own log went out


async def _exited(http: httpx.AsyncClient, api: str, run_id: str) -> bool:
    return (await http.get(f"{api}/v1/runs/{run_id}")).json().get("log_path") is not None
