"""Plain database URLs in, async driver URLs out.

Users write the URLs they know (``sqlite:///./gateway.db``,
``postgresql://user:pass@host:5432/db``); the gateway always talks to them through an
async driver (aiosqlite, asyncpg), so the driver is filled in here. A Postgres schema can
be chosen with ``?schema=name`` (or the ``schema`` keyword of ``open_storage``): every
connection then gets ``search_path=name``, so the tables, the migration history and the
queries all live in that schema. Tests use it to get a fresh schema each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

SQLITE_MEMORY = ":memory:"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class DatabaseTarget:
    """Where the data lives, resolved for SQLAlchemy's async engine."""

    url: URL  # with the async driver, without the ``schema`` query parameter
    dialect: str  # "sqlite" | "postgresql"
    schema: str | None = None  # Postgres only
    sqlite_path: Path | None = None  # None for an in-memory SQLite database

    def describe(self) -> str:
        """The URL with any password hidden: safe for logs and error messages."""
        return self.url.render_as_string(hide_password=True)


def resolve(url: str, *, schema: str | None = None) -> DatabaseTarget:
    """Map a plain URL to its async driver; raise ``ValueError`` for anything else."""
    try:
        parsed = make_url(url)
    except Exception:  # ArgumentError echoes the URL, password included: not in our message
        raise ValueError("storage.url is not a database URL") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "aiosqlite"):
            raise ValueError(f"unsupported SQLite driver {driver!r}: use sqlite:///path")
        if schema or "schema" in parsed.query:
            raise ValueError("a schema can only be chosen for Postgres")
        database = parsed.database or SQLITE_MEMORY
        path = None if database == SQLITE_MEMORY else Path(database)
        if path is not None and parsed.query.get("uri") == "true":
            # sqlite:///file:path?mode=ro&uri=true: SQLite's URI form, options and all.
            name = database.removeprefix("file:")
            in_memory = name.startswith(SQLITE_MEMORY) or parsed.query.get("mode") == "memory"
            path = None if in_memory else Path(name)
        return DatabaseTarget(
            url=parsed.set(drivername="sqlite+aiosqlite", database=database),
            dialect="sqlite",
            sqlite_path=path,
        )
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "asyncpg"):
            raise ValueError(f"unsupported Postgres driver {driver!r}: use postgresql://...")
        query = dict(parsed.query)
        from_url = query.pop("schema", None)
        chosen = schema or (from_url if isinstance(from_url, str) else None)
        if chosen is not None and not _SCHEMA_NAME.match(chosen):
            raise ValueError(f"invalid Postgres schema name {chosen!r}")
        # libpq's sslmode is what people copy from their provider; asyncpg calls it ssl.
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
        return DatabaseTarget(
            url=parsed.set(drivername="postgresql+asyncpg", query=query),
            dialect="postgresql",
            schema=chosen,
        )
    raise ValueError(
        f"unsupported database {backend!r}: use sqlite:///path or postgresql://host/db"
    )


__all__ = ["DatabaseTarget", "resolve"]
