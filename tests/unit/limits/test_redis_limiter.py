"""The Redis limiter against a real Redis: exact windows, tokens, rules, processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
import redis.asyncio as aioredis
from tests.unit.limits.hammer import hammer

from llm_gateway.limits import redis as redis_limits
from llm_gateway.limits import redis_scripts
from llm_gateway.limits.base import LimitRule, RateLimitExceeded
from llm_gateway.limits.redis import RedisRateLimiter


def limiter_for(client: aioredis.Redis, prefix: str, window: float = 60.0) -> RedisRateLimiter:
    return RedisRateLimiter(client, prefix=prefix, window=window, owns_client=False)


async def test_sliding_window_on_server_time(redis_client: aioredis.Redis, prefix: str) -> None:
    limiter = limiter_for(redis_client, prefix, window=1.0)
    rule = (LimitRule("key:w", rpm=3),)
    first = await limiter.reserve(rule, 0)
    await asyncio.sleep(0.5)
    second = await limiter.reserve(rule, 0)
    third = await limiter.reserve(rule, 0)
    assert third.requests is not None and third.requests.remaining == 0
    # Reservation times are the server's clock: the window is measured on it.
    assert 0.45 < second.at - first.at < 1.0
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve(rule, 0)
    assert refused.value.dimension == "requests"
    assert refused.value.state.limit == 3 and refused.value.state.remaining == 0
    # Until the first entry leaves: one window after it came, measured from now.
    assert 0 < refused.value.retry_after <= first.at + 1.0 - third.at
    await asyncio.sleep(refused.value.retry_after + 0.02)
    fourth = await limiter.reserve(rule, 0)  # exactly one slot freed...
    with pytest.raises(RateLimitExceeded) as again:
        await limiter.reserve(rule, 0)  # ...and only one
    assert 0 < again.value.retry_after <= second.at + 1.0 - fourth.at


async def test_tokens_reserved_then_settled(redis_client: aioredis.Redis, prefix: str) -> None:
    limiter = limiter_for(redis_client, prefix)
    rule = (LimitRule("key:t", tpm=1000),)
    first = await limiter.reserve(rule, 600)
    assert first.tokens_state is not None
    assert (first.tokens_state.limit, first.tokens_state.remaining) == (1000, 400)
    assert first.tokens_state.reset_seconds == pytest.approx(60, abs=0.5)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve(rule, 500)
    assert refused.value.dimension == "tokens"
    assert refused.value.state.remaining == 400
    assert refused.value.retry_after == pytest.approx(60, abs=0.5)
    await limiter.settle(first, 100)
    second = await limiter.reserve(rule, 500)
    assert second.tokens_state is not None and second.tokens_state.remaining == 400
    await limiter.settle(second, 850)
    with pytest.raises(RateLimitExceeded) as over:
        await limiter.reserve(rule, 100)
    assert over.value.state.remaining == 50
    # An estimate above the limit is admitted only into an empty window.
    big = await limiter.reserve((LimitRule("key:big", tpm=100),), 5000)
    assert big.tokens_state is not None and big.tokens_state.remaining == -4900
    with pytest.raises(RateLimitExceeded):
        await limiter.reserve((LimitRule("key:big", tpm=100),), 1)


async def test_all_or_nothing_and_tightest_headers(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    limiter = limiter_for(redis_client, prefix)
    key = LimitRule("key:k", rpm=10, tpm=1000)
    route = LimitRule("route:openai/gpt-4o", rpm=2, tpm=5000)
    first = await limiter.reserve((key, route), 10)
    assert first.requests is not None and first.tokens_state is not None
    assert (first.requests.limit, first.requests.remaining) == (2, 1)  # the route's
    assert (first.tokens_state.limit, first.tokens_state.remaining) == (1000, 990)  # the key's
    await limiter.reserve((key, route), 10)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve((key, route), 10)
    assert refused.value.subject == "route:openai/gpt-4o"
    alone = await limiter.reserve((key,), 10)
    assert alone.requests is not None and alone.requests.remaining == 7
    assert alone.tokens_state is not None and alone.tokens_state.remaining == 970
    none = await limiter.reserve((LimitRule("key:free"),), 10)
    assert none.requests is None and none.tokens_state is None
    await limiter.settle(none, 5)


async def test_keys_are_prefixed_and_expire(redis_client: aioredis.Redis, prefix: str) -> None:
    limiter = limiter_for(redis_client, prefix, window=1.0)
    reservation = await limiter.reserve((LimitRule("key:x", rpm=5, tpm=100),), 7)
    await limiter.settle(reservation, 9)
    keys = sorted([key.decode() async for key in redis_client.scan_iter(match=f"{prefix}:*")])
    assert keys == [f"{prefix}:rl:key:x", f"{prefix}:rl:key:x:t"]
    for key in keys:
        assert 0 < await redis_client.pttl(key) <= 2000
    assert await redis_client.hget(f"{prefix}:rl:key:x:t", "_sum") == b"9"
    await asyncio.sleep(2.1)
    assert [key async for key in redis_client.scan_iter(match=f"{prefix}:*")] == []


async def test_unknown_script_falls_back_to_eval(
    redis_client: aioredis.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A script the server has never seen (as after a restart or SCRIPT FLUSH).
    fresh = redis_limits._Script(redis_scripts.RESERVE + f"\n-- {prefix}\n")
    monkeypatch.setattr(redis_limits, "_RESERVE", fresh)
    limiter = limiter_for(redis_client, prefix)
    assert await redis_client.script_exists(fresh.sha) == [False]
    await limiter.reserve((LimitRule("key:s", rpm=1),), 1)
    assert await redis_client.script_exists(fresh.sha) == [True]
    with pytest.raises(RateLimitExceeded):
        await limiter.reserve((LimitRule("key:s", rpm=1),), 1)


async def test_concurrent_reserves_admit_exactly_the_limit(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    limiter = limiter_for(redis_client, prefix)
    rule = (LimitRule("key:burst", rpm=60),)

    async def one() -> bool:
        try:
            await limiter.reserve(rule, 1)
        except RateLimitExceeded:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(200)))
    assert sum(results) == 60
    assert await redis_client.zcard(f"{prefix}:rl:key:burst") == 60


def test_three_processes_share_one_limit(prefix: str) -> None:
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0  # after every worker has started and connected
    with ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        futures = [pool.submit(hammer, prefix, "key:shared", 60, 100, start_at) for _ in range(3)]
        admitted = [future.result(timeout=30) for future in futures]
    assert sum(admitted) == 60, admitted


async def test_reserve_and_settle_cost(redis_client: aioredis.Redis, prefix: str) -> None:
    limiter = limiter_for(redis_client, prefix)
    rules = (LimitRule("key:bench", rpm=10**9, tpm=10**12),)
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        reservation = await limiter.reserve(rules, 100)
        await limiter.settle(reservation, 80)
    per_call = (time.perf_counter() - started) / rounds * 1e6
    print(f"redis reserve+settle: {per_call:.0f} us")
    assert per_call < 20_000
