"""Run the shipped Alembic migrations, fast when there is nothing to do.

Start-up happens on every gateway process, so the common case — a database already at
the newest revision — is one small read with no lock (``current_revision``): the stored
revision is compared with ``HEAD`` (kept in step with the migration scripts by a test)
and Alembic's script machinery is only loaded when an upgrade is due. ``upgrade`` checks
again under a lock — a transaction-scoped advisory lock on Postgres, ``BEGIN IMMEDIATE``
on SQLite — so replicas or workers starting together migrate once and the others wait,
then find nothing to do. Postgres and SQLite both run DDL in the transaction, so the
stored revision only ever names a schema that is complete.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD = "0001"  # the newest revision in migrations/versions

# An arbitrary constant identifying "the gateway's migrations" among advisory locks.
_PG_LOCK_KEY = 0x11A_6A7E


def current_revision(connection: sa.Connection) -> str | None:
    """The stored revision, read without importing Alembic (about 14 MB and 0.1 s that a
    database already at ``HEAD`` never needs)."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return str(rows[0][0]) if rows else None


def upgrade(connection: sa.Connection) -> bool:
    """Bring the schema to ``HEAD`` inside the caller's transaction. True if anything ran."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    if current_revision(connection) == HEAD:
        return False
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    return True


__all__ = ["HEAD", "MIGRATIONS_DIR", "current_revision", "upgrade"]
