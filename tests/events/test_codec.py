"""Events: today's payloads decode forever, unknown types are recognised, ids are deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events import EVENT_TYPES, LogWritten, RunExited, RunRequested
from events.codec import MalformedEvent, UnknownEvent, decode, encode, schema
from events.model import event_type_tag
from events.subjects import InvalidId, subject_for, token

V1 = Path(__file__).parent / "v1"


def test_every_event_type_has_a_stored_v1_payload() -> None:
    stored = {path.stem for path in V1.glob("*.json")}
    assert stored == {event_type_tag(kind) for kind in EVENT_TYPES}


@pytest.mark.parametrize("path", sorted(V1.glob("*.json")), ids=lambda p: p.stem)
def test_v1_payloads_decode_and_round_trip(path: Path) -> None:
    raw = path.read_bytes()
    event = decode(raw)
    assert event_type_tag(type(event)) == path.stem
    assert json.loads(encode(event)) == json.loads(raw)  # nothing lost, nothing invented


def test_a_payload_without_newer_fields_still_decodes() -> None:
    # What an older producer wrote: no schema_version, no optional fields.
    old = {"type": "run.exited", "event_id": "r1.exited", "at": "2026-01-01T00:00:00Z", "run_id": "r1"}
    event = decode(json.dumps(old).encode())
    assert isinstance(event, RunExited)
    assert event.exit_code is None and event.outcome is None and event.schema_version == 1


def test_extra_fields_from_a_newer_producer_are_ignored() -> None:
    payload = json.loads((V1 / "run.exited.json").read_bytes())
    payload["gpu_seconds"] = 12.5
    assert isinstance(decode(json.dumps(payload).encode()), RunExited)


def test_unknown_type_is_reported_as_unknown_not_malformed() -> None:
    with pytest.raises(UnknownEvent) as caught:
        decode(b'{"type": "run.paused", "run_id": "r1"}')
    assert caught.value.type_name == "run.paused"
    with pytest.raises(MalformedEvent):
        decode(b'{"type": "run.exited"}')  # known type, required field missing
    with pytest.raises(MalformedEvent):
        decode(b"not json")


def test_event_ids_are_deterministic_so_retries_deduplicate() -> None:
    a = RunExited(run_id="abc", exit_code=0)
    b = RunExited(run_id="abc", exit_code=1)
    assert a.event_id == b.event_id == "abc.exited"
    log_a = LogWritten(user_id="u" * 24, game="snake", path="p", size=1, sha256="f" * 64)
    log_b = LogWritten(run_id="r", user_id="u" * 24, game="snake", path="p", size=1, sha256="f" * 64)
    assert log_a.event_id == log_b.event_id  # the watcher's copy dedupes against the runner's


def test_subject_tokens_are_validated_not_mangled() -> None:
    with pytest.raises(InvalidId, match="not allowed"):
        token("a.b")
    with pytest.raises(InvalidId):
        subject_for(RunExited(run_id="x>y"))
    with pytest.raises(InvalidId):
        token("")
    assert subject_for(RunRequested(run_id="r_1-A", user_id="u", game="snake", script_name="s", script="",
                                    script_sha256="")) == "lumia.run.r_1-A.requested"


def test_schema_names_every_event() -> None:
    document = json.dumps(schema())
    for kind in EVENT_TYPES:
        assert kind.__name__ in document
