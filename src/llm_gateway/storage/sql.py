"""``Storage`` on SQLAlchemy 2 Core, async: SQLite (aiosqlite) and Postgres (asyncpg).

One class for both dialects; they differ only in how the engine is set up (``engine.py``)
and in which ``INSERT ... ON CONFLICT DO NOTHING`` construct is used. Every method turns
an outage into ``StorageUnavailableError`` (see ``errors.py``); nothing here is on the
request path — keys are read into a snapshot and usage is written by ``UsageWriter``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_gateway.core.records import UsageRecord, VirtualKey
from llm_gateway.storage import migrate
from llm_gateway.storage.base import StorageUnavailableError, UsageQuery, UsageTotals
from llm_gateway.storage.engine import EngineOptions, create_engine, ensure_schema
from llm_gateway.storage.errors import DuplicateKeyError, translate
from llm_gateway.storage.tables import KEY_FIELDS, USAGE_FIELDS, api_keys, usage
from llm_gateway.storage.urls import DatabaseTarget

log = logging.getLogger("llm_gateway.storage")

# Mutable key fields: everything but the identity (id, key_hash) and created_at.
_KEY_MUTABLE = tuple(f for f in KEY_FIELDS if f not in ("id", "key_hash", "created_at"))
# Keeps IN lists well under every dialect's bound-parameter limit.
_IN_CHUNK = 1000


class SqlStorage:
    """Keys and the usage ledger in one SQL database. ``start()`` connects and migrates."""

    def __init__(self, target: DatabaseTarget, options: EngineOptions | None = None) -> None:
        self.target = target
        self._options = options or EngineOptions()
        self._engine: AsyncEngine | None = None
        self.migrated = False  # whether the last start() ran a migration
        self.start_seconds = 0.0  # how long the last start() took (connect + migrations)

    def __repr__(self) -> str:
        return f"SqlStorage({self.target.describe()})"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        began = time.perf_counter()
        if self._engine is None:
            if self.target.schema is not None:
                with translate("creating the schema"):
                    await ensure_schema(self.target, self._options)
            self._engine = create_engine(self.target, self._options)
        if self.target.dialect == "sqlite":
            # Workers opening a fresh SQLite file together can get "database is locked"
            # without SQLite's busy handler ever waiting (its deadlock avoidance, and
            # while the first one switches the file to WAL): try again, briefly.
            deadline = time.monotonic() + max(self._options.busy_timeout, 1.0)
            delay = 0.02
            while True:
                try:
                    await self._migrate(self._engine)
                    break
                except StorageUnavailableError as exc:
                    if time.monotonic() + delay > deadline:
                        raise
                    log.debug("storage start: %s; trying again", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
        else:
            await self._migrate(self._engine)
        self.start_seconds = time.perf_counter() - began
        log.info(
            "storage ready (%s, %s in %.0f ms)",
            self.target.dialect,
            "migrated" if self.migrated else "schema up to date",
            self.start_seconds * 1000,
        )

    async def _migrate(self, engine: AsyncEngine) -> None:
        with translate("migrating the database"):
            # The usual case, nothing to do, needs only a read: no lock, and it works
            # while another process holds SQLite's write lock.
            async with engine.connect() as conn:
                current = await conn.run_sync(migrate.current_revision)
            self.migrated = False
            if current == migrate.HEAD:
                return
            if self.target.dialect == "sqlite":
                # The write lock up front, so two workers cannot both decide to migrate.
                engine = engine.execution_options(sqlite_begin="IMMEDIATE")
            async with engine.begin() as conn:
                self.migrated = await conn.run_sync(migrate.upgrade)

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("storage is not started (call start() first)")
        return self._engine

    # -- keys -----------------------------------------------------------------------------

    async def add_key(self, key: VirtualKey) -> None:
        row = msgspec.structs.asdict(key)
        with translate("storing a key"):
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(api_keys.insert(), row)
            except sa.exc.IntegrityError:
                raise DuplicateKeyError("a key with this id or secret already exists") from None

    async def list_keys(self) -> list[VirtualKey]:
        stmt = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        with translate("listing keys"):
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        return [_key(row) for row in rows]

    async def get_key(self, key_id: str) -> VirtualKey | None:
        stmt = sa.select(api_keys).where(api_keys.c.id == key_id)
        with translate("reading a key"):
            async with self.engine.connect() as conn:
                row = (await conn.execute(stmt)).mappings().first()
        return None if row is None else _key(row)

    async def update_key(self, key: VirtualKey) -> None:
        values = {f: getattr(key, f) for f in _KEY_MUTABLE}
        stmt = api_keys.update().where(api_keys.c.id == key.id).values(values)
        with translate("updating a key"):
            async with self.engine.begin() as conn:
                await conn.execute(stmt)

    async def revoke_key(self, key_id: str, at: float) -> bool:
        # A second revocation keeps the first time: that is when the key stopped working.
        stmt = (
            api_keys.update()
            .where(api_keys.c.id == key_id)
            .values(revoked_at=sa.func.coalesce(api_keys.c.revoked_at, at))
        )
        with translate("revoking a key"):
            async with self.engine.begin() as conn:
                result = await conn.execute(stmt)
        return bool(result.rowcount)

    # -- usage ----------------------------------------------------------------------------

    async def insert_usage(self, records: list[UsageRecord]) -> int:
        """Exactly once by request id; returns how many rows were new.

        This runs for every request the gateway serves, so it skips SQLAlchemy's
        statement building: one precompiled statement per dialect, values as tuples
        (measured: 40 us of CPU per record through ``insert().returning()``, about 3 us
        this way). SQLite takes an ``executemany`` and counts new rows from its change
        counter; Postgres takes one statement over ``unnest`` arrays and reports its
        row count.
        """
        if not records:
            return 0
        unique: dict[str, tuple[Any, ...]] = {}
        for record in records:
            row = _usage_values(record)
            unique.setdefault(row[_REQUEST_ID_AT], row)
        rows = list(unique.values())
        with translate("writing usage records"):
            async with self.engine.begin() as conn:
                if self.target.dialect == "postgresql":
                    columns = [list(column) for column in zip(*rows, strict=True)]
                    result = await conn.exec_driver_sql(_PG_INSERT, tuple(columns))
                    return int(result.rowcount)
                before = await conn.exec_driver_sql("SELECT total_changes()")
                start = int(before.scalar_one())
                await conn.exec_driver_sql(_SQLITE_INSERT, rows)
                after = await conn.exec_driver_sql("SELECT total_changes()")
                return int(after.scalar_one()) - start

    async def query_usage(self, query: UsageQuery) -> list[UsageRecord]:
        stmt = (
            sa.select(*(usage.c[f] for f in USAGE_FIELDS))
            .where(*_filters(query))
            .order_by(usage.c.created_at.desc(), usage.c.id.desc())
            .limit(max(query.limit, 0))
            .offset(max(query.offset, 0))
        )
        with translate("reading usage"):
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        return [UsageRecord(**row) for row in rows]

    async def usage_totals(self, query: UsageQuery) -> UsageTotals:
        c = usage.c
        failed = sa.or_(c.status >= 400, c.error_code.is_not(None))
        stmt = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(c.prompt_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.cached_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.reasoning_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.cost), 0.0),
            sa.func.coalesce(sa.func.sum(sa.case((failed, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((c.cache_hit, 1), else_=0)), 0),
        ).where(*_filters(query))
        with translate("reading usage totals"):
            async with self.engine.connect() as conn:
                row = (await conn.execute(stmt)).one()
        return UsageTotals(
            requests=int(row[0]),
            prompt_tokens=int(row[1]),
            completion_tokens=int(row[2]),
            cached_tokens=int(row[3]),
            reasoning_tokens=int(row[4]),
            cost=float(row[5]),
            errors=int(row[6]),
            cache_hits=int(row[7]),
        )

    async def spend_by_key(self, since: dict[str, float]) -> dict[str, float]:
        # Budget periods start at a handful of instants (today, this month, ever), so keys
        # are grouped by start time: one query per group, not one per key.
        groups: dict[float, list[str]] = {}
        for key_id, start in since.items():
            groups.setdefault(start, []).append(key_id)
        spent: dict[str, float] = {}
        with translate("reading spend"):
            async with self.engine.connect() as conn:
                for start, key_ids in groups.items():
                    for chunk in _chunks(key_ids, _IN_CHUNK):
                        stmt = (
                            sa.select(usage.c.key_id, sa.func.sum(usage.c.cost))
                            .where(usage.c.key_id.in_(chunk), usage.c.created_at >= start)
                            .group_by(usage.c.key_id)
                        )
                        for key_id, total in (await conn.execute(stmt)).all():
                            spent[key_id] = float(total or 0.0)
        return spent


def _filters(query: UsageQuery) -> list[sa.ColumnElement[bool]]:
    c = usage.c
    where: list[sa.ColumnElement[bool]] = []
    if query.key_id is not None:
        where.append(c.key_id == query.key_id)
    if query.model is not None:
        where.append(c.model == query.model)
    if query.since is not None:
        where.append(c.created_at >= query.since)
    if query.until is not None:
        where.append(c.created_at < query.until)
    return where


_INT64_MAX = 2**63 - 1


_REQUEST_ID_AT = USAGE_FIELDS.index("request_id")
_TTFT_AT = USAGE_FIELDS.index("ttft_ms")
_COLUMN_LIST = ", ".join(USAGE_FIELDS)
_SQLITE_INSERT = (
    f"INSERT INTO gateway_usage ({_COLUMN_LIST}) "
    f"VALUES ({', '.join('?' for _ in USAGE_FIELDS)}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
_PG_TYPES = {
    "BIGINT": "int8",
    "INTEGER": "int4",
    "DOUBLE": "float8",
    "VARCHAR": "text",
    "BOOLEAN": "bool",
}


def _pg_array_type(name: str) -> str:
    column_type = str(usage.c[name].type).split("(")[0].upper()
    return _PG_TYPES.get(column_type, "text") + "[]"


_PG_INSERT = (
    f"INSERT INTO gateway_usage ({_COLUMN_LIST}) SELECT * FROM unnest("
    + ", ".join(f"$%d::{_pg_array_type(n)}" % (i + 1) for i, n in enumerate(USAGE_FIELDS))
    + ") ON CONFLICT (request_id) DO NOTHING"
)


# The record's fields are the table's columns, in the same order: one C-level astuple.
assert UsageRecord.__struct_fields__ == USAGE_FIELDS, "usage table and UsageRecord differ"
_TEXT_AT = tuple(i for i, n in enumerate(USAGE_FIELDS) if str(usage.c[n].type) == "VARCHAR")
_INT_AT = tuple(
    i for i, n in enumerate(USAGE_FIELDS) if str(usage.c[n].type) in ("BIGINT", "INTEGER")
)
_FLOAT_AT = tuple(i for i, n in enumerate(USAGE_FIELDS) if str(usage.c[n].type) == "DOUBLE")


def _usage_values(record: UsageRecord) -> tuple[Any, ...]:
    """The record as column values (in ``USAGE_FIELDS`` order) any database accepts.

    Values come partly from clients (model names, request ids) and partly from
    arithmetic (cost); one value a database refuses would fail its whole batch. So text
    loses NUL and lone surrogates (Postgres and the UTF-8 codec refuse them), integers
    are clamped to 64 bits, and NaN (which SQLite stores as NULL) becomes 0 or NULL.
    The common case (plain ASCII, sane numbers) is checked in one pass per kind.
    """
    values = msgspec.structs.astuple(record)
    texts = [values[i] for i in _TEXT_AT if values[i] is not None]
    joined = "".join(texts)
    ints = [values[i] for i in _INT_AT]
    floats = [values[i] for i in _FLOAT_AT]
    if (
        joined.isascii()
        and "\x00" not in joined
        and min(ints) >= -_INT64_MAX
        and max(ints) <= _INT64_MAX
        and all(f == f for f in floats if f is not None)
    ):
        return values
    fixed = list(values)
    for i in _TEXT_AT:
        value = fixed[i]
        if value is not None and (not value.isascii() or "\x00" in value):
            fixed[i] = _clean_text(value)
    for i in _INT_AT:
        fixed[i] = max(-_INT64_MAX, min(fixed[i], _INT64_MAX))
    for i in _FLOAT_AT:
        value = fixed[i]
        if value is not None and value != value:  # NaN
            fixed[i] = None if i == _TTFT_AT else 0.0
    return tuple(fixed)


def _clean_text(value: str) -> str:
    value = value.replace("\x00", "\ufffd")
    return value.encode("utf-8", "replace").decode("utf-8")


def _key(row: Any) -> VirtualKey:
    values = dict(row)
    values["allowed_models"] = list(values.get("allowed_models") or [])
    values["metadata"] = dict(values.get("metadata") or {})
    return VirtualKey(**values)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = ["SqlStorage"]
