"""The writer against real databases that go away: Postgres behind a cut proxy, SQLite
locked by another process. Afterwards the ledger holds every request id exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from tests.fakes.tcp_proxy import tcp_proxy
from tests.unit.storage.helpers import (
    PG_HOST,
    PG_PORT,
    pg_request_ids,
    pg_url,
    record,
    wait_until,
)

from llm_gateway.storage import EngineOptions, open_storage
from llm_gateway.storage.writer import UsageWriter

pytestmark = pytest.mark.timeout(40)

OUTAGE_SECONDS = 3.0
FAST = EngineOptions(connect_timeout=1.0, command_timeout=2.0, busy_timeout=0.2)


async def submit_for(writer: UsageWriter, prefix: str, seconds: float, sent: list[str]) -> None:
    """Submit a record every 10 ms for ``seconds``, like a steady stream of requests."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        request_id = f"{prefix}-{len(sent)}"
        writer.submit(record(request_id))
        sent.append(request_id)
        await asyncio.sleep(0.01)


async def test_postgres_outage_loses_and_duplicates_nothing(tmp_path: Path, pg_schema: str) -> None:
    with tcp_proxy(PG_HOST, PG_PORT) as proxy:
        store = open_storage(pg_url(pg_schema, port=proxy.port), options=FAST)
        await store.start()
        # A small memory bound, so the outage also exercises the journal.
        writer = UsageWriter(
            store,
            batch_size=20,
            flush_seconds=0.05,
            max_buffered=50,
            journal_path=tmp_path / "usage.journal",
            backoff_initial=0.1,
            backoff_max=0.5,
        )
        await writer.start()
        sent: list[str] = []
        await submit_for(writer, "before", 0.5, sent)
        proxy.cut()
        await submit_for(writer, "during", OUTAGE_SECONDS, sent)
        assert writer.failures > 0 and writer.spilled > 0
        assert writer.pending <= 50 + 20
        proxy.restore()
        await submit_for(writer, "after", 0.5, sent)
        await wait_until(lambda: not (writer.pending or writer.journaled), within=10)
        await writer.aclose()
        await store.aclose()

    stored = await pg_request_ids(pg_schema)
    assert len(stored) == len(set(stored))  # once each
    assert sorted(stored) == sorted(sent)  # every one
    assert not (tmp_path / "usage.journal").exists()


async def test_sqlite_locked_for_seconds_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = open_storage(f"sqlite:///{path}", options=FAST)
    await store.start()
    writer = UsageWriter(
        store,
        batch_size=20,
        flush_seconds=0.05,
        max_buffered=50,
        journal_path=tmp_path / "usage.journal",
        backoff_initial=0.1,
        backoff_max=0.5,
    )
    await writer.start()
    sent: list[str] = []
    await submit_for(writer, "before", 0.3, sent)

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        await submit_for(writer, "during", 2.0, sent)
        assert writer.failures > 0 and "locked" in (writer.last_error or "")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await submit_for(writer, "after", 0.3, sent)
    await writer.aclose()
    await store.aclose()

    conn = sqlite3.connect(path)
    stored = [row[0] for row in conn.execute("SELECT request_id FROM gateway_usage")]
    conn.close()
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(sent)
