"""Hostile uploads get the right 4xx and leave nothing behind (POST /upload and POST /v1/runs)."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.conftest import GOOD_SCRIPT, TOKEN, USER_A, Api, leftovers

FIFTY_MB = 50 * 1024 * 1024

HOSTILE: list[tuple[str, bytes, str, int, str]] = [
    # (file name, content, part content type, status, words in the detail)
    ("../../etc/evil.py", b"import os\nos.system('x'\n", "text/x-python", 422, "line 2"),
    ("bot.py", b"", "text/x-python", 422, "empty"),
    ("bot.py", b"   \n\n", "text/x-python", 422, "empty"),
    ("bot.py", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "image/png", 422, "binary"),
    ("bot.py", "print('é')\n".encode("latin-1"), "text/x-python", 422, "UTF-8"),
    ("bot.py", b"def f(:\n    pass\n", "text/x-python", 422, "line 1"),
    ("bot.py", b"x = 1\n  y = 2\n", "text/x-python", 422, "line 2"),
    ("bot.py", b"x = " + b"(" * 300 + b"1" + b")" * 300 + b"\n", "text/x-python", 422, "line 1"),
    ("bot.py", b"x = " + b"-" * 200_000 + b"1\n", "text/x-python", 422, "compiled"),
    ("bot.txt", GOOD_SCRIPT, "text/plain", 422, ".py"),
    ("bot.py.exe", GOOD_SCRIPT, "application/octet-stream", 422, ".py"),
    ("..\\..\\win.ini", GOOD_SCRIPT, "text/x-python", 422, ".py"),
    ("bot.py", b"# " + b"x" * 300_000 + b"\n", "text/x-python", 413, "larger than"),
]


async def test_hostile_uploads_get_4xx_and_leave_nothing(api: Api):
    for name, content, content_type, status, words in HOSTILE:
        for path, data in (("/upload", {"userId": USER_A}), ("/v1/runs", {"userId": USER_A, "game": "snake"})):
            response = await api.http.post(path, files={"file": (name, content, content_type)}, data=data)
            assert response.status_code == status, (path, name, content[:20], response.text)
            assert words in response.json()["detail"], (path, name, response.json())
    assert leftovers(api.settings) == []

    traversal = await api.http.post("/upload", files={"file": ("../../../tmp/x/../bot.py", GOOD_SCRIPT)})
    assert traversal.status_code == 200 and traversal.json()["filename"] == "bot.py"
    stored = leftovers(api.settings)
    assert len(stored) == 2 and all(p.startswith("uploads/.lumia/") for p in stored), stored
    assert not (api.settings.data_dir.parent / "tmp").exists()


async def test_wrong_content_types(api: Api):
    assert (await api.http.post("/upload", json={"file": "print(1)"})).status_code == 415
    assert (await api.http.post("/upload", content=GOOD_SCRIPT,
                                headers={"Content-Type": "text/x-python"})).status_code == 415
    assert (await api.http.post("/v1/runs", content=GOOD_SCRIPT,
                                headers={"Content-Type": "text/plain"})).status_code == 415
    assert (await api.http.post("/v1/runs", content=b"x")).status_code == 415
    no_boundary = await api.http.post("/v1/runs", content=b"garbage", headers={"Content-Type": "multipart/form-data"})
    assert no_boundary.status_code == 400, no_boundary.text
    no_file = await api.http.post("/v1/runs", data={"userId": USER_A, "game": "snake"},
                                  files={"other": ("a.py", GOOD_SCRIPT)})
    assert no_file.status_code == 422
    field_as_file = await api.http.post("/upload", files={"file": ("a.py", GOOD_SCRIPT),
                                                          "userId": ("u.py", b"x")})
    assert field_as_file.status_code == 422
    assert leftovers(api.settings) == []


async def test_fifty_megabytes_is_refused_while_streaming(api: Api):
    body = b"x" * FIFTY_MB
    declared = await api.http.post("/upload", files={"file": ("big.py", body)})
    assert declared.status_code == 413, declared.text
    assert "larger than" in declared.json()["detail"]

    async def chunks():  # no Content-Length: the limit is counted as the body streams in
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.py"\r\n\r\n'
        chunk = b"#" * 65536
        for _ in range(FIFTY_MB // len(chunk)):
            yield chunk
            await asyncio.sleep(0)

    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "multipart/form-data; boundary=xyz"}
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as http:
        answered = []
        for path in ("/upload", "/v1/runs", "/api/rundocker"):
            try:
                streamed = await http.post(path, content=chunks(), headers=headers)
            except httpx.TransportError:  # the server may close before the client stops sending
                continue
            assert streamed.status_code == 413, (path, streamed.text)
            answered.append(path)
    assert answered, "no streamed request got an answer"
    assert leftovers(api.settings) == []
