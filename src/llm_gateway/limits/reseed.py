"""Re-seeding Redis's budget counters from the ledger after Redis lost them.

Redis may lose spend counters (a restart without persistence, FLUSHALL, eviction). The
ledger still has every cost, so the gateway registers a callback that reads each budgeted
key's spend there and calls ``SpendCounter.seed`` (which raises a counter to the ledger's
figure and never lowers it). This module decides when that callback runs:

- when Redis answers again after an outage (awaited, after the spend settled during the
  outage was sent, so that spend is neither lost nor counted twice);
- when a reserve finds a counter that was never seeded (its hash was lost and re-created
  by later settles): in the background, one run at a time and at most once per
  ``min_interval`` seconds, since every request of the key finds the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("llm_gateway.limits")

Reseed = Callable[[], Awaitable[None]]


class Reseeder:
    def __init__(self, *, min_interval: float = 10.0, timeout: float = 30.0) -> None:
        self._callback: Reseed | None = None
        self._min_interval = min_interval
        self._timeout = timeout  # a slow database must not hold Redis's recovery for long
        self._task: asyncio.Task[None] | None = None
        self._last = -float("inf")
        self.runs = 0  # completed runs (tests and diagnostics)

    def set(self, callback: Reseed) -> None:
        self._callback = callback

    def request(self) -> None:
        """Run the re-seed in the background unless one runs or ran within the interval."""
        if self._callback is None or (self._task is not None and not self._task.done()):
            return
        if time.monotonic() - self._last < self._min_interval:
            return
        self._last = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        """Run the re-seed now; failures are logged, never raised (the ledger may be down
        too: the counters then stay as they are until the next run)."""
        if self._callback is None:
            return
        self._last = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                await self._callback()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("re-seeding budgets from the ledger failed (%s)", type(exc).__name__)
            log.debug("re-seed failure", exc_info=True)
            return
        self.runs += 1

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


__all__ = ["Reseed", "Reseeder"]
