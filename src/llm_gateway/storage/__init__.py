"""Persistence behind small interfaces: keys and the usage ledger (SQLite or Postgres).

``open_storage(url)`` gives a ``Storage`` (see ``base.py``); call ``await start()`` to
connect and migrate. ``UsageWriter`` (``writer.py``) writes usage records behind the
request path and keeps them through a database outage. Only this package imports
SQLAlchemy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_gateway.storage.base import (
    KeyStore,
    Storage,
    StorageUnavailableError,
    UsageQuery,
    UsageStore,
    UsageTotals,
)
from llm_gateway.storage.journal import DEFAULT_JOURNAL

# SQLAlchemy takes about a second to import here: nothing in this package's namespace may
# pull it in at import time (the gateway must answer within a second of starting; see
# gate/service.py). Names that need it resolve on first use.
if TYPE_CHECKING:
    from llm_gateway.storage.engine import EngineOptions
    from llm_gateway.storage.errors import DuplicateKeyError


def __getattr__(name: str) -> Any:
    if name == "EngineOptions":
        from llm_gateway.storage.engine import EngineOptions

        return EngineOptions
    if name == "DuplicateKeyError":
        from llm_gateway.storage.errors import DuplicateKeyError

        return DuplicateKeyError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_storage(
    url: str, *, schema: str | None = None, options: EngineOptions | None = None
) -> Storage:
    """A ``Storage`` for ``sqlite:///path``, ``sqlite://`` (in memory) or
    ``postgresql://user:pass@host:port/db[?schema=name]``; not yet connected.
    ``memory://`` gives the pure in-memory store (no SQL at all, see ``memory.py``).

    ``schema`` (or ``?schema=`` in the URL; the keyword wins) keeps a Postgres database's
    tables in that schema, created if missing. Raises ``ValueError`` for other URLs.
    """
    if url.strip() == "memory://":
        from llm_gateway.storage.memory import MemoryStorage

        return MemoryStorage()
    from llm_gateway.storage.sql import SqlStorage
    from llm_gateway.storage.urls import resolve

    return SqlStorage(resolve(url, schema=schema), options)


def default_journal_path(url: str) -> Path:
    """Where unwritten usage records wait during an outage when ``journal_path`` is unset:
    next to a SQLite file, else ``./gateway-usage.journal``."""
    from llm_gateway.storage.urls import resolve

    try:
        target = resolve(url)
    except ValueError:
        return Path(DEFAULT_JOURNAL)
    if target.sqlite_path is not None:
        return target.sqlite_path.with_name(target.sqlite_path.name + ".usage-journal")
    return Path(DEFAULT_JOURNAL)


__all__ = [
    "DuplicateKeyError",
    "EngineOptions",
    "KeyStore",
    "Storage",
    "StorageUnavailableError",
    "UsageQuery",
    "UsageStore",
    "UsageTotals",
    "default_journal_path",
    "open_storage",
]
