"""Training end to end: an image script trains in Docker, the backend is told once, the model is
served by /api/getfile, and the next evaluation run of that user plays with it."""

from __future__ import annotations

import httpx
import pytest

from events import TrainingFinished
from events.bus import read_history
from lumia.natsserver import free_port
from tests.conftest import REPO, eventually, running_services

pytestmark = pytest.mark.docker

USER = "65a1f0c2e4b0a1b2c3d4e5f7"
BOT = REPO / "game_vault" / "bots" / "image_bot.py"


async def test_training_then_evaluation_with_the_trained_model(js, settings_for, backend, docker_available) -> None:
    settings = settings_for(backend_url=backend.url, api_port=free_port())
    api = f"http://127.0.0.1:{settings.api_port}"
    async with running_services(settings, ("api", "runner", "forwarder")), httpx.AsyncClient(timeout=30) as http:
        script = BOT.read_text()
        trained = await http.post(f"{api}/v1/runs", json={"userId": USER, "game": "IMAGE", "dockerId": 5,
                                                          "script": script, "training": True})
        assert trained.status_code == 202, trained.text

        async def finished() -> list:
            return [s.event async for s in read_history(js, "LUMIA", "lumia.training.finished.>")
                    if isinstance(s.event, TrainingFinished)]

        events = await eventually(finished, timeout=120)
        assert events[0].docker_id == 5 and events[0].user_id == USER
        calls = backend.backend.status_changes()
        assert [c.fields for c in calls] == [{"dockerId": "5", "userId": USER, "gameName": "IMAGE", "status": "True"}]
        state = (await http.get(f"{api}/v1/runs/{trained.json()['runId']}")).json()
        assert state["status"] == "exited" and state["exit_code"] == 0 and state["backend_notified"]
        timeline = (await http.get(f"{api}/v1/runs/{trained.json()['runId']}/events")).json()["events"]
        assert [item["event"]["type"] for item in timeline] == [
            "run.requested", "run.started", "run.exited", "model.saved", "backend.notified", "training.finished"]

        model = await http.get(f"{api}/api/getfile", params={"userId": USER, "game": "image", "dockerId": 5})
        assert model.status_code == 200
        assert model.headers["content-type"] == "application/octet-stream"
        assert f'{USER}_image.pt' in model.headers["content-disposition"]
        stored = settings.data_dir / "train" / "5" / "image" / USER / "model.pt"
        assert model.content == stored.read_bytes() and len(model.content) == events[0].size

        evaluated = await http.post(f"{api}/v1/runs", json={"userId": USER, "game": "image", "dockerId": 5,
                                                            "script": script})
        run_id = evaluated.json()["runId"]

        async def delivered() -> dict | None:
            current = (await http.get(f"{api}/v1/runs/{run_id}")).json()
            return current if current.get("log_forwarded") else None

        result = await eventually(delivered, timeout=120)
        assert result["outcome"] == "win", result  # the trained model answers the held-out images
        document = backend.backend.uploads(USER)[0].document
        responses = [item for item in document["gameStates"] if item["itemType"] == "response"]
        assert len(responses) == 20 and document["gameType"] == "image"
