"""Every legacy endpoint with payloads exactly as the Java backend sends them (protocol.md §10)."""

from __future__ import annotations

import asyncio
import hashlib
import json

from tests.api.conftest import GOOD_SCRIPT, USER_A, USER_B, Api, leftovers
from tests.conftest import eventually


async def _requested(api: Api) -> list[dict]:
    response = await api.http.get("/v1/events", params={"subject": "lumia.run.*.requested"})
    assert response.status_code == 200, response.text
    return [item["event"] for item in response.json()["events"]]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_rundocker_takes_the_file_the_backend_dropped(api: Api):
    uploads = api.settings.data_dir / "uploads"
    (uploads / "my_bot.py").write_bytes(GOOD_SCRIPT)  # the Java backend writes through the bind mount
    response = await api.http.post("/api/rundocker",
                                   json={"dockerId": 3, "game": "SNAKE", "userId": USER_A, "isTraining": False})
    assert response.status_code == 200, response.text
    assert response.content == b"null"
    [event] = await _requested(api)
    assert event["user_id"] == USER_A and event["game"] == "snake" and event["docker_id"] == 3
    assert event["script_sha256"] == _sha(GOOD_SCRIPT) and event["script_name"] == "my_bot.py"
    assert event["source"] == "legacy" and event["training"] is False
    vault = api.settings.data_dir / "AI-Vault" / "3" / "snake"
    assert (vault / f"{USER_A}.txt").read_bytes() == b"{False}"
    assert (vault / f"{USER_A}_snake.py").read_bytes() == GOOD_SCRIPT
    assert not list(uploads.glob("*.py")), "the upload was not consumed"

    # Nothing waiting any more: the protocol's exact answer.
    again = await api.http.post("/api/rundocker",
                                json={"dockerId": 3, "game": "SNAKE", "userId": USER_A, "isTraining": False})
    assert again.status_code == 400 and again.json() == {"detail": "No .py files found in uploads/"}

    # Restart from the AI-Vault copy, then delete: runs of that dockerId and game only.
    other = api.settings.data_dir / "AI-Vault" / "3" / "connect4"
    other.mkdir(parents=True)
    (other / f"{USER_A}.txt").write_text("{False}")
    restarted = await api.http.post("/api/restartdocker", json={"dockerId": 3, "game": "SNAKE", "userId": USER_A})
    assert restarted.status_code == 200 and restarted.content == b"null", restarted.text
    events = await _requested(api)
    assert [e["source"] for e in events] == ["legacy", "restart"]
    assert events[1]["script_sha256"] == _sha(GOOD_SCRIPT)
    missing = await api.http.post("/api/restartdocker", json={"dockerId": 9, "game": "IMAGE", "userId": USER_A})
    assert missing.status_code == 404 and "No stored script" in missing.json()["detail"]

    async def both_listed() -> bool:
        runs = (await api.http.get("/v1/runs", params={"user": USER_A, "game": "SNAKE"})).json()["runs"]
        return len(runs) == 2

    await eventually(both_listed, timeout=10)
    deleted = await api.http.request("DELETE", "/api/rundocker/3", json={"dockerId": 3, "game": "SNAKE"})
    assert deleted.status_code == 200 and deleted.content == b"null", deleted.text
    assert not vault.exists()
    assert (other / f"{USER_A}.txt").is_file(), "delete wiped another game"
    stops = (await api.http.get("/v1/events", params={"subject": "lumia.run.*.stop_requested"})).json()["events"]
    assert len(stops) == 2 and all("dockerId 3, game snake" in s["event"]["reason"] for s in stops)
    alias = await api.http.request("DELETE", "/api/delete/docker", json={"game": "connect4", "dockerId": 3})
    assert alias.status_code == 200 and not other.exists()
    deletes = (await api.http.get("/v1/events", params={"subject": "lumia.docker.3.>"})).json()["events"]
    assert [(d["event"]["game"], len(d["event"]["stopped_runs"])) for d in deletes] == [("snake", 2), ("connect4", 0)]


async def test_upload_ties_scripts_to_users_under_concurrency(api: Api):
    scripts = {user: f"# {user}\nprint({i})\n".encode() for i, user in enumerate((USER_A, USER_B))}

    async def upload_then_run(user: str) -> None:
        up = await api.http.post("/upload", files={"file": ("bot.py", scripts[user], "text/x-python")},
                                 data={"userId": user})
        assert up.status_code == 200, up.text
        assert up.json()["userId"] == user and up.json()["filename"] == "bot.py"
        run = await api.http.post("/api/rundocker", json={"dockerId": 1, "game": "snake", "userId": user})
        assert run.status_code == 200, run.text

    for _ in range(5):
        await asyncio.gather(upload_then_run(USER_A), upload_then_run(USER_B))
    events = await _requested(api)
    assert len(events) == 10
    for event in events:
        assert event["script_sha256"] == _sha(scripts[event["user_id"]]), "a user got another user's script"

    # An upload tied to A is never run for B; B is told there is nothing for B.
    await api.http.post("/upload", files={"file": ("a.py", scripts[USER_A])}, data={"userId": USER_A})
    refused = await api.http.post("/api/rundocker", json={"dockerId": 1, "game": "snake", "userId": USER_B})
    assert refused.status_code == 400 and refused.json() == {"detail": "No .py files found in uploads/"}
    # The returned upload id ties an anonymous upload to whoever passes it.
    anonymous = (await api.http.post("/upload", files={"file": ("x.py", scripts[USER_B])})).json()
    assert anonymous["userId"] is None
    taken = await api.http.post("/api/rundocker", json={"dockerId": 2, "game": "connect4", "userId": USER_B,
                                                        "uploadId": anonymous["uploadId"]})
    assert taken.status_code == 200, taken.text
    assert (await _requested(api))[-1]["script_sha256"] == _sha(scripts[USER_B])


async def test_two_untied_files_are_never_guessed(api: Api):
    uploads = api.settings.data_dir / "uploads"
    (uploads / "alice.py").write_bytes(b"print('a')\n")
    (uploads / "bob.py").write_bytes(b"print('b')\n")
    response = await api.http.post("/api/rundocker", json={"dockerId": 1, "game": "SNAKE", "userId": USER_A})
    assert response.status_code == 409, response.text
    assert "without an owner" in response.json()["detail"]
    assert await _requested(api) == []
    assert not list(uploads.glob("*.py")) and len(list((uploads / "quarantine").iterdir())) == 2
    # A name carrying the user id is unambiguous.
    (uploads / f"{USER_B}_bot.py").write_bytes(b"print('b')\n")
    (uploads / "someone.py").write_bytes(b"print('s')\n")
    ok = await api.http.post("/api/rundocker", json={"dockerId": 1, "game": "SNAKE", "userId": USER_B})
    assert ok.status_code == 200, ok.text
    assert (await _requested(api))[0]["script_name"] == f"{USER_B}_bot.py"


async def test_rundocker_rejects_bad_bodies_with_422(api: Api):
    (api.settings.data_dir / "uploads" / "bot.py").write_bytes(GOOD_SCRIPT)
    bad_bodies = [
        b"", b"not json", b"[]", b"null",
        json.dumps({"dockerId": 1, "game": "chess", "userId": USER_A}).encode(),
        json.dumps({"dockerId": 0, "game": "snake", "userId": USER_A}).encode(),
        json.dumps({"dockerId": "1", "game": "snake", "userId": USER_A}).encode(),
        json.dumps({"dockerId": 1, "game": "snake", "userId": "../../etc"}).encode(),
        json.dumps({"dockerId": 1, "game": "snake", "userId": USER_A, "uploadId": "../x"}).encode(),
        json.dumps({"dockerId": 2**70, "game": "snake", "userId": USER_A}).encode(),
        json.dumps({"game": "snake", "userId": USER_A}).encode(),
    ]
    for body in bad_bodies:
        response = await api.http.post("/api/rundocker", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (body, response.status_code, response.text)
        assert isinstance(response.json()["detail"], str)
    rule = await api.http.post("/api/rundocker", json={"dockerId": 1, "game": "chess", "userId": USER_A})
    assert rule.json() == {"detail": "game must be one of snake, connect4, image (any case)"}
    assert (api.settings.data_dir / "uploads" / "bot.py").is_file(), "a rejected request consumed the upload"
    for path, body in (("/api/restartdocker", {"dockerId": -1, "game": "snake", "userId": USER_A}),
                       ("/api/rundocker/abc", {"dockerId": 1, "game": "snake"}),
                       ("/api/rundocker/0", {"dockerId": 0, "game": "snake"}),
                       ("/api/rundocker/1", {"dockerId": 1}),
                       ("/api/delete/docker", {"dockerId": 1, "game": "../.."})):
        method = "POST" if path == "/api/restartdocker" else "DELETE"
        response = await api.http.request(method, path, json=body)
        assert response.status_code == 422, (path, response.text)


async def test_game_data_training_finished_and_getfile(api: Api):
    log = {"timestamp": "2026-01-01T10:00:00Z", "gameType": "snake", "userId": "NA", "gameId": "g1",
           "message": "win", "gameStates": []}
    sent = await api.http.post("/api/game_data", data={"userId": USER_A, "game": "snake"},
                               files={"file": ("snake.json", json.dumps(log).encode(), "application/json")})
    assert sent.status_code == 200 and sent.json() == {"message": "Game data sent successfully"}
    assert (api.settings.data_dir / "logs" / USER_A / "snake.json").is_file()
    written = (await api.http.get("/v1/events", params={"subject": "lumia.log.>"})).json()["events"]
    assert written[0]["event"]["type"] == "log.written"
    for bad in (b"{", b"[" * 100_000 + b"]" * 100_000, json.dumps({**log, "gameType": "image"}).encode()):
        refused = await api.http.post("/api/game_data", data={"userId": USER_A, "game": "snake"},
                                      files={"file": ("snake.json", bad, "application/json")})
        assert refused.status_code == 422, refused.text
    wrong_type = await api.http.post("/api/game_data", json={"userId": USER_A, "game": "snake"})
    assert wrong_type.status_code == 415

    model = api.settings.data_dir / "train" / "4" / "image" / USER_A / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    finished = await api.http.put("/api/training_finished",
                                  data={"dockerId": "4", "userId": USER_A, "gameName": "IMAGE"})
    assert finished.status_code == 200 and finished.content == b"null", finished.text
    saved = (await api.http.get("/v1/events", params={"subject": "lumia.model.>"})).json()["events"]
    assert saved[0]["event"]["type"] == "model.saved" and saved[0]["event"]["game"] == "image"
    bad = await api.http.put("/api/training_finished", data={"dockerId": "x", "userId": USER_A, "gameName": "IMAGE"})
    assert bad.status_code == 422

    got = await api.http.get("/api/getfile", params={"userId": USER_A, "game": "image", "dockerId": 4},
                             headers={"Accept": "application/octet-stream"})
    assert got.status_code == 200 and got.content == b"weights"
    assert got.headers["content-type"] == "application/octet-stream"
    assert f"{USER_A}_image.pt" in got.headers["content-disposition"]
    absent = await api.http.get("/api/getfile", params={"userId": USER_A, "game": "snake", "dockerId": 4})
    assert absent.status_code == 404 and absent.json() == {"detail": "Model file not found"}
    hostile = await api.http.get("/api/getfile", params={"userId": "../../../etc", "game": "image", "dockerId": 4})
    assert hostile.status_code == 422
    assert leftovers(api.settings) == sorted([f"logs/{USER_A}/snake.json", f"train/4/image/{USER_A}/model.pt"])


async def test_a_rundocker_retried_after_a_lost_ack_is_one_run(api: Api, nats_server):
    """NATS freezes mid-request: the API cannot confirm (503) although the request may be stored; the
    Java backend calls again once NATS is back, and exactly one run exists."""
    import signal

    (api.settings.data_dir / "uploads" / "bot.py").write_bytes(GOOD_SCRIPT)
    body = {"dockerId": 4, "game": "SNAKE", "userId": USER_A, "isTraining": False}
    nats_server.process.send_signal(signal.SIGSTOP)
    try:
        frozen = await api.http.post("/api/rundocker", json=body, timeout=60)
    finally:
        nats_server.process.send_signal(signal.SIGCONT)
    assert frozen.status_code == 503 and "Idempotency-Key" in frozen.json()["detail"]
    assert frozen.headers["retry-after"]
    await asyncio.sleep(2)  # the client reconnects and flushes what it had buffered
    retried = await api.http.post("/api/rundocker", json=body, timeout=60)
    assert retried.status_code == 200, retried.text
    await asyncio.sleep(1)
    events = await _requested(api)
    assert len(events) == 1, [e["run_id"] for e in events]
