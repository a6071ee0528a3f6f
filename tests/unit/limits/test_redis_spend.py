"""The Redis spend counter against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from llm_gateway.limits._common import HeldSpend
from llm_gateway.limits.base import BudgetExceeded, LimitRule
from llm_gateway.limits.redis import MAX_INT, RedisRateLimiter, RedisSpendCounter


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


async def test_seed_applies_once_per_counter_and_never_lowers_it(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    counter = counter_for(redis_client, prefix)
    await counter.seed("k", "m2026-11", 4.0)
    await counter.seed("k", "m2026-11", 1.0)  # seeded already: Redis's figure stands
    await counter.seed("k", "m2026-11", 7.0)
    assert await counter.spent("k", "m2026-11") == 4.0
    with pytest.raises(BudgetExceeded) as refused:
        await counter.reserve("k", "m2026-11", budget=4.0, amount=0.1)
    assert refused.value.spent == 4.0
    held = await counter.reserve("j", "m2026-11", budget=40.0, amount=0.1)
    await counter.settle(held, 0.5)
    await counter.seed("j", "m2026-11", 9.0)  # never seeded (settles made it): taken
    assert await counter.spent("j", "m2026-11") == 9.0
    await counter.seed("j", "m2026-11", 20.0)  # periodic seeds change nothing now
    assert await counter.spent("j", "m2026-11") == 9.0
    held = await counter.reserve("i", "m2026-11", budget=40.0, amount=0.1)
    await counter.settle(held, 0.5)
    await counter.seed("i", "m2026-11", 0.25)  # the larger figure: what it counted
    assert await counter.spent("i", "m2026-11") == 0.5
    stored = await redis_client.hgetall(f"{prefix}:sp:j:m2026-11")
    assert stored[b"seeded"] == b"1" and stored[b"spent"] == b"9000000000"
    assert await redis_client.pttl(f"{prefix}:sp:j:m2026-11") > 62 * 86_400_000


async def test_lost_counter_is_noticed_and_restored_by_a_seed(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    """P2-2: Redis loses the hash (restart without persistence, FLUSH, eviction); a settle
    re-creates it with only its own amount. The next reserve reports the counter was
    never seeded, and seeding the ledger's figure then restores the spend."""
    unseeded: list[int] = []
    counter = counter_for(redis_client, prefix)
    counter.on_unseeded = lambda: unseeded.append(1)
    await counter.seed("k", "total", 5.0)
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k", "total", budget=5.0, amount=0.01)
    assert unseeded == []  # seeded: nothing to report
    await redis_client.delete(f"{prefix}:sp:k:total", f"{prefix}:sp:k:total:r")
    held = await counter.reserve("k", "total", budget=5.0, amount=0.01)  # admitted...
    assert unseeded == [1]  # ...but reported
    await counter.settle(held, 0.01)
    assert await counter.spent("k", "total") == pytest.approx(0.01)
    await counter.seed("k", "total", 5.01)  # the ledger: 5.00 before, 0.01 since
    assert await counter.spent("k", "total") == pytest.approx(5.01)
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k", "total", budget=5.0, amount=0.01)
    assert unseeded == [1]


async def test_a_settle_sent_twice_counts_once(redis_client: aioredis.Redis, prefix: str) -> None:
    """P2-3: a settle whose reply was lost is sent again under the same id: no effect."""
    counter = counter_for(redis_client, prefix)
    held = await counter.reserve("k", "total", budget=10.0, amount=1.0)
    assert isinstance(held, HeldSpend)
    await counter.settle(held, 0.75)
    await counter.settle(held, 0.75)  # the same reservation: its id is the settle id
    assert await counter.add("k", "total", 0.75, held.id, settle_id=held.id) is False
    assert await counter.add("k", "total", 0.5, settle_id="add-1") is True
    assert await counter.add("k", "total", 0.5, settle_id="add-1") is False
    assert await counter.add("k", "total", 0.5) is True  # no id given: a fresh one
    assert await counter.spent("k", "total") == pytest.approx(1.75)
    assert await counter.reserved("k", "total") == 0.0
    done = f"{prefix}:sp:k:total:d"
    assert await redis_client.zcard(done) == 3
    assert 900_000 < await redis_client.pttl(done) <= 901_000  # gone when idle


async def test_settle_ids_are_forgotten_after_settle_memory(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    counter = RedisSpendCounter(redis_client, prefix=prefix, settle_memory=0.2, owns_client=False)
    assert await counter.add("k", "d2026-11-22", 0.5, settle_id="x") is True
    assert await counter.add("k", "d2026-11-22", 0.5, settle_id="x") is False
    await asyncio.sleep(0.25)
    assert await counter.add("k", "d2026-11-22", 0.25, settle_id="y") is True  # prunes "x"
    assert await redis_client.zrange(f"{prefix}:sp:k:d2026-11-22:d", 0, -1) == [b"y"]
    assert await counter.spent("k", "d2026-11-22") == pytest.approx(0.75)


async def test_absurd_figures_are_clamped_not_refused_by_redis(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    """P1-3: an estimate beyond int64 (max_tokens of 10**30) must not fail in HINCRBY."""
    counter = counter_for(redis_client, prefix)
    held = await counter.reserve("k", "total", budget=1e30, amount=1e30)
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k", "total", budget=1e30, amount=1.0)
    await counter.settle(held, float("nan"))
    await counter.settle(held, -3.0)  # a duplicate, and negative: nothing either way
    assert await counter.spent("k", "total") == 0.0
    assert await counter.reserved("k", "total") == 0.0
    limiter = RedisRateLimiter(redis_client, prefix=prefix, owns_client=False)
    rule = (LimitRule("key:huge", rpm=10, tpm=10**30),)
    taken = await limiter.reserve(rule, 10**30)
    await limiter.settle(taken, 10**40)
    assert await redis_client.hget(f"{prefix}:rl:key:huge:t", "_sum") == str(MAX_INT).encode()


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
