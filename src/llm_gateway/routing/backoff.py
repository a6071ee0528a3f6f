"""How long to wait before retrying a route, and whether to retry it at all.

``attempt`` is the 0-based index of the try that just failed: 0 after the first try,
1 after the first retry, and so on. ``RetryConfig.attempts`` counts tries, the first
included, so a route is tried at most ``attempts`` times.

Delay (``retry_delay``)
    * Without Retry-After: exponential backoff with *full jitter*, a uniform draw from
      ``[0, min(max_delay, base_delay * 2**attempt)]``. Full jitter spreads the retries of
      many clients over the whole interval, which empties a queue fastest (see AWS's
      "Exponential Backoff And Jitter").
    * With Retry-After (the upstream said when to come back): that many seconds, plus a
      jitter of at most 10 % of it so that every client told "1 s" does not return in the
      same millisecond. The jitter never lifts a Retry-After that is within ``max_delay``
      above ``max_delay``; one that is already beyond it is returned as is (plus jitter),
      and ``should_retry`` then refuses it.

Decision (``should_retry``) -- retry the same route only when all hold:
    1. the error is retryable (rate limit, 5xx, overload, connection failure, timeout);
       the caller's own 4xx never is, and neither is a context-window overflow (that is
       the fallback's business: a larger route may serve it);
    2. tries remain: ``attempt + 1 < attempts``;
    3. the delay is at most ``max_delay``: a Retry-After of 60 s with a 5 s cap means the
       route is busy for a while; falling back to the next route beats sleeping;
    4. the delay is shorter than the time left before the request's deadline: sleeping
       into (or past) the deadline can only end in a timeout.
When it says no, the router moves on to the next route (if the error allows fallback).

Both functions are pure; the random source is injected so tests are deterministic.
"""

from __future__ import annotations

import random

from llm_gateway.config.schema import RetryConfig
from llm_gateway.core.errors import GatewayError

__all__ = ["RETRY_AFTER_JITTER", "retry_delay", "should_retry"]

# The largest share of a Retry-After added as jitter.
RETRY_AFTER_JITTER = 0.1
# 2**60 times any sane base delay is beyond every cap; larger exponents would only risk
# an OverflowError for absurd attempt numbers.
_MAX_EXPONENT = 60


def retry_delay(
    attempt: int, config: RetryConfig, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to sleep before the retry that follows the failed try ``attempt``."""
    if retry_after is not None:
        wait = retry_after if retry_after > 0.0 else 0.0
        jitter = wait * RETRY_AFTER_JITTER
        if wait <= config.max_delay:
            room = config.max_delay - wait
            if jitter > room:
                jitter = room
        return wait + rng.random() * jitter
    exponent = attempt if attempt < _MAX_EXPONENT else _MAX_EXPONENT
    if exponent < 0:
        exponent = 0
    cap = config.base_delay * (1 << exponent)
    if cap > config.max_delay:
        cap = config.max_delay
    return rng.random() * cap


def should_retry(
    error: GatewayError, attempt: int, config: RetryConfig, time_left: float, delay: float
) -> bool:
    """Whether to sleep ``delay`` seconds and try the same route again (rules above)."""
    return (
        error.retryable
        and attempt + 1 < config.attempts
        and delay <= config.max_delay
        and delay < time_left
    )
