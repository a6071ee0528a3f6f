"""An in-memory ``Storage``: for tests, and for ``storage: {url: "memory://"}``.

Nothing survives the process, which is the point: a throwaway gateway (a demo, a test, a
benchmark) gets keys and a usage ledger with no file and no database. It keeps the same
promises as the SQL backends so tests written against it hold for them too: key ids and
hashes are unique, a usage record is stored once per request id, queries are newest
first, and records handed out are copies (a caller mutating one cannot change the store).

An optional ``available`` switch lets tests simulate an outage: while it is False every
write raises ``StorageUnavailableError`` like a database that went away.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from llm_gateway.core.records import UsageRecord, VirtualKey
from llm_gateway.storage.base import StorageUnavailableError, UsageQuery, UsageTotals
from llm_gateway.storage.errors import DuplicateKeyError

if TYPE_CHECKING:
    from llm_gateway.storage.base import Storage


def _matches(record: UsageRecord, query: UsageQuery) -> bool:
    if query.key_id is not None and record.key_id != query.key_id:
        return False
    if query.model is not None and record.model != query.model:
        return False
    if query.since is not None and record.created_at < query.since:
        return False
    return query.until is None or record.created_at < query.until


def _copy(key: VirtualKey) -> VirtualKey:
    """A copy sharing no mutable part (the model list, the metadata) with ``key``."""
    return msgspec.structs.replace(
        key, allowed_models=list(key.allowed_models), metadata=copy.deepcopy(key.metadata)
    )


def _is_error(record: UsageRecord) -> bool:
    return record.status >= 400 or record.error_code is not None


class MemoryStorage:
    """Keys and usage records in dicts, behind one lock (each operation is atomic)."""

    def __init__(self, keys: Iterable[VirtualKey] = ()) -> None:
        self._keys: dict[str, VirtualKey] = {}
        self._hashes: set[str] = set()
        # Insertion order is arrival order; ``created_at`` decides query order.
        self._usage: dict[str, UsageRecord] = {}
        # A thread lock, not an asyncio one: nothing awaits while holding it, and tests may
        # reach the same store from the server's thread and their own event loop.
        self._lock = threading.Lock()
        self.available = True
        for key in keys:
            self._keys[key.id] = _copy(key)
            self._hashes.add(key.key_hash)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to connect to or migrate."""

    async def aclose(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""

    def _check_available(self) -> None:
        if not self.available:
            raise StorageUnavailableError("memory storage is switched off (simulated outage)")

    # -- keys -----------------------------------------------------------------------------

    async def add_key(self, key: VirtualKey) -> None:
        with self._lock:
            self._check_available()
            if key.id in self._keys:
                raise DuplicateKeyError(f"a key with id {key.id!r} already exists")
            if key.key_hash in self._hashes:
                # Never echo the hash: it identifies the secret.
                raise DuplicateKeyError("a key with the same secret already exists")
            self._keys[key.id] = _copy(key)
            self._hashes.add(key.key_hash)

    async def list_keys(self) -> list[VirtualKey]:
        with self._lock:
            self._check_available()
            ordered = sorted(self._keys.values(), key=lambda k: k.created_at)
            return [_copy(k) for k in ordered]

    async def get_key(self, key_id: str) -> VirtualKey | None:
        with self._lock:
            self._check_available()
            key = self._keys.get(key_id)
            return _copy(key) if key is not None else None

    async def update_key(self, key: VirtualKey) -> None:
        with self._lock:
            self._check_available()
            current = self._keys.get(key.id)
            if current is None:  # like an UPDATE that matches no row
                return
            # id, key_hash and created_at are immutable: keep the stored ones.
            self._keys[key.id] = msgspec.structs.replace(
                _copy(key), key_hash=current.key_hash, created_at=current.created_at
            )

    async def revoke_key(self, key_id: str, at: float) -> bool:
        with self._lock:
            self._check_available()
            current = self._keys.get(key_id)
            if current is None:
                return False
            if current.revoked_at is None:  # the first revocation time stands
                self._keys[key_id] = msgspec.structs.replace(current, revoked_at=at)
            return True

    # -- usage ----------------------------------------------------------------------------

    async def insert_usage(self, records: list[UsageRecord]) -> int:
        with self._lock:
            self._check_available()
            new = 0
            for record in records:
                if record.request_id in self._usage:
                    continue
                self._usage[record.request_id] = msgspec.structs.replace(record)
                new += 1
            return new

    async def query_usage(self, query: UsageQuery) -> list[UsageRecord]:
        with self._lock:
            self._check_available()
            found = [r for r in self._usage.values() if _matches(r, query)]
        found.sort(key=lambda r: r.created_at, reverse=True)
        page = found[query.offset : query.offset + max(query.limit, 0)]
        return [msgspec.structs.replace(r) for r in page]

    async def usage_totals(self, query: UsageQuery) -> UsageTotals:
        with self._lock:
            self._check_available()
            found = [r for r in self._usage.values() if _matches(r, query)]
        totals = UsageTotals()
        for r in found:
            totals.requests += 1
            totals.prompt_tokens += r.prompt_tokens
            totals.completion_tokens += r.completion_tokens
            totals.cached_tokens += r.cached_tokens
            totals.reasoning_tokens += r.reasoning_tokens
            totals.cost += r.cost
            totals.errors += 1 if _is_error(r) else 0
            totals.cache_hits += 1 if r.cache_hit else 0
        return totals

    async def spend_by_key(self, since: dict[str, float]) -> dict[str, float]:
        with self._lock:
            self._check_available()
            # Like the SQL backends: keys with no record since their start are absent.
            spend: dict[str, float] = {}
            for r in self._usage.values():
                start = since.get(r.key_id) if r.key_id is not None else None
                if start is not None and r.key_id is not None and r.created_at >= start:
                    spend[r.key_id] = spend.get(r.key_id, 0.0) + r.cost
            return spend

    def __len__(self) -> int:
        """How many usage records are stored (for tests and diagnostics)."""
        return len(self._usage)


if TYPE_CHECKING:  # mypy proves the class satisfies the protocol
    _conforms: Storage = MemoryStorage()

__all__ = ["MemoryStorage"]
