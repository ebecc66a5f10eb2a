"""``submit_run``: the one way a run is requested, shared by the legacy and the v1 endpoints."""

from __future__ import annotations

import hashlib

import vault
from events import RunRequested, new_run_id
from events.bus import Publisher
from vault import DataDir


async def submit_run(publisher: Publisher, data: DataDir, *, user_id: str, game: str, docker_id: int,
                     training: bool, script: str, script_name: str, source: str, seed: int | None = None,
                     restart_of: str | None = None, keep_in_vault: bool = True,
                     run_id: str | None = None) -> RunRequested:
    """Publish ``RunRequested``; once JetStream acknowledged it, keep the durable copy for restarts."""
    user_id, game, docker_id = vault.user_id(user_id), vault.game(game), vault.docker_id(docker_id)
    data_bytes = script.encode("utf-8")
    run_id = run_id or new_run_id()
    event = RunRequested(
        run_id=run_id,
        user_id=user_id,
        game=game,  # type: ignore[arg-type]
        docker_id=docker_id,
        training=training and game == "image",
        script_name=script_name,
        script=script,
        script_sha256=vault.sha256(data_bytes),
        seed=seed if seed is not None else int(run_id[:8], 16) % 2**31,  # a retried request keeps its seed
        source=source,  # type: ignore[arg-type]
        restart_of=restart_of,
    )
    await publisher.publish(event)  # raises BrokerUnavailable: then nothing was recorded
    if keep_in_vault:
        vault.store_in_vault(data, docker_id, game, user_id, data_bytes, event.training)
    return event


def stable_run_id(*parts: object) -> str:
    """A run id derived from what identifies a request, so that a retried request (after a 503 whose
    publish may in fact have been stored) gets the same id and JetStream stores it once."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:32]
