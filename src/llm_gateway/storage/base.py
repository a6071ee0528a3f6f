"""The storage interfaces the rest of the gateway depends on.

Nothing outside ``storage/`` imports SQLAlchemy: the gate, the admin API and the CLI see
only these protocols. The database is never on the request hot path: keys are served
from an in-memory snapshot (see ``gate/``) and usage is written behind the request by a
``UsageWriter``.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from llm_gateway.core.records import UsageRecord, VirtualKey


class StorageUnavailableError(Exception):
    """The database could not be reached or refused the write (locked, read-only, down)."""


class UsageQuery(msgspec.Struct, kw_only=True):
    key_id: str | None = None
    model: str | None = None
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    limit: int = 100
    offset: int = 0


class UsageTotals(msgspec.Struct, kw_only=True):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    errors: int = 0  # records with status >= 400 or an error_code
    cache_hits: int = 0


class KeyStore(Protocol):
    async def add_key(self, key: VirtualKey) -> None:
        """Insert a new key; ids and hashes are unique."""

    async def list_keys(self) -> list[VirtualKey]:
        """Every key, revoked and expired included, oldest first."""

    async def get_key(self, key_id: str) -> VirtualKey | None: ...

    async def update_key(self, key: VirtualKey) -> None:
        """Replace a key's mutable fields (everything but id, key_hash, created_at)."""

    async def revoke_key(self, key_id: str, at: float) -> bool:
        """Mark revoked; False when no such key."""


class UsageStore(Protocol):
    async def insert_usage(self, records: list[UsageRecord]) -> int:
        """Insert a batch; a record whose request_id is already stored is skipped (exactly
        once). Returns how many were new. Raises ``StorageUnavailableError`` on outage."""

    async def query_usage(self, query: UsageQuery) -> list[UsageRecord]:
        """Newest first."""

    async def usage_totals(self, query: UsageQuery) -> UsageTotals:
        """Totals over every record matching the filters (limit/offset ignored)."""

    async def spend_by_key(self, since: dict[str, float]) -> dict[str, float]:
        """Cost per key id since each key's own start time (its budget period's start)."""


class Storage(KeyStore, UsageStore, Protocol):
    """One database holding both; created by ``storage.open_storage(url)``."""

    async def start(self) -> None:
        """Connect and run migrations (fast and idempotent)."""

    async def aclose(self) -> None: ...


__all__ = [
    "KeyStore",
    "Storage",
    "StorageUnavailableError",
    "UsageQuery",
    "UsageStore",
    "UsageTotals",
]
