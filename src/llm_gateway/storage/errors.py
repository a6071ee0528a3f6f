"""Which database failures mean "unavailable" (retry later) and which are bugs.

The ledger writer keeps records and retries on ``StorageUnavailableError``; the admin API
answers 503 for it. Everything that is an outage — the server down or unreachable, a
dropped connection, a lock held too long, a read-only database, a full disk — maps to it.
Errors in our own SQL (a missing table, a bad value) stay what they are, so they are seen.
Messages are built from the error's class and first line only: SQLAlchemy's full text
carries the statement and, for some drivers, the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import sqlalchemy.exc as sa_exc

from llm_gateway.storage.base import StorageUnavailableError


class DuplicateKeyError(ValueError):
    """``add_key`` with an id or key hash that is already stored."""


# SQLSTATE classes and codes that mean "not now" rather than "never": connection
# exceptions, insufficient resources, operator intervention (shutdown, starting up),
# read-only transaction, lock not available, serialization failure and deadlock.
_RETRYABLE_CLASSES = ("08", "53", "57")
_RETRYABLE_CODES = {"25006", "55P03", "40001", "40P01"}

# SQLite reports these as OperationalError ("database is locked", "attempt to write a
# readonly database", "unable to open database file", "disk I/O error", "database or disk
# is full"); every OperationalError already counts as unavailable.


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    for source in (orig, getattr(orig, "__cause__", None)):
        code = getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, StorageUnavailableError):
        return True
    if isinstance(exc, OSError | asyncio.TimeoutError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        code = _sqlstate(exc)
        if code is not None:
            return code in _RETRYABLE_CODES or code[:2] in _RETRYABLE_CLASSES
    # asyncpg raises its own errors from connect() before SQLAlchemy can wrap them.
    module = type(exc).__module__
    if module.startswith("asyncpg"):
        name = type(exc).__name__
        return "Connection" in name or "CannotConnectNow" in name or "TooManyConnections" in name
    return False


def is_bad_record(exc: BaseException) -> bool:
    """The database refused a value (SQLSTATE class 22 "data exception" or 23 "integrity
    constraint violation", or the driver could not convert a parameter): retrying the same
    record can never succeed, unlike an outage."""
    if is_unavailable(exc):
        return False
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        code = _sqlstate(exc)
        return code is not None and code[:2] in ("22", "23")
    if isinstance(exc, sa_exc.StatementError):  # a parameter failed to convert
        return True
    return isinstance(exc, ValueError | TypeError | OverflowError)


def describe(exc: BaseException) -> str:
    """A short, secret-free description: the error class and the first line of the driver's
    own message (never the statement, the parameters or the URL)."""
    source = getattr(exc, "orig", None) or exc
    text = str(source).strip().splitlines()
    first = text[0][:200] if text else ""
    return f"{type(source).__name__}: {first}" if first else type(source).__name__


@contextlib.contextmanager
def translate(action: str) -> Iterator[None]:
    """Re-raise outages as ``StorageUnavailableError``; everything else unchanged."""
    try:
        yield
    except StorageUnavailableError:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise StorageUnavailableError(f"{action}: {describe(exc)}") from exc
        raise


__all__ = ["DuplicateKeyError", "describe", "is_bad_record", "is_unavailable", "translate"]
