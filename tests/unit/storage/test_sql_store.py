"""``SqlStorage`` on SQLite and Postgres: every store method, migrations, exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
from tests.unit.storage.helpers import pg_request_ids, pg_url, record, records

from llm_gateway.core.records import VirtualKey
from llm_gateway.storage import DuplicateKeyError, Storage, UsageQuery, open_storage
from llm_gateway.storage.sql import SqlStorage

pytestmark = pytest.mark.timeout(30)


def key(key_id: str, **fields: object) -> VirtualKey:
    values: dict[str, object] = {
        "id": key_id,
        "name": f"name-{key_id}",
        "key_hash": f"hash-{key_id}",
        "prefix": "sk-gw-AbCd",
        "created_at": 1000.0,
    }
    values.update(fields)
    return VirtualKey(**values)  # type: ignore[arg-type]


# -- keys ---------------------------------------------------------------------------------


async def test_add_get_and_list_keys_round_trip_every_field(storage: Storage) -> None:
    full = key(
        "k1",
        owner="alice",
        team="search",
        allowed_models=["gpt-4o*", "anthropic/*"],
        rpm=60,
        tpm=100_000,
        budget=12.5,
        budget_period="monthly",
        metadata={"env": "prod", "n": 3, "nested": {"a": [1, 2]}},
        created_at=1700000000.25,
        expires_at=1800000000.5,
    )
    await storage.add_key(full)
    await storage.add_key(key("k0", created_at=999.0))
    assert await storage.get_key("k1") == full
    assert await storage.get_key("missing") is None
    assert [k.id for k in await storage.list_keys()] == ["k0", "k1"]  # oldest first


async def test_duplicate_id_or_hash_is_refused(storage: Storage) -> None:
    await storage.add_key(key("k1"))
    with pytest.raises(DuplicateKeyError):
        await storage.add_key(key("k1", key_hash="other"))
    with pytest.raises(DuplicateKeyError):
        await storage.add_key(key("k2", key_hash="hash-k1"))
    assert [k.id for k in await storage.list_keys()] == ["k1"]


async def test_update_key_replaces_mutable_fields_only(storage: Storage) -> None:
    await storage.add_key(key("k1", rpm=10))
    changed = key(
        "k1",
        name="renamed",
        key_hash="attempted-new-hash",
        created_at=5.0,
        rpm=99,
        allowed_models=["m*"],
        metadata={"x": 1},
        budget=3.0,
        budget_period="daily",
    )
    await storage.update_key(changed)
    stored = await storage.get_key("k1")
    assert stored is not None
    assert (stored.name, stored.rpm, stored.allowed_models, stored.metadata) == (
        "renamed",
        99,
        ["m*"],
        {"x": 1},
    )
    assert (stored.budget, stored.budget_period) == (3.0, "daily")
    assert (stored.key_hash, stored.created_at) == ("hash-k1", 1000.0)


async def test_revoke_key_keeps_the_first_time(storage: Storage) -> None:
    await storage.add_key(key("k1"))
    assert await storage.revoke_key("k1", 2000.0) is True
    assert await storage.revoke_key("k1", 3000.0) is True
    assert await storage.revoke_key("nope", 2000.0) is False
    stored = await storage.get_key("k1")
    assert stored is not None and stored.revoked_at == 2000.0
    assert not stored.active(2500.0)


# -- usage --------------------------------------------------------------------------------


async def test_insert_usage_is_exactly_once_by_request_id(storage: Storage) -> None:
    batch = records("r", 20)
    assert await storage.insert_usage(batch) == 20
    # A retried batch overlapping the first, with a duplicate inside the batch itself.
    again = [*batch[10:], record("new-1"), record("new-1"), record("new-2")]
    assert await storage.insert_usage(again) == 2
    assert await storage.insert_usage([]) == 0
    totals = await storage.usage_totals(UsageQuery())
    assert totals.requests == 22


async def test_usage_record_round_trips_every_field(storage: Storage) -> None:
    original = record(
        "x" * 500,  # long client-chosen ids fit
        created_at=1700000000.123456,
        endpoint="messages",
        model="claude-x",
        key_id=None,
        provider=None,
        route_model=None,
        prompt_tokens=3_000_000_000,  # past 32 bits
        completion_tokens=7,
        cached_tokens=5,
        reasoning_tokens=2,
        cost=0.000123456789,
        latency_ms=123.456,
        ttft_ms=45.5,
        status=502,
        error_code="upstream_error",
        cache_hit=True,
        streamed=True,
        tokens_estimated=True,
    )
    await storage.insert_usage([original])
    (stored,) = await storage.query_usage(UsageQuery())
    assert msgspec.structs.asdict(stored) == msgspec.structs.asdict(original)


async def test_values_a_database_would_refuse_are_stored_cleaned(storage: Storage) -> None:
    # One refused value would fail its whole batch; these come from clients or arithmetic.
    odd = [
        record("nul", model="gpt\x00-4o"),
        record("surrogate", model="m\ud800x"),
        record("huge", prompt_tokens=2**70),
        record("nan", cost=float("nan"), ttft_ms=float("nan")),
    ]
    assert await storage.insert_usage(odd) == 4
    stored = {r.request_id: r for r in await storage.query_usage(UsageQuery())}
    assert stored["nul"].model == "gpt\ufffd-4o"
    assert stored["surrogate"].model == "m?x"
    assert stored["huge"].prompt_tokens == 2**63 - 1
    assert (stored["nan"].cost, stored["nan"].ttft_ms) == (0.0, None)


async def test_query_usage_filters_orders_and_pages(storage: Storage) -> None:
    rows = [
        record("a1", key_id="a", model="m1", created_at=100.0),
        record("a2", key_id="a", model="m2", created_at=200.0),
        record("b1", key_id="b", model="m1", created_at=300.0),
        record("b2", key_id="b", model="m1", created_at=400.0),
    ]
    await storage.insert_usage(rows)

    async def ids(**q: object) -> list[str]:
        return [r.request_id for r in await storage.query_usage(UsageQuery(**q))]  # type: ignore[arg-type]

    assert await ids() == ["b2", "b1", "a2", "a1"]  # newest first
    assert await ids(key_id="a") == ["a2", "a1"]
    assert await ids(model="m1") == ["b2", "b1", "a1"]
    assert await ids(since=200.0, until=400.0) == ["b1", "a2"]  # since inclusive, until not
    assert await ids(key_id="b", model="m1", since=350.0) == ["b2"]
    assert await ids(limit=2, offset=1) == ["b1", "a2"]
    assert await ids(key_id="nobody") == []


async def test_usage_totals_sum_matching_records(storage: Storage) -> None:
    await storage.insert_usage(
        [
            record("1", key_id="a", prompt_tokens=10, completion_tokens=1, cost=0.5),
            record("2", key_id="a", cached_tokens=4, reasoning_tokens=3, cache_hit=True),
            record("3", key_id="a", status=429, cost=0.0),
            record("4", key_id="a", status=200, error_code="client_closed", cost=0.25),
            record("5", key_id="b", cost=100.0),
        ]
    )
    totals = await storage.usage_totals(UsageQuery(key_id="a", limit=1))  # limit ignored
    assert totals.requests == 4
    assert totals.prompt_tokens == 10 + 10 + 10 + 10
    assert totals.completion_tokens == 1 + 5 + 5 + 5
    assert (totals.cached_tokens, totals.reasoning_tokens) == (4, 3)
    assert totals.cost == pytest.approx(0.5 + 0.001 + 0.0 + 0.25)
    assert (totals.errors, totals.cache_hits) == (2, 1)
    empty = await storage.usage_totals(UsageQuery(key_id="nobody"))
    assert (empty.requests, empty.cost, empty.errors) == (0, 0.0, 0)


async def test_spend_by_key_counts_from_each_keys_own_start(storage: Storage) -> None:
    await storage.insert_usage(
        [
            record("a-old", key_id="a", cost=1.0, created_at=100.0),
            record("a-new", key_id="a", cost=2.0, created_at=500.0),
            record("b-old", key_id="b", cost=4.0, created_at=100.0),
            record("b-new", key_id="b", cost=8.0, created_at=500.0),
            record("c", key_id="c", cost=16.0, created_at=500.0),
            record("anon", key_id=None, cost=32.0, created_at=500.0),
        ]
    )
    spent = await storage.spend_by_key({"a": 0.0, "b": 500.0, "d": 0.0})
    assert spent == {"a": pytest.approx(3.0), "b": pytest.approx(8.0)}  # d: nothing spent
    assert await storage.spend_by_key({}) == {}


async def test_spend_by_key_handles_many_keys(storage: Storage) -> None:
    await storage.insert_usage([record(f"r{i}", key_id=f"k{i}", cost=1.0) for i in range(1500)])
    spent = await storage.spend_by_key({f"k{i}": 0.0 for i in range(2500)})
    assert len(spent) == 1500 and sum(spent.values()) == pytest.approx(1500.0)


# -- migrations ---------------------------------------------------------------------------


async def test_migrations_are_idempotent_and_keep_data(db_url: str) -> None:
    first = open_storage(db_url)
    await first.start()
    assert isinstance(first, SqlStorage) and first.migrated
    await first.insert_usage([record("kept")])
    await first.start()  # again on the same engine
    assert not first.migrated
    await first.aclose()

    second = open_storage(db_url)
    await second.start()
    assert isinstance(second, SqlStorage) and not second.migrated
    assert [r.request_id for r in await second.query_usage(UsageQuery())] == ["kept"]
    await second.aclose()


async def test_start_on_an_up_to_date_sqlite_database_is_fast(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fast.db'}"
    setup = open_storage(url)
    await setup.start()
    await setup.aclose()
    timings = []
    for _ in range(5):
        store = open_storage(url)
        began = time.perf_counter()
        await store.start()
        timings.append(time.perf_counter() - began)
        await store.aclose()
    # The target is < 150 ms; typically a few ms. Best of five, so a busy CI core does
    # not make it flaky.
    assert min(timings) < 0.15, timings


async def test_postgres_schema_keyword_wins_and_isolates(pg_schema: str) -> None:
    url = pg_url("ignored_schema_name")
    store = open_storage(url, schema=pg_schema)
    await store.start()
    await store.insert_usage([record("in-schema")])
    await store.aclose()
    assert await pg_request_ids(pg_schema) == ["in-schema"]


async def test_sqlite_creates_missing_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.db"
    store = open_storage(f"sqlite:///{path}")
    await store.start()
    await store.insert_usage([record("one")])
    assert isinstance(store, SqlStorage)
    async with store.engine.connect() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
    await store.aclose()
    assert path.exists() and mode == "wal"


async def test_in_memory_sqlite_works() -> None:
    store = open_storage("sqlite://")
    await store.start()
    await store.insert_usage(records("m", 3))
    assert (await store.usage_totals(UsageQuery())).requests == 3
    await store.aclose()


async def test_methods_before_start_say_so() -> None:
    store = open_storage("sqlite://")
    with pytest.raises(RuntimeError, match="start"):
        await store.list_keys()
