"""When to start a hedge: a second route raced against a first that is slow to answer.

``hedge_delay`` gives the seconds to wait for the first route's first token before
starting the next route:

* ``after_ms`` a number: exactly that many milliseconds (``min_delay_ms`` does not apply;
  the operator chose the delay).
* ``after_ms: "p95"``: the first route's own p95 time to first token (from
  ``StatsBook.ttft_p95``), but never less than ``min_delay_ms``, so that a very fast route
  is not hedged on every small hiccup. Waiting for the p95 means about one request in
  twenty is hedged, which bounds the extra upstream load to ~5 %.
* ``"p95"`` while the route has no samples yet: ``DEFAULT_HEDGE_DELAY`` (1 s), or
  ``min_delay_ms`` if that is larger. Without data, hedging late is the safe choice: it
  costs a little tail latency, whereas hedging early doubles the load on every route.
"""

from __future__ import annotations

from llm_gateway.config.schema import HedgeConfig

__all__ = ["DEFAULT_HEDGE_DELAY", "hedge_delay"]

# Seconds to wait under "p95" while the route's p95 is still unknown.
DEFAULT_HEDGE_DELAY = 1.0


def hedge_delay(config: HedgeConfig, p95: float | None) -> float:
    """Seconds to wait before starting the hedge. ``p95`` is in seconds."""
    after = config.after_ms
    if not isinstance(after, str):  # a fixed delay; the only string is "p95"
        return max(0.0, after / 1000.0)
    floor = config.min_delay_ms / 1000.0
    if p95 is None or not p95 >= 0.0:  # unknown (or NaN: treated as unknown)
        return max(DEFAULT_HEDGE_DELAY, floor)
    return max(floor, p95)
