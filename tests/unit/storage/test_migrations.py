"""The shipped migrations: ``HEAD`` is the scripts' head, and they build exactly the tables
the queries use (Alembic's autogenerate comparison finds no difference)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from llm_gateway.storage import Storage, open_storage
from llm_gateway.storage.migrate import HEAD, MIGRATIONS_DIR
from llm_gateway.storage.sql import SqlStorage
from llm_gateway.storage.tables import metadata

pytestmark = pytest.mark.timeout(30)


def test_head_constant_matches_the_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


async def test_migrated_schema_matches_the_table_definitions(storage: Storage) -> None:
    assert isinstance(storage, SqlStorage)

    def diff(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with storage.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_concurrent_starts_migrate_once(db_url: str, tmp_path: Path) -> None:
    # Replicas (or gunicorn workers) starting together: one migrates, the others wait.
    stores = [open_storage(db_url) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    migrated = [s.migrated for s in stores if isinstance(s, SqlStorage)]
    assert sorted(migrated) == [False, False, False, True]
    for s in stores:
        await s.aclose()
