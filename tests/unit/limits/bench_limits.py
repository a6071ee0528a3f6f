"""What a reserve plus a settle costs, in-process and on Redis (the hot path's share).

Run: ``uv run python -m tests.unit.limits.bench_limits`` (Redis at 127.0.0.1:6379).
Prints microseconds per reserve+settle pair: sequential (latency as one request sees
it) and, for Redis, with 50 concurrent callers (throughput of one process).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from llm_gateway.limits.base import LimitRule, RateLimiter, SpendCounter
from llm_gateway.limits.memory import MemoryRateLimiter, MemorySpendCounter
from llm_gateway.limits.redis import RedisRateLimiter, RedisSpendCounter, connect

ONE_RULE = (LimitRule("key:bench", rpm=10**9, tpm=10**12),)
TWO_RULES = (*ONE_RULE, LimitRule("route:bench/model", rpm=10**9, tpm=10**12))


def limiter_pair(
    limiter: RateLimiter, rules: tuple[LimitRule, ...]
) -> Callable[[], Awaitable[None]]:
    async def pair() -> None:
        reservation = await limiter.reserve(rules, 100)
        await limiter.settle(reservation, 80)

    return pair


def spend_pair(counter: SpendCounter) -> Callable[[], Awaitable[None]]:
    async def pair() -> None:
        held = await counter.reserve("bench", "total", 10**9, 0.001)
        await counter.settle(held, 0.0008)

    return pair


async def sequential(pair: Callable[[], Awaitable[None]], rounds: int) -> float:
    """Median of five runs, microseconds per pair."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            await pair()
        runs.append((time.perf_counter() - started) / rounds * 1e6)
    return statistics.median(runs)


async def concurrent(pair: Callable[[], Awaitable[None]], rounds: int, width: int) -> float:
    async def worker() -> None:
        for _ in range(rounds // width):
            await pair()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(width)))
    return (time.perf_counter() - started) / rounds * 1e6


async def main() -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    print(
        f"memory limiter, 1 rule:  {await sequential(limiter_pair(MemoryRateLimiter(), ONE_RULE), 20_000):8.2f} us"
    )
    print(
        f"memory limiter, 2 rules: {await sequential(limiter_pair(MemoryRateLimiter(), TWO_RULES), 20_000):8.2f} us"
    )
    print(
        f"memory spend counter:    {await sequential(spend_pair(MemorySpendCounter()), 20_000):8.2f} us"
    )
    client = connect("redis://127.0.0.1:6379/0", timeout=5)
    try:
        limiter = RedisRateLimiter(client, prefix=prefix, owns_client=False)
        counter = RedisSpendCounter(client, prefix=prefix, owns_client=False)
        print(
            f"redis limiter, 1 rule:   {await sequential(limiter_pair(limiter, ONE_RULE), 1000):8.1f} us"
        )
        print(
            f"redis limiter, 2 rules:  {await sequential(limiter_pair(limiter, TWO_RULES), 1000):8.1f} us"
        )
        print(f"redis spend counter:     {await sequential(spend_pair(counter), 1000):8.1f} us")
        wide = await concurrent(limiter_pair(limiter, ONE_RULE), 5000, 50)
        print(
            f"redis limiter, 50 concurrent callers: {wide:8.1f} us per pair ({1e6 / wide:,.0f} pairs/s)"
        )
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
