"""The audit stream against a real nats-server: deduplicated publishes, no deletes, ordered replay."""

from __future__ import annotations

import pytest
from nats.js.errors import APIError

from events import LogWritten, RunExited, RunRequested, RunStarted
from events.bus import Publisher, StreamSettings, connect, ensure_stream, read_history, stream_config
from events.subjects import run_subject


def _requested(run_id: str) -> RunRequested:
    return RunRequested(run_id=run_id, user_id="65a1f0c2e4b0a1b2c3d4e5f6", game="snake", script_name="b.py",
                        script="print(1)", script_sha256="0" * 64)


async def test_stream_is_an_audit_log(js, nats_server) -> None:
    info = await js.stream_info("LUMIA")
    config = info.config
    assert config.subjects == ["lumia.>"]
    assert config.deny_delete and config.deny_purge and config.allow_direct
    assert str(config.retention) in ("limits", "RetentionPolicy.LIMITS") and "file" in str(config.storage).lower()
    await ensure_stream(js, StreamSettings(name="LUMIA"))  # idempotent
    publisher = Publisher(js, "LUMIA")
    seq = await publisher.publish(_requested("audit1"))
    admin = await connect((nats_server.admin_url,), name="admin")
    try:  # even an account allowed to try: the stream itself refuses to lose a message
        with pytest.raises(APIError):
            await admin.jetstream().delete_msg("LUMIA", seq)
        with pytest.raises(APIError):
            await admin.jetstream().purge_stream("LUMIA")
    finally:
        await admin.close()
    services = await connect((nats_server.url,), name="services-user")
    try:
        with pytest.raises(Exception):  # noqa: B017 - the services' user has no permission: no answer at all
            await services.jetstream(timeout=1).delete_stream("LUMIA")
    finally:
        await services.close()
    assert (await js.stream_info("LUMIA")).state.messages == 1
    assert stream_config(StreamSettings(max_age_s=86400)).max_age == 86400


async def test_a_duplicate_publish_stores_one_event(js, publisher: Publisher) -> None:
    first = await publisher.publish(RunStarted(run_id="dup1", node="n", runtime="docker"))
    again = await publisher.publish(RunStarted(run_id="dup1", node="n", runtime="docker"))
    assert first == again
    stored = [s async for s in read_history(js, "LUMIA", run_subject("dup1"))]
    assert len(stored) == 1


async def test_a_publish_retried_after_a_timeout_stores_one_event(js, nats_server) -> None:
    """A publish whose ack is lost is retried with the same Msg-Id; JetStream keeps one copy."""
    publisher = Publisher(js, "LUMIA", timeout=0.000001, attempts=1)  # the ack cannot arrive in time
    event = RunExited(run_id="retry1", exit_code=0)
    with pytest.raises(Exception, match="did not acknowledge"):
        await publisher.publish(event)
    patient = Publisher(js, "LUMIA")
    await patient.publish(event)  # the retry
    await patient.publish(event)
    stored = [s async for s in read_history(js, "LUMIA", run_subject("retry1"))]
    assert len(stored) == 1


async def test_replay_returns_exactly_the_runs_events_in_order(js, publisher: Publisher) -> None:
    for run_id in ("a1", "b2"):
        await publisher.publish(_requested(run_id))
    await publisher.publish(RunStarted(run_id="a1", node="n", runtime="docker"))
    await publisher.publish(RunStarted(run_id="b2", node="n", runtime="docker"))
    await publisher.publish(RunExited(run_id="a1", exit_code=0))
    await publisher.publish(LogWritten(run_id="a1", user_id="65a1f0c2e4b0a1b2c3d4e5f6", game="snake",
                                       path="logs/x/snake.json", size=3, sha256="1" * 64))
    stored = [s async for s in read_history(js, "LUMIA", run_subject("a1"))]
    assert [type(s.event).__name__ for s in stored] == ["RunRequested", "RunStarted", "RunExited", "LogWritten"]
    assert [s.seq for s in stored] == sorted(s.seq for s in stored)
    assert all(s.event.run_id == "a1" for s in stored)
