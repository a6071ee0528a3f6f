"""A worker process for the multi-process tests: many concurrent reserves at one moment."""

from __future__ import annotations

import asyncio
import time

from llm_gateway.limits.base import LimitRule, RateLimitExceeded
from llm_gateway.limits.redis import RedisRateLimiter, connect

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _hammer(prefix: str, subject: str, rpm: int, requests: int, start_at: float) -> int:
    client = connect(REDIS_URL, timeout=10)
    limiter = RedisRateLimiter(client, prefix=prefix)
    try:
        await client.ping()  # connect before the start line
        await asyncio.sleep(max(start_at - time.time(), 0))

        async def one() -> bool:
            try:
                await limiter.reserve((LimitRule(subject, rpm=rpm),), 1)
            except RateLimitExceeded:
                return False
            return True

        results = await asyncio.gather(*(one() for _ in range(requests)))
        return sum(results)
    finally:
        await limiter.aclose()


def hammer(prefix: str, subject: str, rpm: int, requests: int, start_at: float) -> int:
    """How many of ``requests`` concurrent reserves this process got admitted."""
    return asyncio.run(_hammer(prefix, subject, rpm, requests, start_at))
