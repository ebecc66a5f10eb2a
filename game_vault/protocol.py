"""Wire framing shared by the three games (protocol §4).

Server → client: one JSON object per message, Python default separators, a trailing ``\\n``, at most
1024 bytes in all (clients read with a single ``recv(1024)``).

Client → server: a per-connection :class:`CommandBuffer`. The rule, chosen so that where a chunk
boundary falls cannot change what the server reads from a well-behaved client:

1. Bytes up to a ``\\n`` are one command. Surrounding whitespace (``\\r`` included) is stripped and an
   empty command is ignored, so ``MOVE_UP`` followed later by a lone ``\\n`` is still one command.
2. Bytes with no ``\\n`` are taken as one command *at once* only when, stripped, they are a complete
   valid command of the game (``MOVE_UP``, ``3``): legacy clients send exactly that and then wait for
   the reply, so nothing else can follow before the server answers.
3. Any other unterminated bytes (``MOVE_``, garbage, two commands glued together) wait for more
   input. When the connection stays quiet for a short grace period they become one command, so
   ``MOVE_`` + ``UP`` arriving in two chunks within the grace reads as ``MOVE_UP``.
4. A command longer than ``limit`` bytes is not kept: its first bytes are remembered for the log and
   the rest is dropped up to its end (rule 1 or 3), so a 10 MB message costs bounded memory and
   counts as one invalid command.

The known limit of rule 2: a client that sends ``30`` unterminated and has it split after the ``3``
reads as ``3``. Legacy clients send one short token per write, which loopback never splits.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable

from game_vault.types import Message

MAX_MESSAGE_BYTES = 1024
MAX_COMMAND_BYTES = 4096
BARE_GRACE_S = 0.1
_KEPT_HEAD_BYTES = 64
# The harness reads a connection only when no command is pending, so this bounds one recv's worth.
_MAX_QUEUED_COMMANDS = 1024


class MessageTooLarge(ValueError):
    """A server message would not fit one ``recv(1024)`` on the client."""


def encode_message(message: Message) -> bytes:
    """Serialise one server message exactly as legacy clients expect it."""
    data = (json.dumps(message) + "\n").encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return data


class CommandBuffer:
    """Turns the byte stream of one connection into commands (see the module docstring)."""

    def __init__(
        self,
        is_complete: Callable[[str], bool],
        *,
        limit: int = MAX_COMMAND_BYTES,
        grace_s: float = BARE_GRACE_S,
    ) -> None:
        self._is_complete = is_complete
        self._limit = limit
        self._grace_s = grace_s
        self._commands: deque[str] = deque(maxlen=_MAX_QUEUED_COMMANDS)
        self._tail = bytearray()
        self._oversize_head: bytes | None = None
        self._last_feed = 0.0

    def feed(self, data: bytes, now: float) -> None:
        """Add bytes received at monotonic time ``now``."""
        self._last_feed = now
        while data:
            newline = data.find(b"\n")
            if newline < 0:
                self._extend_tail(data)
                return
            self._extend_tail(data[:newline])
            data = data[newline + 1 :]
            self._end_command()

    def pop(self) -> str | None:
        """The next command that is already certain (rules 1, 2), or ``None``."""
        if self._commands:
            return self._commands.popleft()
        if self._oversize_head is None and self._tail:
            bare = _decode(bytes(self._tail))
            if bare and self._is_complete(bare):
                self._tail.clear()
                return bare
        return None

    def quiet_deadline(self) -> float | None:
        """When pending unterminated bytes become a command if nothing else arrives (rule 3)."""
        if self._oversize_head is None and not bytes(self._tail).strip():
            return None
        return self._last_feed + self._grace_s

    def flush(self) -> str | None:
        """Take the pending unterminated bytes as one command (the grace period has passed)."""
        self._end_command()
        return self.pop()

    def clear(self) -> None:
        """Forget everything pending, e.g. input a player sent after its turn passed."""
        self._commands.clear()
        self._tail.clear()
        self._oversize_head = None

    def _extend_tail(self, data: bytes) -> None:
        if self._oversize_head is not None:
            return
        self._tail += data
        if len(self._tail) > self._limit:
            self._oversize_head = bytes(self._tail[:_KEPT_HEAD_BYTES])
            self._tail.clear()

    def _end_command(self) -> None:
        if self._oversize_head is not None:
            command = _decode(self._oversize_head) + "..."
            self._oversize_head = None
        else:
            command = _decode(bytes(self._tail))
        self._tail.clear()
        if command:
            self._commands.append(command)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").strip()
