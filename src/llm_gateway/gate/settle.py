"""Settling reservations off the request path: a bounded queue drained by a few workers.

A task per settlement cost more than the whole gate (measured: ~25 us of task creation
and scheduling per request), so settlements are queued coroutines that a worker awaits
in turn; with the in-process limiter such a coroutine never suspends and awaiting it
costs about a microsecond, so one worker keeps up with any load.

With Redis each settlement is a network round trip, and one worker would cap the whole
gateway at one round trip at a time (about 1.5-3k requests per second before the queue
grows without end). So another worker starts whenever the backlog exceeds
``BACKLOG_PER_WORKER`` per running worker, up to ``max_workers``; workers stop when the
queue is empty. Past ``max_queued`` settlements are dropped with one warning: their
reservations then expire with their window, which is the designed fallback for a
settlement that never arrives (a crash), so dropping is safe, merely less exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("llm_gateway.gate")

Work = Coroutine[Any, Any, None]

MAX_WORKERS = 8
MAX_QUEUED = 100_000
# A worker drains this many queued settlements before a second one is worth its task:
# bursts of finished requests in one loop iteration stay on one worker in-process.
BACKLOG_PER_WORKER = 64


class Settlements:
    __slots__ = (
        "_active",
        "_check_above",
        "_max_queued",
        "_max_workers",
        "_queue",
        "_warned",
        "_workers",
        "dropped",
    )

    def __init__(self, *, max_workers: int = MAX_WORKERS, max_queued: int = MAX_QUEUED) -> None:
        self._queue: deque[Work] = deque()
        self._workers: set[asyncio.Future[None]] = set()  # for drain() only
        self._max_workers = max_workers
        self._max_queued = max_queued
        # Counted inside the workers themselves: a finished worker's done-callback runs a
        # loop iteration later, and a put() in between must not count it as running.
        self._active = 0
        # The queue length above which put() looks closer (another worker, or the bound);
        # below it put() is an append and two comparisons.
        self._check_above = 0
        self._warned = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def workers(self) -> int:
        return self._active

    def put(self, work: Work) -> None:
        queue = self._queue
        queue.append(work)
        if self._active and len(queue) <= self._check_above:
            return
        if len(queue) > self._max_queued:
            self._drop(queue.pop())  # ``work`` itself
        elif self._active < self._max_workers:
            self._start_worker()

    def _start_worker(self) -> None:
        self._active += 1
        self._recheck_at()
        worker = asyncio.ensure_future(self._drain())
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    def _recheck_at(self) -> None:
        active = self._active
        if active >= self._max_workers:
            self._check_above = self._max_queued
        else:
            self._check_above = min(BACKLOG_PER_WORKER * active, self._max_queued)

    def _drop(self, work: Work) -> None:
        work.close()  # never awaited: close it so Python does not warn about it
        self.dropped += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "settlement queue full (%d pending): dropping settlements; their "
                "reservations expire with their window instead",
                len(self._queue),
            )

    async def _drain(self) -> None:
        queue = self._queue
        try:
            while queue:
                work = queue.popleft()
                try:
                    await work
                except Exception as exc:  # the reservation then expires with its window
                    log.warning("settling a reservation failed: %s", exc)
        finally:
            self._active -= 1  # no await between the empty check and this
            self._recheck_at()
        self._warned = False  # caught up: warn again should it overflow again

    async def drain(self) -> None:
        """Wait until every queued settlement has run (shutdown, tests)."""
        while self._workers:
            await asyncio.shield(asyncio.gather(*self._workers, return_exceptions=True))


__all__ = ["BACKLOG_PER_WORKER", "MAX_QUEUED", "MAX_WORKERS", "Settlements"]
