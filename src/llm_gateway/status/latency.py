"""A small window of recent call latencies with nearest-rank percentiles, for status pages.

Separate from ``routing.stats`` on purpose: that book is per route and tuned for the hot
path's strategies (TTFT EWMA, p95 of TTFT); status reports whole-call latency per
provider, computed only when somebody asks.
"""

from __future__ import annotations

import math
from collections import deque

DEFAULT_WINDOW = 128


class LatencyWindow:
    __slots__ = ("_samples",)

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._samples: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)

    def __len__(self) -> int:
        return len(self._samples)

    def percentile(self, fraction: float) -> float | None:
        """The nearest-rank percentile (the ``ceil(fraction * n)``-th smallest); None if empty."""
        n = len(self._samples)
        if n == 0:
            return None
        ordered = sorted(self._samples)
        return ordered[max(1, math.ceil(fraction * n)) - 1]
