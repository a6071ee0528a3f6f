"""Outages reach callers as ``StorageUnavailableError``, and the store recovers by itself."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.tcp_proxy import TcpProxy, tcp_proxy
from tests.unit.storage.helpers import PG_HOST, PG_PORT, pg_url, record

from llm_gateway.storage import EngineOptions, StorageUnavailableError, UsageQuery, open_storage

pytestmark = pytest.mark.timeout(30)

FAST = EngineOptions(connect_timeout=1.0, command_timeout=2.0, busy_timeout=0.2)


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    with tcp_proxy(PG_HOST, PG_PORT) as proxy:
        yield proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_postgres_cut_raises_unavailable_then_recovers(
    pg_proxy: TcpProxy, pg_schema: str
) -> None:
    store = open_storage(pg_url(pg_schema, port=pg_proxy.port), options=FAST)
    await store.start()
    assert await store.insert_usage([record("before")]) == 1

    pg_proxy.cut()
    began = time.monotonic()
    with pytest.raises(StorageUnavailableError) as caught:
        await store.insert_usage([record("during")])
    assert time.monotonic() - began < 5
    assert "postgres@" not in str(caught.value)  # no URL in the message
    with pytest.raises(StorageUnavailableError):
        await store.list_keys()
    with pytest.raises(StorageUnavailableError):
        await store.usage_totals(UsageQuery())

    pg_proxy.restore()
    assert await store.insert_usage([record("during"), record("after")]) == 2
    assert (await store.usage_totals(UsageQuery())).requests == 3
    await store.aclose()


async def test_postgres_unreachable_at_start_is_unavailable() -> None:
    store = open_storage(
        f"postgresql://postgres:secret-pw@127.0.0.1:{_free_port()}/test", options=FAST
    )
    with pytest.raises(StorageUnavailableError) as caught:
        await store.start()
    assert "secret-pw" not in str(caught.value)
    await store.aclose()


async def test_sqlite_locked_by_another_process_is_unavailable_then_recovers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    store = open_storage(f"sqlite:///{path}", options=FAST)
    await store.start()
    await store.insert_usage([record("before")])

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageUnavailableError, match="locked"):
            await store.insert_usage([record("during")])
        # Readers are not blocked in WAL mode: the admin API keeps answering.
        assert (await store.usage_totals(UsageQuery())).requests == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await store.insert_usage([record("during")]) == 1
    await store.aclose()


async def test_start_works_while_another_process_holds_the_sqlite_write_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "busy.db"
    setup = open_storage(f"sqlite:///{path}")
    await setup.start()
    await setup.aclose()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        store = open_storage(f"sqlite:///{path}", options=FAST)
        await store.start()  # up to date: the check only reads, and WAL lets it
        assert await store.list_keys() == []
        await store.aclose()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


async def test_sqlite_read_only_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    setup = open_storage(f"sqlite:///{path}")
    await setup.start()
    await setup.aclose()
    # Running as root, file permissions cannot make it read-only; SQLite's own URI
    # read-only mode gives the same "attempt to write a readonly database" error.
    store = open_storage(f"sqlite:///file:{path}?mode=ro&uri=true", options=FAST)
    await store.start()  # up to date: the start-up check only reads
    with pytest.raises(StorageUnavailableError, match="readonly"):
        await store.insert_usage([record("nope")])
    await store.aclose()
