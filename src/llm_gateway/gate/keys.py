"""Virtual keys: minting, hashing, and the in-memory snapshot requests are checked against.

A key is ``sk-gw-`` followed by 43 URL-safe characters (256 random bits). Only its sha256
is stored: the keys are random, not passwords, so a slow hash buys nothing and would cost
the hot path. Lookup is by hash in a dict; the stored hash is then compared with
``hmac.compare_digest`` so no comparison short-circuits on a secret prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterable
from typing import Any

from llm_gateway.core.records import BudgetPeriod, VirtualKey

KEY_PREFIX = "sk-gw-"
SHOWN_PREFIX_CHARS = 10  # "sk-gw-" and four random characters: enough to tell keys apart


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key_id() -> str:
    return "key_" + os.urandom(8).hex()


def mint_key(
    name: str,
    *,
    owner: str | None = None,
    team: str | None = None,
    allowed_models: Iterable[str] = (),
    rpm: int | None = None,
    tpm: int | None = None,
    budget: float | None = None,
    budget_period: BudgetPeriod = "total",
    metadata: dict[str, Any] | None = None,
    expires_at: float | None = None,
    now: float | None = None,
) -> tuple[str, VirtualKey]:
    """A new key: the secret (shown once) and the record to store."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = VirtualKey(
        id=new_key_id(),
        name=name,
        key_hash=hash_key(secret),
        prefix=secret[:SHOWN_PREFIX_CHARS],
        owner=owner,
        team=team,
        allowed_models=list(allowed_models),
        rpm=rpm,
        tpm=tpm,
        budget=budget,
        budget_period=budget_period,
        metadata=dict(metadata or {}),
        created_at=time.time() if now is None else now,
        expires_at=expires_at,
    )
    return secret, record


class KeyRing:
    """The snapshot of every stored key, by hash. Replaced whole on refresh, never mutated."""

    __slots__ = ("_by_hash", "_by_id")

    def __init__(self, keys: Iterable[VirtualKey] = ()) -> None:
        self._by_hash = {k.key_hash: k for k in keys}
        self._by_id = {k.id: k for k in self._by_hash.values()}

    def __len__(self) -> int:
        return len(self._by_hash)

    def find(self, secret: str) -> VirtualKey | None:
        digest = hash_key(secret)
        key = self._by_hash.get(digest)
        if key is None or not hmac.compare_digest(key.key_hash, digest):
            return None
        return key

    def by_id(self, key_id: str) -> VirtualKey | None:
        return self._by_id.get(key_id)

    def keys(self) -> list[VirtualKey]:
        return list(self._by_hash.values())


__all__ = ["KEY_PREFIX", "KeyRing", "hash_key", "mint_key", "new_key_id"]
