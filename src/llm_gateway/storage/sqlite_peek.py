"""Reads the key table of the embedded SQLite database with the standard library, fast.

Importing SQLAlchemy takes about a second here, and the gateway must answer within a
second of starting. With the default SQLite file, start-up therefore reads the keys (and
the budget spend) straight from the file with ``sqlite3`` in a few milliseconds, serves
with that snapshot at once, and opens the real storage (SQLAlchemy, migrations, the ledger
writer) in the background. The snapshot is authoritative: it is the same file.

Only columns of the first migration are read, so a newer schema still reads.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec

from llm_gateway.core.records import VirtualKey

_KEY_COLUMNS = (
    "id, name, key_hash, prefix, owner, team, allowed_models, rpm, tpm, budget, "
    "budget_period, metadata, created_at, expires_at, revoked_at"
)


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URL; None for other URLs and in-memory."""
    raw = url.strip()
    if not raw.startswith("sqlite:///"):
        return None
    path = raw.removeprefix("sqlite:///").split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _connect(path: Path) -> sqlite3.Connection:
    # Read-only, and never create the file: a missing file means "no keys yet".
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _json(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, str | bytes):
        return msgspec.json.decode(value)
    return value


def read_keys(path: Path) -> list[VirtualKey]:
    """Every key in the file; empty when the file or its key table does not exist yet.

    Raises ``sqlite3.Error`` when the file exists but cannot be read (locked, corrupt):
    the caller then waits for the full storage instead.
    """
    if not path.exists():
        return []
    with closing(_connect(path)) as conn:
        if not _has_table(conn, "gateway_api_keys"):
            return []
        rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM gateway_api_keys").fetchall()
    return [
        VirtualKey(
            id=row[0],
            name=row[1],
            key_hash=row[2],
            prefix=row[3],
            owner=row[4],
            team=row[5],
            allowed_models=list(_json(row[6], [])),
            rpm=row[7],
            tpm=row[8],
            budget=row[9],
            budget_period=row[10],
            metadata=dict(_json(row[11], {})),
            created_at=row[12],
            expires_at=row[13],
            revoked_at=row[14],
        )
        for row in rows
    ]


def read_spend(path: Path, since: dict[str, float]) -> dict[str, float]:
    """Cost per key since each key's own start time, from the usage table."""
    if not since or not path.exists():
        return {}
    out: dict[str, float] = {}
    with closing(_connect(path)) as conn:
        if not _has_table(conn, "gateway_usage"):
            return {}
        for key_id, start in since.items():
            row = conn.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM gateway_usage "
                "WHERE key_id = ? AND created_at >= ?",
                (key_id, start),
            ).fetchone()
            if row and row[0]:
                out[key_id] = float(row[0])
    return out


__all__ = ["read_keys", "read_spend", "sqlite_file"]
