"""The API on uvicorn for real (the ``api`` role of ``run_services``), driven with httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from lumia.config import Settings
from lumia.natsserver import free_port
from tests.conftest import running_services

TOKEN = "s3cret-token-for-tests"
USER_A = "65a1f0c2e4b0a1b2c3d4e5f6"
USER_B = "65a1f0c2e4b0a1b2c3d4e5f7"
GOOD_SCRIPT = b"import socket\n\nprint('hello')\n"


@dataclass
class Api:
    url: str
    settings: Settings
    http: httpx.AsyncClient


@pytest.fixture
async def api(settings_for) -> AsyncIterator[Api]:
    settings = settings_for(api_port=free_port(), api_token=TOKEN)
    async with running_services(settings, ("api",)), httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.api_port}", timeout=20,
            headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield Api(f"http://127.0.0.1:{settings.api_port}", settings, http)


def leftovers(settings: Settings) -> list[str]:
    """Files under the data dir outside the NATS store (quarantine counts: it is a leftover)."""
    root = settings.data_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "nats" not in p.parts)
