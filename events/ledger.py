"""Which file contents under the data dir have already been announced, per path, in a KV bucket.

The JetStream duplicate window (minutes) stops a repeated publish soon after the first; this ledger
makes the same promise forever, so a runner restarted a day later does not announce (and the
forwarder does not re-upload) every log still on disk. Writers record a path's digest when they
announce it; the watcher skips a file whose digest is already recorded for its path.
"""

from __future__ import annotations

import hashlib

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError

from events.bus import BrokerUnavailable

BUCKET = "lumia_files"


def _key(relative_path: str) -> str:
    return "f" + hashlib.sha256(relative_path.encode()).hexdigest()[:40]


class FileLedger:
    """Opened lazily, so a process that starts while NATS is down keeps going and retries."""

    def __init__(self, js: JetStreamContext, replicas: int = 1) -> None:
        self._js = js
        self._replicas = replicas
        self._kv: object | None = None

    async def _bucket(self) -> object:
        if self._kv is None:
            try:
                self._kv = await self._js.key_value(BUCKET)
            except (BucketNotFoundError, NotFoundError):
                self._kv = await self._js.create_key_value(KeyValueConfig(
                    bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=self._replicas,
                    description="announced file digests per path"))
        return self._kv

    async def announced(self, relative_path: str, sha256: str) -> bool:
        try:
            entry = await (await self._bucket()).get(_key(relative_path))  # type: ignore[attr-defined]
        except (KeyNotFoundError, NotFoundError):
            return False
        except (NatsError, TimeoutError) as exc:
            raise BrokerUnavailable(f"file ledger unreachable: {exc!r}") from None
        return entry.value == sha256.encode()

    async def record(self, relative_path: str, sha256: str) -> None:
        try:
            await (await self._bucket()).put(_key(relative_path), sha256.encode())  # type: ignore[attr-defined]
        except (NatsError, TimeoutError) as exc:
            raise BrokerUnavailable(f"file ledger unreachable: {exc!r}") from None
