"""The harness: one socket session over any :class:`~game_vault.game.Game`.

It seats the clients (platform players first, then announces readiness), frames their input with
:class:`~game_vault.protocol.CommandBuffer`, enforces the start-up, per-move and whole-game limits,
and turns a disconnect, a timeout or an interrupt into the game's own ending. Input from a player
whose turn it is not is dropped (§13), but its disconnect is noticed at once.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from game_vault.protocol import CommandBuffer, encode_message

if TYPE_CHECKING:
    from game_vault.game import Game
    from game_vault.types import Outbound, Result, Seat

_RECV_BYTES = 65536


@dataclass(frozen=True)
class Limits:
    """Seconds. The whole-game limit runs from readiness; a move limit shorter than it is useful."""

    move_timeout: float = 10.0
    game_timeout: float = 300.0
    connect_timeout: float = 30.0
    delay: float = 0.0


class PlatformPlayer(Protocol):
    """A client the platform runs itself (the Connect 4 opponent), seated before readiness."""

    def connect(self, host: str, port: int, timeout: float) -> tuple[str, int]: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Disconnected:
    seat: Seat
    abrupt: bool


@dataclass(frozen=True)
class _MoveTimedOut:
    seat: Seat


@dataclass(frozen=True)
class _GameTimedOut:
    pass


@dataclass(frozen=True)
class _NoClient:
    pass


_Ending = _Disconnected | _MoveTimedOut | _GameTimedOut | _NoClient


def run_session(
    game: Game,
    *,
    host: str,
    port: int,
    limits: Limits,
    platform: Mapping[Seat, PlatformPlayer],
    on_ready: Callable[[], None],
) -> Result:
    """Play ``game`` to its end on ``host:port``; ``on_ready`` runs once the user may connect."""
    session = _Session(game, limits, platform)
    try:
        return session.run(host, port, on_ready)
    finally:
        session.close()


class _Session:
    def __init__(self, game: Game, limits: Limits, platform: Mapping[Seat, PlatformPlayer]) -> None:
        self._game = game
        self._limits = limits
        self._platform = platform
        self._listener: socket.socket | None = None
        self._connections: dict[Seat, socket.socket] = {}
        self._buffers = {seat: CommandBuffer(game.accepts) for seat in game.seats}
        self._selector = selectors.DefaultSelector()
        self._game_deadline = float("inf")

    def run(self, host: str, port: int, on_ready: Callable[[], None]) -> Result:
        game = self._game
        self._listen(host, port)  # a port that cannot be bound is the caller's fault: it raises
        game.open()
        try:
            ending = self._seat_everyone(host, on_ready)
            if ending is None:
                ending = self._send(game.start())
            ending = ending or self._play()
            if ending is not None and not game.is_over:
                self._send(self._conclude(ending), terminal=True)
        except KeyboardInterrupt:
            if not game.is_over:
                self._send(game.interrupted(), terminal=True)
        except Exception as error:  # a bug must still leave a log and a result behind
            if not game.is_over:
                game.server_error(error)
        assert game.result is not None
        return game.result

    def close(self) -> None:
        for connection in self._connections.values():
            _close_quietly(connection)
        if self._listener is not None:
            self._listener.close()
        self._selector.close()
        for player in self._platform.values():
            player.close()

    def _listen(self, host: str, port: int) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(len(self._game.seats))
        self._listener = listener

    def _seat_everyone(self, host: str, on_ready: Callable[[], None]) -> _Ending | None:
        assert self._listener is not None
        port = self._listener.getsockname()[1]
        connect_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        for seat, player in self._platform.items():
            address = player.connect(connect_host, port, self._limits.connect_timeout)
            connection = self._accept(time.monotonic() + self._limits.connect_timeout, expected=address)
            if connection is None:
                raise RuntimeError(f"platform player {seat} could not connect")
            self._seat(seat, connection)
            player.start()
        on_ready()
        self._game_deadline = time.monotonic() + self._limits.game_timeout
        connect_deadline = min(time.monotonic() + self._limits.connect_timeout, self._game_deadline)
        for seat in self._game.seats:
            if seat in self._connections:
                continue
            connection = self._accept(connect_deadline)
            if connection is None:
                return _NoClient()
            self._seat(seat, connection)
        self._listener.close()  # later connections are refused, not left waiting
        self._listener = None
        return None

    def _accept(self, deadline: float, expected: tuple[str, int] | None = None) -> socket.socket | None:
        assert self._listener is not None
        while (remaining := deadline - time.monotonic()) > 0:
            self._listener.settimeout(remaining)
            try:
                connection, peer = self._listener.accept()
            except TimeoutError:
                return None
            if expected is None or peer == expected:
                return connection
            connection.close()  # someone raced the platform player for its seat
        return None

    def _seat(self, seat: Seat, connection: socket.socket) -> None:
        connection.settimeout(self._limits.move_timeout)  # bounds a send to a client that never reads
        self._connections[seat] = connection
        self._selector.register(connection, selectors.EVENT_READ, seat)
        self._game.seated(seat)

    def _play(self) -> _Ending | None:
        game = self._game
        previous: Seat | None = None
        while not game.is_over:
            seat = game.awaiting()
            if previous is not None and previous != seat:
                self._buffers[previous].clear()  # what it sent after its move was out of turn
            previous = seat
            command = self._next_command(seat)
            if not isinstance(command, str):
                return command
            ending = self._send(game.apply(seat, command), terminal=game.is_over)
            if ending is not None:
                return ending
            if self._limits.delay and not game.is_over:
                time.sleep(self._limits.delay)
        return None

    def _next_command(self, seat: Seat) -> str | _Ending:
        buffer = self._buffers[seat]
        move_deadline = time.monotonic() + self._limits.move_timeout
        while True:
            command = buffer.pop()
            if command is not None:
                return command
            now = time.monotonic()
            quiet = buffer.quiet_deadline()
            if quiet is not None and now >= quiet:
                command = buffer.flush()
                if command is not None:
                    return command
                continue
            if now >= self._game_deadline:
                return _GameTimedOut()
            if now >= move_deadline:
                return _MoveTimedOut(seat)
            wake = min(quiet if quiet is not None else move_deadline, move_deadline, self._game_deadline)
            for key, _ in self._selector.select(max(0.0, wake - now)):
                sender: Seat = key.data
                try:
                    data = key.fileobj.recv(_RECV_BYTES)  # type: ignore[union-attr]
                except OSError:
                    return _Disconnected(sender, abrupt=True)
                if not data:
                    return _Disconnected(sender, abrupt=False)
                if sender == seat:
                    buffer.feed(data, time.monotonic())

    def _send(self, outbound: list[Outbound], terminal: bool = False) -> _Ending | None:
        for seat, message in outbound:
            connection = self._connections.get(seat)
            if connection is None:
                continue
            try:
                connection.sendall(encode_message(message))
            except OSError:
                # A broken pipe is a reset; after the game ended it no longer matters.
                if not terminal:
                    return _Disconnected(seat, abrupt=True)
        return None

    def _conclude(self, ending: _Ending) -> list[Outbound]:
        game, limits = self._game, self._limits
        match ending:
            case _Disconnected(seat, abrupt):
                return game.disconnected(seat, abrupt)
            case _MoveTimedOut(seat):
                return game.move_timed_out(seat, limits.move_timeout)
            case _GameTimedOut():
                return game.game_timed_out(limits.game_timeout)
            case _NoClient():
                return game.no_client(limits.connect_timeout)


def _close_quietly(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()
