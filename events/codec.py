"""Bytes <-> events. One decoder for the whole union; unknown types are reported, not fatal."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from events.model import AnyEvent, Event

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


class _Envelope(msgspec.Struct):
    type: str = "?"


_envelope = msgspec.json.Decoder(_Envelope)


class UnknownEvent(ValueError):
    """A payload whose ``type`` this version does not know (written by a newer producer)."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"unknown event type {type_name!r}")
        self.type_name = type_name


class MalformedEvent(ValueError):
    """A payload that is not a valid event of a known type."""


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        try:
            kind = _envelope.decode(data).type
        except msgspec.DecodeError:
            raise MalformedEvent(str(exc)) from None
        if "Invalid value" in str(exc) and "$.type" in str(exc):
            raise UnknownEvent(kind) from None
        raise MalformedEvent(f"{kind}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MalformedEvent(str(exc)) from None


def to_builtins(event: Event) -> dict[str, Any]:
    return json.loads(encode(event))


def schema() -> dict[str, Any]:
    """JSON Schema of every event (``lumia events schema``)."""
    return msgspec.json.schema(AnyEvent)
