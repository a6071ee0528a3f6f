"""Optional dependencies (database, Redis) as components of ``GET /health``.

Each registered check is an ``async () -> None`` that raises when the dependency is not
usable. ``/health`` runs them all concurrently, each bounded by ``timeout`` (0.5 s), and
reports ``ok`` / ``error`` / ``timeout`` per component. They never change the overall
status: the gateway keeps serving (usage is journaled, limits fall back) while they are
down, so a slow database must not make a load balancer pull a working replica.

Results are shared for ``cache_seconds`` so a burst of probes costs one round trip each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

DependencyCheck = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class ComponentStatus:
    status: Literal["ok", "error", "timeout"]
    latency_ms: float
    error: str | None = None  # the exception's type only: messages can carry DSNs


class DependencyChecks:
    def __init__(self, *, timeout: float = 0.5, cache_seconds: float = 1.0) -> None:
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._checks: dict[str, DependencyCheck] = {}
        self._cached: dict[str, ComponentStatus] | None = None
        self._cached_at = 0.0
        self._running: asyncio.Future[dict[str, ComponentStatus]] | None = None

    def register_dependency(self, name: str, check: DependencyCheck) -> None:
        """Adds (or replaces) a component; ``check`` raises when it is not usable."""
        self._checks[name] = check
        self._cached = None

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def results(self) -> dict[str, ComponentStatus]:
        if not self._checks:
            return {}
        now = time.monotonic()
        if self._cached is not None and now - self._cached_at < self._cache_seconds:
            return self._cached
        if self._running is None:
            # Concurrent callers share one round of checks.
            self._running = asyncio.ensure_future(self._run_all())
        running = self._running
        try:
            return await asyncio.shield(running)
        finally:
            if running.done() and self._running is running:
                self._running = None

    async def _run_all(self) -> dict[str, ComponentStatus]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        self._cached = dict(zip(names, results, strict=True))
        self._cached_at = time.monotonic()
        return self._cached

    async def _run(self, check: DependencyCheck) -> ComponentStatus:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                await check()
        except TimeoutError:
            return ComponentStatus("timeout", _ms(started), f"no answer within {self._timeout}s")
        except Exception as exc:
            return ComponentStatus("error", _ms(started), type(exc).__name__)
        return ComponentStatus("ok", _ms(started))


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000.0, 2)
