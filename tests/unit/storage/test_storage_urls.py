"""Plain URLs map to async drivers; schemas, journals and bad URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.storage import default_journal_path, open_storage
from llm_gateway.storage.urls import resolve


def test_sqlite_urls_get_aiosqlite() -> None:
    target = resolve("sqlite:///./data/gateway.db")
    assert target.url.drivername == "sqlite+aiosqlite"
    assert target.sqlite_path == Path("./data/gateway.db")
    assert resolve("sqlite:////abs/g.db").sqlite_path == Path("/abs/g.db")
    assert resolve("sqlite://").sqlite_path is None  # in memory
    assert resolve("sqlite+aiosqlite:///x.db").dialect == "sqlite"
    uri = resolve("sqlite:///file:/data/g.db?mode=ro&uri=true")
    assert uri.sqlite_path == Path("/data/g.db") and uri.url.query["mode"] == "ro"


def test_postgres_urls_get_asyncpg_and_a_schema() -> None:
    target = resolve("postgresql://u:pw@db:5433/gw?schema=tenant_1&sslmode=require")
    assert target.url.drivername == "postgresql+asyncpg"
    assert target.schema == "tenant_1"
    assert dict(target.url.query) == {"ssl": "require"}  # schema is ours, not asyncpg's
    assert "pw" not in target.describe()
    assert resolve("postgres://db/gw").dialect == "postgresql"
    assert resolve("postgresql://db/gw?schema=a", schema="b").schema == "b"  # keyword wins


@pytest.mark.parametrize(
    "url",
    [
        "mysql://db/gw",
        "sqlite+pysqlite:///x.db",
        "postgresql+psycopg2://db/gw",
        "postgresql://db/gw?schema=bad;drop",
        "sqlite:///x.db?schema=s",
    ],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        open_storage(url)


def test_an_unparsable_url_does_not_echo_its_password() -> None:
    with pytest.raises(ValueError) as caught:
        resolve("not a url :secret-pw@")
    assert "secret-pw" not in str(caught.value)


def test_default_journal_sits_next_to_the_sqlite_file() -> None:
    assert default_journal_path("sqlite:///data/g.db") == Path("data/g.db.usage-journal")
    assert default_journal_path("postgresql://db/gw") == Path("./gateway-usage.journal")
    assert default_journal_path("sqlite://") == Path("./gateway-usage.journal")


def test_memory_url_gives_the_in_memory_store() -> None:
    from llm_gateway.storage.memory import MemoryStorage

    assert isinstance(open_storage("memory://"), MemoryStorage)
