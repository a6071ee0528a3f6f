"""Per-route latency statistics for the latency-aware strategies and for hedging.

Each route keeps:

* an EWMA (exponentially weighted moving average) of the time to first token and of the
  total latency, ``ewma += alpha * (sample - ewma)``; the first sample seeds it;
* a sample count, success and failure counters and the time it was last used;
* the last ``window`` (default 128) times to first token in a ring buffer, from which the
  p95 is computed lazily, on demand, and cached until the next sample arrives. The p95 is
  the nearest-rank percentile: the ``ceil(0.95 * n)``-th smallest of the ``n`` samples.

Only successful calls feed the latency statistics (and ``samples``): a route that fails
fast must not look fast. Failures only count, and mark the route as used; whether a route
is failing is the circuit breaker's business. A successful call without a time to first
token (``ttft=None``) updates the total latency only.

All times are seconds. Recording runs on every request, so it is a handful of attribute
updates with no allocation; sorting happens only when somebody asks for a p95, at most
once per new sample. Single event loop, no locks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

__all__ = ["DEFAULT_ALPHA", "DEFAULT_WINDOW", "RouteStats", "StatsBook"]

DEFAULT_ALPHA = 0.2
DEFAULT_WINDOW = 128


def _validate(alpha: float, window: int) -> None:
    if not 0.0 < alpha <= 1.0:
        raise ValueError("alpha must be in (0, 1]")
    if window < 1:
        raise ValueError("window must be at least 1")


class RouteStats:
    """The statistics of one route."""

    __slots__ = (
        "_p95",
        "_ring",
        "_ring_idx",
        "_ring_len",
        "alpha",
        "failures",
        "last_used",
        "latency_ewma",
        "samples",
        "successes",
        "ttft_ewma",
        "window",
    )

    def __init__(self, *, alpha: float = DEFAULT_ALPHA, window: int = DEFAULT_WINDOW) -> None:
        _validate(alpha, window)
        self.alpha = alpha
        self.window = window
        self.ttft_ewma: float | None = None
        self.latency_ewma: float | None = None
        self.samples = 0  # successful calls recorded
        self.successes = 0
        self.failures = 0
        self.last_used: float | None = None
        self._ring = [0.0] * window
        self._ring_idx = 0
        self._ring_len = 0  # TTFT samples in the ring, up to ``window``
        self._p95: float | None = None  # cache; None: stale or no samples

    def record(self, *, ttft: float | None, latency: float, ok: bool, now: float) -> None:
        self.last_used = now
        if not ok:
            self.failures += 1
            return
        self.successes += 1
        self.samples += 1
        alpha = self.alpha
        ewma = self.latency_ewma
        self.latency_ewma = latency if ewma is None else ewma + alpha * (latency - ewma)
        if ttft is not None:
            ewma = self.ttft_ewma
            self.ttft_ewma = ttft if ewma is None else ewma + alpha * (ttft - ewma)
            idx = self._ring_idx
            self._ring[idx] = ttft
            idx += 1
            self._ring_idx = 0 if idx == self.window else idx
            if self._ring_len < self.window:
                self._ring_len += 1
            self._p95 = None

    def ttft_p95(self) -> float | None:
        """The nearest-rank p95 of the last ``window`` TTFT samples; None without any."""
        p95 = self._p95
        if p95 is None:
            n = self._ring_len
            if n == 0:
                return None
            ordered = sorted(self._ring[:n])
            p95 = self._p95 = ordered[math.ceil(0.95 * n) - 1]
        return p95

    def ttft_samples(self) -> list[float]:
        """The TTFT samples in the ring, oldest first (for inspection and tests)."""
        n = self._ring_len
        if n < self.window:
            return self._ring[:n]
        idx = self._ring_idx
        return self._ring[idx:] + self._ring[:idx]

    def __repr__(self) -> str:
        return (
            f"RouteStats(samples={self.samples}, ttft_ewma={self.ttft_ewma}, "
            f"latency_ewma={self.latency_ewma}, failures={self.failures})"
        )


class StatsBook:
    """Route label -> ``RouteStats``, each created on first record.

    Queries about a route that was never recorded answer None (or 0) without creating it.
    """

    __slots__ = ("_alpha", "_clock", "_routes", "_window")

    def __init__(
        self,
        *,
        alpha: float = DEFAULT_ALPHA,
        window: int = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _validate(alpha, window)
        self._alpha = alpha
        self._window = window
        self._clock = clock
        self._routes: dict[str, RouteStats] = {}

    def record(
        self,
        label: str,
        *,
        ttft: float | None,
        latency: float,
        ok: bool,
        now: float | None = None,
    ) -> None:
        stats = self._routes.get(label)
        if stats is None:
            stats = self._routes[label] = RouteStats(alpha=self._alpha, window=self._window)
        stats.record(ttft=ttft, latency=latency, ok=ok, now=self._clock() if now is None else now)

    def get(self, label: str) -> RouteStats | None:
        return self._routes.get(label)

    def ttft_ewma(self, label: str) -> float | None:
        stats = self._routes.get(label)
        return None if stats is None else stats.ttft_ewma

    def latency_ewma(self, label: str) -> float | None:
        stats = self._routes.get(label)
        return None if stats is None else stats.latency_ewma

    def samples(self, label: str) -> int:
        stats = self._routes.get(label)
        return 0 if stats is None else stats.samples

    def last_used(self, label: str) -> float | None:
        stats = self._routes.get(label)
        return None if stats is None else stats.last_used

    def ttft_p95(self, label: str) -> float | None:
        stats = self._routes.get(label)
        return None if stats is None else stats.ttft_p95()

    def labels(self) -> Iterator[str]:
        return iter(self._routes)

    def __contains__(self, label: object) -> bool:
        return label in self._routes

    def __len__(self) -> int:
        return len(self._routes)
