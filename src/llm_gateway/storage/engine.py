"""Async engines tuned per dialect.

SQLite: WAL (readers never wait for the writer), a bounded busy timeout (a lock held by
someone else becomes "database is locked" — an outage to the ledger writer — instead of
a hang), and real transactions: the sqlite3 module's own implicit BEGIN is switched off
and SQLAlchemy's ``begin`` emits BEGIN (or BEGIN IMMEDIATE when asked) itself.

Postgres: bounded connect and command timeouts (asyncpg's default connect timeout is a
minute), pre-ping so connections that died in an outage are replaced on checkout, and
``search_path`` pinned to the chosen schema on every connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, pool
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from llm_gateway.storage.urls import DatabaseTarget


@dataclass(frozen=True)
class EngineOptions:
    connect_timeout: float = 5.0  # seconds to open a Postgres connection
    command_timeout: float = 30.0  # seconds for one Postgres statement
    busy_timeout: float = 5.0  # seconds SQLite waits for another writer's lock
    pool_size: int = 5


def create_engine(target: DatabaseTarget, options: EngineOptions) -> AsyncEngine:
    if target.dialect == "sqlite":
        return _sqlite_engine(target, options)
    return _postgres_engine(target, options)


def _sqlite_engine(target: DatabaseTarget, options: EngineOptions) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if target.sqlite_path is None:
        # One shared connection, or every connection would get its own empty database.
        kwargs["poolclass"] = pool.StaticPool
    else:
        target.sqlite_path.expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        target.url,
        connect_args={"timeout": options.busy_timeout, "check_same_thread": False},
        hide_parameters=True,
        **kwargs,
    )
    busy_ms = int(options.busy_timeout * 1000)
    in_memory = target.sqlite_path is None

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                # In WAL mode NORMAL is durable across application crashes; only a power
                # loss can take back the last commits.
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def _postgres_engine(target: DatabaseTarget, options: EngineOptions) -> AsyncEngine:
    connect_args: dict[str, Any] = {
        "timeout": options.connect_timeout,
        "command_timeout": options.command_timeout,
    }
    if target.schema is not None:
        connect_args["server_settings"] = {"search_path": target.schema}
    return create_async_engine(
        target.url,
        connect_args=connect_args,
        pool_size=options.pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )


async def ensure_schema(target: DatabaseTarget, options: EngineOptions) -> None:
    """Create the Postgres schema if missing, on a connection of its own.

    Done before the main engine connects: SQLAlchemy reads the default schema once, on
    its first connection, and it must already be the chosen one by then.
    """
    assert target.schema is not None
    engine = create_async_engine(
        target.url,
        connect_args={"timeout": options.connect_timeout},
        poolclass=pool.NullPool,
        hide_parameters=True,
    )
    try:
        async with engine.begin() as conn:
            exists = await conn.scalar(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name"),
                {"name": target.schema},
            )
            if not exists:
                # The name is validated in urls.resolve (an identifier), so quoting is safe.
                await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"'))
    except sa.exc.IntegrityError:
        pass  # another replica created it in the same instant
    finally:
        await engine.dispose()


__all__ = ["EngineOptions", "create_engine", "ensure_schema"]
