"""The Redis spend counter against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from llm_gateway.limits.base import BudgetExceeded
from llm_gateway.limits.redis import RedisSpendCounter


def counter_for(
    client: aioredis.Redis, prefix: str, reservation_ttl: float = 900.0
) -> RedisSpendCounter:
    return RedisSpendCounter(
        client, prefix=prefix, reservation_ttl=reservation_ttl, owns_client=False
    )


async def test_admits_while_something_is_left(redis_client: aioredis.Redis, prefix: str) -> None:
    counter = counter_for(redis_client, prefix)
    first = await counter.reserve("k1", "total", budget=1.0, amount=3.0)
    assert first.amount == 3.0
    with pytest.raises(BudgetExceeded) as refused:
        await counter.reserve("k1", "total", budget=1.0, amount=0.01)
    assert refused.value.key_id == "k1" and refused.value.budget == 1.0
    assert refused.value.spent == pytest.approx(3.0)
    await counter.settle(first, 0.25)
    assert await counter.spent("k1", "total") == 0.25
    assert await counter.reserved("k1", "total") == 0.0
    await counter.reserve("k1", "total", budget=1.0, amount=0.5)
    await counter.reserve("k1", "total", budget=1.0, amount=0.125)
    await counter.reserve("k1", "total", budget=1.0, amount=0.125)  # now exactly 1.0
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k1", "total", budget=1.0, amount=0.001)
    # Stored as integer nano-dollars, named by prefix, key and period.
    stored = await redis_client.hgetall(f"{prefix}:sp:k1:total")
    assert stored[b"spent"] == b"250000000"
    assert stored[b"reserved"] == b"750000000"
    assert await redis_client.pttl(f"{prefix}:sp:k1:total") == -1  # total: kept


async def test_many_small_costs_do_not_drift(redis_client: aioredis.Redis, prefix: str) -> None:
    counter = counter_for(redis_client, prefix)
    for _ in range(100):
        held = await counter.reserve("k", "d2026-11-22", budget=100.0, amount=0.01)
        await counter.settle(held, 0.000_123)
    assert await counter.spent("k", "d2026-11-22") == pytest.approx(0.0123, abs=1e-12)
    ttl = await redis_client.pttl(f"{prefix}:sp:k:d2026-11-22")
    assert 2 * 86_400_000 < ttl <= 3 * 86_400_000
    # Large sums stay exact integers inside the script (no "1e+15" formatting).
    held = await counter.reserve("rich", "m2026-11", budget=10_000_000.0, amount=2_000_000.0)
    await counter.settle(held, 1_234_567.891)
    assert await counter.spent("rich", "m2026-11") == pytest.approx(1_234_567.891, abs=1e-6)


async def test_seed_sets_only_an_unknown_period(redis_client: aioredis.Redis, prefix: str) -> None:
    counter = counter_for(redis_client, prefix)
    await counter.seed("k", "m2026-11", 4.0)
    await counter.seed("k", "m2026-11", 1.0)
    assert await counter.spent("k", "m2026-11") == 4.0
    with pytest.raises(BudgetExceeded) as refused:
        await counter.reserve("k", "m2026-11", budget=4.0, amount=0.1)
    assert refused.value.spent == 4.0


async def test_unsettled_reservations_expire(redis_client: aioredis.Redis, prefix: str) -> None:
    counter = counter_for(redis_client, prefix, reservation_ttl=0.3)
    lost = await counter.reserve("k", "total", budget=1.0, amount=2.0)  # a crashed replica's
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k", "total", budget=1.0, amount=0.1)
    await asyncio.sleep(0.35)
    late = await counter.reserve("k", "total", budget=1.0, amount=0.1)
    assert await counter.reserved("k", "total") == pytest.approx(0.1)
    assert await redis_client.zcard(f"{prefix}:sp:k:total:r") == 1
    await counter.settle(lost, 0.3)  # counts the spend, releases nothing twice
    await counter.settle(late, 0.1)
    assert await counter.spent("k", "total") == pytest.approx(0.4)
    assert await counter.reserved("k", "total") == 0.0
    assert await redis_client.exists(f"{prefix}:sp:k:total:r") == 0


async def test_budget_race_overshoots_by_at_most_one_reservation(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    counter = counter_for(redis_client, prefix)
    amount, budget = 0.03, 0.30
    admitted = 0

    async def one() -> None:
        nonlocal admitted
        try:
            held = await counter.reserve("race", "total", budget, amount)
        except BudgetExceeded:
            return
        admitted += 1
        await asyncio.sleep(0.01)
        await counter.settle(held, amount)

    await asyncio.gather(*(one() for _ in range(50)))
    spent = await counter.spent("race", "total")
    assert admitted == 10  # every admission saw every other in-flight reservation
    assert budget - 1e-9 <= spent <= budget + amount + 1e-9
    assert await counter.reserved("race", "total") == 0.0
