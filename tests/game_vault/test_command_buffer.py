"""Framing rules of game_vault.protocol: commands never depend on where chunk boundaries fall."""

from __future__ import annotations

import itertools
import json

import pytest

from game_vault.protocol import MAX_MESSAGE_BYTES, CommandBuffer, MessageTooLarge, encode_message

SNAKE_COMMANDS = {"MOVE_UP", "MOVE_DOWN", "MOVE_LEFT", "MOVE_RIGHT"}


def _buffer(limit: int = 4096) -> CommandBuffer:
    return CommandBuffer(SNAKE_COMMANDS.__contains__, limit=limit, grace_s=0.1)


def _read(chunks: list[bytes]) -> list[str]:
    """Feed chunks quickly (within the grace), then let the connection go quiet."""
    buffer, commands, now = _buffer(), [], 0.0
    for chunk in chunks:
        now += 0.01
        buffer.feed(chunk, now)
        while (command := buffer.pop()) is not None:
            commands.append(command)
    if buffer.quiet_deadline() is not None and (command := buffer.flush()) is not None:
        commands.append(command)
    return commands


def test_encode_message_uses_default_separators_and_a_newline() -> None:
    data = encode_message({"a": [1, 2], "b": "é"})
    assert data == (json.dumps({"a": [1, 2], "b": "é"}) + "\n").encode()
    assert data == b'{"a": [1, 2], "b": "\\u00e9"}\n'


def test_encode_message_refuses_more_than_1024_bytes() -> None:
    with pytest.raises(MessageTooLarge):
        encode_message({"x": "a" * MAX_MESSAGE_BYTES})


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"MOVE_UP"], ["MOVE_UP"]),
        ([b"MOVE_UP\n"], ["MOVE_UP"]),
        ([b" MOVE_UP \r\n"], ["MOVE_UP"]),
        ([b"MOVE_", b"UP"], ["MOVE_UP"]),
        ([b"MOVE_UP", b"\n"], ["MOVE_UP"]),
        ([b"MOVE_UP\nMOVE_LEFT\n"], ["MOVE_UP", "MOVE_LEFT"]),
        ([b"MOVE_UPMOVE_LEFT"], ["MOVE_UPMOVE_LEFT"]),
        ([b"\n\n  \n"], []),
        ([b"mo", b"ve_up"], ["move_up"]),
        ([b"\xff\xfe"], ["\ufffd\ufffd"]),
    ],
)
def test_commands(chunks: list[bytes], expected: list[str]) -> None:
    assert _read(chunks) == expected


def test_a_bare_partial_token_waits_for_the_grace_period() -> None:
    buffer = _buffer()
    buffer.feed(b"MOVE_", 1.0)
    assert buffer.pop() is None
    assert buffer.quiet_deadline() == pytest.approx(1.1)
    buffer.feed(b"UP", 1.05)
    assert buffer.pop() == "MOVE_UP"
    assert buffer.quiet_deadline() is None


def test_a_split_utf8_character_is_decoded_whole() -> None:
    assert _read([b"caf\xc3", b"\xa9\n"]) == ["café"]


@pytest.mark.parametrize(
    "stream",
    [
        b"MOVE_UP\nMOVE_LEFT\n\nMOVE_\n  MOVE_DOWN \r\ngarbage\xff\n",
        b"MOVE_UMOVE_UP\nxyz\n",
        b"MOVE_RIGHT",
        b"MOVE_RI",
    ],
)
def test_chunk_boundaries_never_change_the_commands(stream: bytes) -> None:
    whole = _read([stream])
    for cut_a, cut_b in itertools.combinations(range(1, len(stream)), 2):
        chunks = [stream[:cut_a], stream[cut_a:cut_b], stream[cut_b:]]
        assert _read(chunks) == whole, chunks


def test_documented_limit_a_complete_bare_token_is_taken_at_once() -> None:
    # Rule 2: a legacy client waits for the reply after a bare command, so nothing can follow it.
    # A client that glues two commands without newlines and has them split exactly between them is
    # the one case where a boundary matters: glued in one chunk it is one invalid command.
    assert _read([b"MOVE_UPMOVE_UP"]) == ["MOVE_UPMOVE_UP"]
    assert _read([b"MOVE_UP", b"MOVE_UP"]) == ["MOVE_UP", "MOVE_UP"]


def test_an_oversize_command_is_one_command_with_bounded_memory() -> None:
    buffer = _buffer(limit=1024)
    chunk = b"A" * 65536
    for i in range(160):  # 10 MB without a newline
        buffer.feed(chunk, float(i))
        assert buffer.pop() is None
        assert len(buffer._tail) <= 1024
    buffer.feed(b"AAA\nMOVE_UP\n", 200.0)
    command = buffer.pop()
    assert command is not None and command.startswith("AAAA") and command.endswith("...")
    assert len(command) < 100
    assert buffer.pop() == "MOVE_UP"


def test_an_oversize_command_without_newline_ends_when_the_client_goes_quiet() -> None:
    buffer = _buffer(limit=16)
    buffer.feed(b"B" * 100, 1.0)
    assert buffer.pop() is None
    assert buffer.quiet_deadline() == pytest.approx(1.1)
    assert buffer.flush() == "B" * 64 + "..."
    assert buffer.quiet_deadline() is None


def test_clear_drops_pending_input() -> None:
    buffer = _buffer()
    buffer.feed(b"MOVE_UP\nMOVE_", 0.0)
    buffer.clear()
    assert buffer.pop() is None and buffer.quiet_deadline() is None
