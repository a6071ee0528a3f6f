"""Writing batches of usage records to the database, for the ledger writer (``writer.py``).

A batch comes from memory or from a journal file being replayed. An outage raises (the
writer keeps the batch and retries); a value the database refuses is not an outage: the
batch is written record by record so one bad record cannot hold up the ledger, and the
records refused on their own are set aside in ``<journal>.rejected`` for a person.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from pathlib import Path
from typing import Protocol

from llm_gateway.core.records import UsageRecord
from llm_gateway.storage.errors import describe, is_bad_record
from llm_gateway.storage.journal import Journal

log = logging.getLogger("llm_gateway.storage.writer")


class UsageSink(Protocol):
    """All the writer needs of a ``UsageStore``."""

    async def insert_usage(self, records: list[UsageRecord]) -> int: ...


class BatchInserter:
    def __init__(self, store: UsageSink, journal: Journal) -> None:
        self._store = store
        self._journal = journal
        self.inserted = 0  # new rows (a record the ledger already had is not one)
        self.rejected = 0  # records the database refused on their own

    async def insert(self, batch: list[UsageRecord]) -> None:
        try:
            self.inserted += await self._store.insert_usage(batch)
        except Exception as exc:
            if not is_bad_record(exc):
                raise
            await self._isolate(batch)

    async def replay(self, path: Path, batch_size: int) -> int:
        """Write every record of the journal file ``path``; returns how many were read."""
        chunks = self._journal.read_chunks(path, batch_size)
        replayed = 0
        try:
            while (chunk := await asyncio.to_thread(_next_chunk, chunks)) is not None:
                await self.insert(chunk)
                replayed += len(chunk)
        finally:
            chunks.close()
        return replayed

    async def _isolate(self, batch: list[UsageRecord]) -> None:
        rejected: list[UsageRecord] = []
        for one in batch:
            try:
                self.inserted += await self._store.insert_usage([one])
            except Exception as exc:
                if not is_bad_record(exc):
                    raise  # an outage after all: the whole batch is retried (once each)
                rejected.append(one)
                log.error(
                    "usage ledger: the database refused record %r (%s); set aside in %s",
                    one.request_id[:100],
                    describe(exc),
                    self._journal.rejected_path,
                )
        if rejected:
            await asyncio.to_thread(self._journal.reject, rejected)
            self.rejected += len(rejected)


def _next_chunk(chunks: Generator[list[UsageRecord], None, None]) -> list[UsageRecord] | None:
    return next(chunks, None)


__all__ = ["BatchInserter", "UsageSink"]
