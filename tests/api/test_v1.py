"""/v1 runs and events, health, metrics, OpenAPI, the bearer token, and NATS going away."""

from __future__ import annotations

import hashlib

import httpx

from events.bus import read_history
from lumia.natsserver import EmbeddedNats
from tests.api.conftest import GOOD_SCRIPT, USER_A, USER_B, Api, leftovers
from tests.conftest import eventually


async def test_runs_lifecycle_over_v1(api: Api):
    created = await api.http.post("/v1/runs", json={"userId": USER_A, "game": "Snake", "dockerId": 2,
                                                    "script": GOOD_SCRIPT.decode(), "seed": 5})
    assert created.status_code == 202, created.text
    run_id = created.json()["runId"]
    assert created.headers["location"] == f"/v1/runs/{run_id}" and created.json()["seed"] == 5
    multipart = await api.http.post("/v1/runs", data={"userId": USER_B, "game": "connect4", "training": "true"},
                                    files={"file": ("bot.py", GOOD_SCRIPT, "text/x-python")})
    assert multipart.status_code == 202, multipart.text

    state = (await api.http.get(f"/v1/runs/{run_id}")).json()
    assert state["status"] == "requested" and state["user_id"] == USER_A and state["game"] == "snake"
    assert state["script_sha256"] == hashlib.sha256(GOOD_SCRIPT).hexdigest()
    events = (await api.http.get(f"/v1/runs/{run_id}/events")).json()["events"]
    assert [e["event"]["type"] for e in events] == ["run.requested"] and "script" not in events[0]["event"]

    async def listed() -> list:
        return (await api.http.get("/v1/runs", params={"user": USER_A})).json()["runs"]

    assert (await eventually(listed, timeout=10))[0]["run_id"] == run_id
    page = (await api.http.get("/v1/runs", params={"limit": 1, "state": "requested"})).json()
    assert page["total"] == 2 and len(page["runs"]) == 1
    assert (await api.http.get("/v1/runs", params={"game": "image"})).json()["total"] == 0
    for params in ({"state": "bogus"}, {"user": "x"}, {"game": "chess"}, {"limit": 0}, {"offset": -1}):
        assert (await api.http.get("/v1/runs", params=params)).status_code == 422, params

    stopped = await api.http.delete(f"/v1/runs/{run_id}")
    assert stopped.status_code == 202 and stopped.json()["status"] == "stopping"
    restarted = await api.http.post(f"/v1/runs/{run_id}/restart")
    assert restarted.status_code == 202 and restarted.json()["restartOf"] == run_id
    assert (await api.http.get(f"/v1/runs/{run_id}/log")).status_code == 404
    history = (await api.http.get("/v1/events", params={"run": run_id})).json()["events"]
    assert [e["event"]["type"] for e in history] == ["run.requested", "run.stop_requested"]
    limited = (await api.http.get("/v1/events", params={"limit": 2, "since": "2020-01-01T00:00:00Z"})).json()
    assert len(limited["events"]) == 2

    for path in ("/v1/runs/does-not-exist", "/v1/runs/nope/events", "/v1/runs/nope/log"):
        assert (await api.http.get(path)).status_code == 404, path
    assert (await api.http.post("/v1/runs/nope/restart")).status_code == 404
    for path in ("/v1/runs/a.b", "/v1/runs/%2e%2e", "/v1/events?subject=foo%20bar", "/v1/events?subject=other.>",
                 "/v1/events?run=a*b", "/v1/events?since=yesterday", "/v1/events/stream?subject=x%0D%0A"):
        assert (await api.http.get(path)).status_code in (404, 422), path
    bad_json = [b"{", b"[]", b'{"userId": 1}',
                b'{"userId": "%s", "game": "snake", "script": "\\ud800"}' % USER_A.encode(),
                b'{"userId": "%s", "game": "snake", "script": "x=1", "seed": -1}' % USER_A.encode(),
                b'{"userId": "%s", "game": "snake", "script": "x=1", "dockerId": 2.5}' % USER_A.encode(),
                b'{"userId": "%s", "game": "snake", "script": "x=1", "scriptName": "x.sh"}' % USER_A.encode()]
    for body in bad_json:
        response = await api.http.post("/v1/runs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (body, response.text)
    bad_forms = [{"userId": USER_A, "game": "snake", "dockerId": "x"}, {"userId": USER_A, "game": "snake",
                                                                        "seed": "9" * 30}]
    for form in bad_forms:
        response = await api.http.post("/v1/runs", data=form, files={"file": ("a.py", GOOD_SCRIPT)})
        assert response.status_code == 422, (form, response.text)
    assert leftovers(api.settings) == [], "v1 runs must not write the legacy AI-Vault"


async def test_health_metrics_openapi_and_sse(api: Api):
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/readyz")).json() == {"status": "ready"}
        for method, path in (("GET", "/metrics"), ("GET", "/v1/runs"), ("POST", "/api/rundocker"),
                             ("POST", "/upload"), ("GET", "/openapi.json"), ("DELETE", "/api/rundocker/1")):
            response = await anonymous.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = await anonymous.get("/v1/runs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401

    await api.http.post("/v1/runs", json={"userId": USER_A, "game": "image", "script": "x = 1\n"})
    metrics = (await api.http.get("/metrics")).text
    for name in ("lumia_runs_submitted_total 1", "lumia_consumer_pending{consumer=\"projection\"}",
                 "lumia_container_start_latency_seconds_count", "lumia_log_forward_failures"):
        assert name in metrics, name
    assert 'lumia_runs{status="requested",outcome="none"} 1' in await eventually(
        lambda: _metrics_with_run(api), timeout=10)

    spec = (await api.http.get("/openapi.json")).json()
    for path in ("/upload", "/api/rundocker", "/api/rundocker/{dockerId}", "/api/delete/docker",
                 "/api/restartdocker", "/api/game_data", "/api/training_finished", "/api/getfile", "/v1/runs",
                 "/v1/runs/{run_id}", "/v1/runs/{run_id}/restart", "/v1/runs/{run_id}/log",
                 "/v1/runs/{run_id}/events", "/v1/events", "/v1/events/stream", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    assert spec["paths"]["/api/rundocker"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert spec["paths"]["/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["example"]

    async with api.http.stream("GET", "/v1/events/stream", params={"subject": "lumia.run.>"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith(": connected")
        await api.http.post("/v1/runs", json={"userId": USER_B, "game": "snake", "script": "x = 2\n"})
        async for line in lines:
            if line.startswith("data: "):
                assert '"run.requested"' in line and USER_B in line
                break


async def _metrics_with_run(api: Api) -> str:
    text = (await api.http.get("/metrics")).text
    return text if 'lumia_runs{status="requested"' in text else ""


async def test_nats_down_gives_503_and_records_nothing(api: Api, nats_server: EmbeddedNats, js):
    uploads = api.settings.data_dir / "uploads"
    (uploads / "bot.py").write_bytes(GOOD_SCRIPT)
    nats_server.stop()

    async def not_ready() -> bool:
        return (await api.http.get("/readyz")).status_code == 503

    await eventually(not_ready, timeout=10)
    created = await api.http.post("/v1/runs", json={"userId": USER_A, "game": "snake", "script": "x = 1\n"})
    assert created.status_code == 503 and created.headers["retry-after"], created.text
    legacy = await api.http.post("/api/rundocker", json={"dockerId": 1, "game": "SNAKE", "userId": USER_A})
    assert legacy.status_code == 503 and legacy.headers["retry-after"]
    for method, path in (("GET", "/v1/runs"), ("GET", "/v1/events"), ("GET", "/v1/runs/abc")):
        assert (await api.http.request(method, path)).status_code == 503, path
    assert (uploads / "bot.py").read_bytes() == GOOD_SCRIPT, "the upload was lost"
    assert leftovers(api.settings) == ["uploads/bot.py"], "something was half-recorded"

    nats_server.start()

    async def ready() -> bool:
        return (await api.http.get("/readyz")).status_code == 200

    await eventually(ready, timeout=15)
    assert [s async for s in read_history(js, "LUMIA", "lumia.run.>")] == []
