"""Start-up with the embedded SQLite file: keys and spend are read with sqlite3 before the
first request, the SQLAlchemy storage opens behind, and nothing served meanwhile is lost."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from llm_gateway.core.records import UsageRecord
from llm_gateway.gate.keys import mint_key
from llm_gateway.storage import open_storage
from llm_gateway.storage.sqlite_peek import read_keys, read_spend, sqlite_file
from tests.conftest import MOCK_ONLY, read_ledger, serve_gateway, wait_for_ledger


def test_sqlite_file_urls() -> None:
    assert sqlite_file("sqlite:///./gateway.db") == Path("./gateway.db")
    assert sqlite_file("sqlite:////var/lib/gw.db?mode=rwc") == Path("/var/lib/gw.db")
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql://db/x") is None
    assert sqlite_file("memory://") is None


def test_missing_file_and_missing_tables_mean_no_keys(tmp_path: Path) -> None:
    assert read_keys(tmp_path / "absent.db") == []
    assert not (tmp_path / "absent.db").exists()  # read-only: never creates the file
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert read_keys(empty) == []
    assert read_spend(empty, {"k": 0.0}) == {}


async def test_peek_reads_what_the_store_wrote(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/g.db"
    _, first = mint_key("a", allowed_models=["gpt-*"], rpm=5, metadata={"team": "x"})
    _, second = mint_key("b", budget=2.5, budget_period="monthly", expires_at=time.time() + 60)
    store = open_storage(url)
    await store.start()
    try:
        await store.add_key(first)
        await store.add_key(second)
        await store.insert_usage(
            [
                UsageRecord(
                    request_id=f"r{i}",
                    created_at=100.0 + i,
                    endpoint="e",
                    model="m",
                    key_id=second.id,
                    cost=0.5,
                )
                for i in range(3)
            ]
        )
        stored = sorted(await store.list_keys(), key=lambda k: k.id)
    finally:
        await store.aclose()
    path = tmp_path / "g.db"
    assert sorted(read_keys(path), key=lambda k: k.id) == stored
    assert read_spend(path, {second.id: 101.0, first.id: 0.0}) == {second.id: 1.0}


async def test_known_keys_and_spent_budgets_hold_from_the_first_request() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/gateway.db"
        spent_secret, spent_key = mint_key("spent", budget=1.0)
        fresh_secret, fresh_key = mint_key("fresh")
        store = open_storage(url)
        await store.start()
        await store.add_key(spent_key)
        await store.add_key(fresh_key)
        await store.insert_usage(
            [
                UsageRecord(
                    request_id="old",
                    created_at=time.time() - 5,
                    endpoint="e",
                    model="mock",
                    key_id=spent_key.id,
                    cost=1.0,
                )
            ]
        )
        await store.aclose()
        config = {
            **MOCK_ONLY,
            "auth": {"admin_key": "admin-" + uuid.uuid4().hex},
            "storage": {"url": url, "flush_seconds": 0.05},
        }
        body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
        with serve_gateway(config) as gateway:
            async with httpx.AsyncClient(base_url=gateway.url) as client:
                answers = [
                    await client.post(
                        "/v1/chat/completions",
                        json=body,
                        headers={"authorization": f"Bearer {secret}"},
                    )
                    for secret in (spent_secret, fresh_secret, fresh_secret)
                ]
            await asyncio.to_thread(wait_for_ledger, gateway.url)
        assert [a.status_code for a in answers] == [402, 200, 200]
        records = await read_ledger(url)
        ids = {r.request_id for r in records}
        assert {a.headers["x-request-id"] for a in answers} <= ids and "old" in ids


def _journal_text(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.glob("usage.journal*") if p.is_file())


async def test_records_served_while_the_database_cannot_open_land_in_the_journal(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "usage.journal"
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = {
        **MOCK_ONLY,
        # Its parent is a file: the SQLite database can never be created.
        "storage": {"url": f"sqlite:///{blocker}/g.db", "journal_path": str(journal)},
    }
    with serve_gateway(config) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            answers = [
                await client.post(
                    "/v1/chat/completions",
                    json={"model": "mock", "messages": [{"role": "user", "content": f"n{i}"}]},
                )
                for i in range(3)
            ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    kept = _journal_text(tmp_path)
    for answer in answers:
        assert answer.headers["x-request-id"] in kept
