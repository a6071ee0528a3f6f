"""The usage ledger writer: records are written behind the request, in batches, and are
not lost when the database goes away.

``submit`` (called on the request path by the gate's observers) only appends to a deque.
A background task writes batches — when ``batch_size`` records wait, or when the oldest
has waited ``flush_seconds``. When a write fails, the batch and everything after it stay
in memory and the task retries with a bounded backoff; past ``max_buffered`` records a
second task moves the oldest to the journal file (``journal.py``, written in a thread)
so memory stays bounded however long the outage lasts. On recovery the journal is
written first, then memory; the journal is removed only after its records are committed.
At ``start`` a journal left by an earlier run is replayed, along with the journals of
dead processes (``Journal.adopt_orphans``); ``aclose`` makes a last attempt and journals
whatever the database still would not take. Batches are written by ``batch.py``.

Exactly once rests on the ledger's unique request id: any record may be written twice
(a batch whose commit was lost with the connection, a journal replayed after a crash),
and the second write is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from pathlib import Path

from llm_gateway.core.records import UsageRecord
from llm_gateway.storage.batch import BatchInserter, UsageSink
from llm_gateway.storage.errors import describe, is_unavailable
from llm_gateway.storage.journal import DEFAULT_JOURNAL, Journal

log = logging.getLogger("llm_gateway.storage.writer")


class UsageWriter:
    def __init__(
        self,
        store: UsageSink,
        *,
        batch_size: int = 500,
        flush_seconds: float = 0.5,
        max_buffered: int = 50_000,
        journal_path: str | os.PathLike[str] | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 5.0,
        close_timeout: float = 10.0,
    ) -> None:
        if batch_size < 1 or max_buffered < 1 or flush_seconds <= 0:
            raise ValueError("batch_size and max_buffered must be >= 1, flush_seconds > 0")
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._max_buffered = max_buffered
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._close_timeout = close_timeout
        self.journal = Journal(Path(journal_path or DEFAULT_JOURNAL))
        self._batches = BatchInserter(store, self.journal)

        self._buffer: deque[UsageRecord] = deque()
        self._inflight: list[UsageRecord] = []  # taken from the buffer, not yet committed
        self._spilling: list[UsageRecord] = []  # taken from the buffer, being journaled
        self._oldest_at: float | None = None  # monotonic time the oldest waiting record came
        self._journal_dirty = False

        self._wake = asyncio.Event()  # a batch is full, or the first record arrived
        self._spill_wake = asyncio.Event()  # memory is over max_buffered
        self._closing = asyncio.Event()
        self._drain_lock = asyncio.Lock()  # one writer of the database at a time
        self._journal_lock = asyncio.Lock()  # appends vs. renaming the file for replay
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._down = False  # in an outage (for logging once per outage, not per retry)

        # Counters, for metrics and tests.
        self.journaled = 0  # records in the journal file(s) now
        self.spilled = 0  # records ever moved to the journal
        self.written = 0  # records committed (including ones the ledger already had)
        self.failures = 0  # failed write attempts
        self.last_error: str | None = None

    @property
    def inserted(self) -> int:
        """Of the records written, the new rows."""
        return self._batches.inserted

    @property
    def rejected(self) -> int:
        """Records the database refused on their own (see ``batch.py``)."""
        return self._batches.rejected

    @property
    def pending(self) -> int:
        """Records in memory that are not committed yet."""
        return len(self._buffer) + len(self._inflight) + len(self._spilling)

    # -- request path ---------------------------------------------------------------------

    def submit(self, record: UsageRecord) -> None:
        """Queue one record. O(1); never blocks, never raises."""
        try:
            if self._closed:
                self._submit_after_close(record)
                return
            buffer = self._buffer
            buffer.append(record)
            size = len(buffer)
            if size == 1:
                self._oldest_at = time.monotonic()
                self._wake.set()
            elif size >= self._batch_size:
                self._wake.set()
            if size > self._max_buffered:
                self._spill_wake.set()
        except Exception:  # a ledger bug must never fail a request
            log.exception("could not queue a usage record")

    def _submit_after_close(self, record: UsageRecord) -> None:
        # Only a request finishing during shutdown gets here; a small synchronous append
        # is better than losing its record. The slot was released by ``aclose``: append
        # only while owning one, or a process now replaying it could delete the record.
        self.journal.append_in_slot([record])
        self.journaled += 1
        self.spilled += 1

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Count a journal left by an earlier run, and those of dead processes (replayed
        first), and start writing."""
        if self._tasks:
            return
        await asyncio.to_thread(self.journal.claim)
        try:
            await asyncio.to_thread(self.journal.adopt_orphans, self._batch_size)
        except Exception:  # unreadable orphans stay where they are; never fail start
            log.exception("could not take over the usage journals next to %s", self.journal.path)
        leftover = await asyncio.to_thread(self.journal.count)
        if leftover:
            log.info("replaying %d usage records from %s", leftover, self.journal.path)
            self.journaled = leftover
            self._journal_dirty = True
        self._tasks = [
            asyncio.create_task(self._run(), name="usage-writer"),
            asyncio.create_task(self._spill_loop(), name="usage-journal"),
        ]

    async def aclose(self) -> None:
        """Write what is pending; whatever the database will not take goes to the journal."""
        if self._closed:
            return
        self._closing.set()
        self._wake.set()
        self._spill_wake.set()
        deadline = time.monotonic() + self._close_timeout
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self._close_timeout)
            for task in late:  # a write hung past the deadline: its batch is still held
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(BaseException):
                    await task
        # The last attempt, once spilling has stopped, so it sees the whole journal too.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), max(deadline - time.monotonic(), 0.1))
        self._closed = True  # from here on submit appends to the journal itself
        leftovers = [*self._spilling, *self._inflight, *self._buffer]
        self._spilling, self._inflight = [], []
        self._buffer.clear()
        try:
            if leftovers:
                await asyncio.to_thread(self.journal.append, leftovers)
                self.journaled += len(leftovers)
                self.spilled += len(leftovers)
                log.warning(
                    "usage ledger closed with the database unavailable: %d records kept "
                    "in %s and written at the next start",
                    len(leftovers),
                    self.journal.path,
                )
        finally:
            self.journal.release()

    # -- writing --------------------------------------------------------------------------

    async def flush(self, complete: bool = True) -> bool:
        """Write the journal, then what is in memory. True when all of that is committed.

        ``complete=False`` (the background task's regular pass) leaves a partial last batch
        waiting for more records, unless its oldest record is due.
        """
        async with self._drain_lock:
            try:
                await self._drain_journal()
                await self._drain_memory(complete)
            except Exception as exc:
                self._failed(exc)
                return False
            if self._down:
                self._down = False
                log.warning("usage ledger: database is back; pending records written")
            return True

    async def _drain_memory(self, complete: bool) -> None:
        buffer = self._buffer
        while self._inflight or len(buffer) >= self._batch_size or (complete and buffer):
            if not self._inflight:
                take = min(self._batch_size, len(buffer))
                self._inflight = [buffer.popleft() for _ in range(take)]
                # The rest keep the old head's arrival time: a bound that errs early.
                if not buffer:
                    self._oldest_at = None
            await self._batches.insert(self._inflight)
            self.written += len(self._inflight)
            self._inflight = []

    async def _drain_journal(self) -> None:
        journal = self.journal
        while self._journal_dirty:
            async with self._journal_lock:
                path = await asyncio.to_thread(journal.begin_replay)
                if path is None:
                    self._journal_dirty = False
                    self.journaled = 0
                    return
            corrupt_before = journal.corrupt_lines
            replayed = await self._batches.replay(path, self._batch_size)
            await asyncio.to_thread(journal.finish_replay)
            self.written += replayed
            lines = replayed + journal.corrupt_lines - corrupt_before
            self.journaled = max(0, self.journaled - lines)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = describe(exc)
        if self._down:
            return
        self._down = True
        if is_unavailable(exc):
            log.warning(
                "usage ledger: database unavailable (%s); keeping %d records and retrying",
                self.last_error,
                self.pending,
            )
        else:  # not an outage we know: a bug or a schema problem, keep the traceback
            log.error("usage ledger: write failed; keeping records and retrying", exc_info=exc)

    async def _run(self) -> None:
        backoff = self._backoff_initial
        while not self._closing.is_set():
            if not (self._buffer or self._inflight or self._journal_dirty):
                self._wake.clear()
                await self._wake.wait()
                continue
            # Let a batch fill, but no record waits longer than flush_seconds.
            oldest = self._oldest_at if self._oldest_at is not None else time.monotonic()
            delay = oldest + self._flush_seconds - time.monotonic()
            urgent = self._inflight or self._journal_dirty
            if delay > 0 and not urgent and len(self._buffer) < self._batch_size:
                self._wake.clear()
                await _wait(self._wake, delay)
                continue
            if await self.flush(complete=delay <= 0):
                backoff = self._backoff_initial
            else:
                await _wait(self._closing, backoff)
                backoff = min(backoff * 2, self._backoff_max)

    async def _spill_loop(self) -> None:
        while True:
            if len(self._buffer) <= self._max_buffered:
                if self._closing.is_set():
                    return
                self._spill_wake.clear()
                await self._spill_wake.wait()
                continue
            if not await self._spill() and self._closing.is_set():
                return  # aclose journals what is left, or reports that it could not

    async def _spill(self) -> bool:
        excess = len(self._buffer) - self._max_buffered
        self._spilling = [self._buffer.popleft() for _ in range(excess)]
        try:
            async with self._journal_lock:
                await asyncio.to_thread(self.journal.append, self._spilling)
        except Exception:
            # Disk full or unwritable: keep them in memory (over the bound) rather than drop.
            log.exception("could not write the usage journal %s", self.journal.path)
            self._buffer.extendleft(reversed(self._spilling))
            self._spilling = []
            await _wait(self._closing, 1.0)
            return False
        self.journaled += len(self._spilling)
        self.spilled += len(self._spilling)
        self._journal_dirty = True
        self._spilling = []
        return True


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds``, or less if ``event`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


__all__ = ["UsageSink", "UsageWriter"]
