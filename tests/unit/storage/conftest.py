"""Fixtures: a started ``Storage`` on SQLite (a temp file) and on Postgres (a fresh schema),
for tests parametrised over both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.unit.storage.helpers import drop_schema, new_schema_name, pg_url

from llm_gateway.storage import Storage, open_storage


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    name = new_schema_name()
    yield name
    await drop_schema(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return pg_url(pg_schema)


@pytest.fixture
async def storage(db_url: str) -> AsyncIterator[Storage]:
    store = open_storage(db_url)
    await store.start()
    yield store
    await store.aclose()
