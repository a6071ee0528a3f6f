"""``MemoryStorage`` keeps the ``Storage`` promises the SQL backends keep."""

from __future__ import annotations

import msgspec
import pytest

from llm_gateway.core.records import UsageRecord
from llm_gateway.gate.keys import mint_key
from llm_gateway.storage.base import StorageUnavailableError, UsageQuery
from llm_gateway.storage.errors import DuplicateKeyError
from llm_gateway.storage.memory import MemoryStorage


def record(rid: str, at: float, **fields: object) -> UsageRecord:
    base: dict[str, object] = {"endpoint": "chat.completions", "model": "m1"}
    base.update(fields)
    return UsageRecord(request_id=rid, created_at=at, **base)  # type: ignore[arg-type]


async def test_keys_round_trip_oldest_first_and_copies() -> None:
    store = MemoryStorage()
    _, newer = mint_key("newer", now=200.0)
    _, older = mint_key("older", now=100.0, allowed_models=["gpt-*"], metadata={"a": 1})
    await store.add_key(newer)
    await store.add_key(older)
    listed = await store.list_keys()
    assert [k.name for k in listed] == ["older", "newer"]
    # A caller mutating what it got cannot change the store.
    listed[0].allowed_models.append("evil")
    listed[0].metadata["b"] = 2
    again = await store.get_key(older.id)
    assert again is not None
    assert again.allowed_models == ["gpt-*"]
    assert again.metadata == {"a": 1}
    assert await store.get_key("key_missing") is None


async def test_duplicate_id_or_hash_refused_without_echoing_the_hash() -> None:
    store = MemoryStorage()
    _, key = mint_key("a")
    await store.add_key(key)
    with pytest.raises(DuplicateKeyError):
        await store.add_key(msgspec.structs.replace(key, key_hash="other"))
    with pytest.raises(DuplicateKeyError) as caught:
        await store.add_key(msgspec.structs.replace(key, id="key_other"))
    assert key.key_hash not in str(caught.value)


async def test_update_keeps_immutable_fields_and_revoke_keeps_first_time() -> None:
    store = MemoryStorage()
    _, key = mint_key("a", now=50.0)
    await store.add_key(key)
    changed = msgspec.structs.replace(key, rpm=10, key_hash="forged", created_at=999.0)
    await store.update_key(changed)
    stored = await store.get_key(key.id)
    assert stored is not None
    assert (stored.rpm, stored.key_hash, stored.created_at) == (10, key.key_hash, 50.0)
    # Updating an unknown key changes nothing (like an UPDATE matching no row).
    _, ghost = mint_key("ghost")
    await store.update_key(ghost)
    assert await store.get_key(ghost.id) is None

    assert await store.revoke_key(key.id, at=60.0) is True
    assert await store.revoke_key(key.id, at=70.0) is True
    revoked = await store.get_key(key.id)
    assert revoked is not None and revoked.revoked_at == 60.0
    assert await store.revoke_key("key_missing", at=1.0) is False


async def test_usage_is_stored_exactly_once_per_request_id() -> None:
    store = MemoryStorage()
    first = [record("r1", 1.0, cost=1.0), record("r2", 2.0, cost=2.0)]
    assert await store.insert_usage(first) == 2
    # A retried batch (after an outage) and a duplicate within one batch are skipped.
    again = [record("r2", 2.0, cost=99.0), record("r3", 3.0), record("r3", 3.0)]
    assert await store.insert_usage(again) == 1
    assert len(store) == 3
    totals = await store.usage_totals(UsageQuery())
    assert totals.requests == 3
    assert totals.cost == pytest.approx(3.0)


async def test_query_filters_order_and_pages() -> None:
    store = MemoryStorage()
    await store.insert_usage(
        [
            record("a", 10.0, key_id="k1", model="m1", prompt_tokens=5, completion_tokens=1),
            record("b", 20.0, key_id="k1", model="m2", status=500, error_code="upstream_error"),
            record("c", 30.0, key_id="k2", model="m1", cache_hit=True, cached_tokens=4),
            record("d", 40.0, key_id=None, model="m1", reasoning_tokens=7, cost=0.5),
        ]
    )

    async def ids(**filters: object) -> list[str]:
        found = await store.query_usage(UsageQuery(**filters))  # type: ignore[arg-type]
        return [r.request_id for r in found]

    assert await ids() == ["d", "c", "b", "a"]  # newest first
    assert await ids(key_id="k1") == ["b", "a"]
    assert await ids(model="m1") == ["d", "c", "a"]
    assert await ids(since=20.0) == ["d", "c", "b"]  # inclusive
    assert await ids(until=30.0) == ["b", "a"]  # exclusive
    assert await ids(since=20.0, until=40.0, model="m1") == ["c"]
    assert await ids(limit=2) == ["d", "c"]
    assert await ids(limit=2, offset=2) == ["b", "a"]
    assert await ids(offset=10) == []

    totals = await store.usage_totals(UsageQuery(model="m1", limit=1))  # limit ignored
    assert totals.requests == 3
    assert totals.prompt_tokens == 5
    assert totals.cached_tokens == 4
    assert totals.reasoning_tokens == 7
    assert totals.cache_hits == 1
    assert totals.cost == pytest.approx(0.5)
    errors = await store.usage_totals(UsageQuery(key_id="k1"))
    assert (errors.requests, errors.errors) == (2, 1)


async def test_spend_by_key_counts_from_each_keys_own_start() -> None:
    store = MemoryStorage()
    await store.insert_usage(
        [
            record("1", 5.0, key_id="k1", cost=1.0),
            record("2", 15.0, key_id="k1", cost=2.0),
            record("3", 15.0, key_id="k2", cost=4.0),
            record("4", 25.0, key_id="k3", cost=8.0),
            record("5", 25.0, key_id=None, cost=16.0),
        ]
    )
    spend = await store.spend_by_key({"k1": 10.0, "k2": 0.0, "k4": 0.0})
    assert spend == {"k1": pytest.approx(2.0), "k2": pytest.approx(4.0)}


async def test_simulated_outage_refuses_reads_and_writes_then_recovers() -> None:
    store = MemoryStorage()
    store.available = False
    with pytest.raises(StorageUnavailableError):
        await store.insert_usage([record("x", 1.0)])
    with pytest.raises(StorageUnavailableError):
        await store.list_keys()
    store.available = True
    assert await store.insert_usage([record("x", 1.0)]) == 1
    await store.start()
    await store.aclose()
