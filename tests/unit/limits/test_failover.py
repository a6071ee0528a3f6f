"""Redis unreachable (a TCP proxy cut in front of the real server), for each policy."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from tests.fakes.tcp_proxy import TcpProxy, tcp_proxy

from llm_gateway.config.schema import RedisConfig
from llm_gateway.limits import Limits, build, build_limits
from llm_gateway.limits import aclose as close_limits
from llm_gateway.limits.base import BudgetExceeded, LimitRule, RateLimitExceeded
from llm_gateway.limits.failover import (
    FailoverRateLimiter,
    FailoverSpendCounter,
    LimiterUnavailable,
    describe_url,
)
from llm_gateway.limits.memory import MemoryRateLimiter, MemorySpendCounter

RULE = (LimitRule("key:f", rpm=2),)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with tcp_proxy("127.0.0.1", 6379) as running:
        yield running


def limits_via(proxy: TcpProxy, prefix: str, policy: str, password: str = "") -> Limits:
    auth = f":{password}@" if password else ""
    config = RedisConfig(
        url=f"redis://{auth}127.0.0.1:{proxy.port}/0", prefix=prefix, on_unavailable=policy
    )
    return build(config, timeout=0.25, probe_min=0.05)


async def wait_until_up(limits: Limits) -> None:
    assert limits.health is not None
    deadline = time.monotonic() + 5
    while not limits.health.up:
        assert time.monotonic() < deadline, "Redis never came back"
        await asyncio.sleep(0.02)


async def test_local_policy_limits_in_process_then_returns_to_redis(
    proxy: TcpProxy, prefix: str, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llm_gateway.limits")
    limits = limits_via(proxy, prefix, "local")
    try:
        shared = await limits.limiter.reserve(RULE, 5)
        assert shared.id.startswith("r")
        proxy.cut()
        started = time.monotonic()
        local = await limits.limiter.reserve(RULE, 5)
        assert local.id.startswith("m")  # in-process, without waiting on Redis again
        assert time.monotonic() - started < 1.0
        await limits.limiter.reserve(RULE, 5)
        with pytest.raises(RateLimitExceeded):  # the local limiter enforces the rule
            await limits.limiter.reserve(RULE, 5)
        await limits.limiter.settle(shared, 7)  # Redis's own: dropped quietly while down
        await limits.limiter.settle(local, 7)
        proxy.restore()
        await wait_until_up(limits)
        back = await limits.limiter.reserve(RULE, 5)
        assert back.id.startswith("r")
        assert back.requests is not None and back.requests.remaining == 0  # shared + back
        assert await redis_client.zcard(f"{prefix}:rl:key:f") == 2
        warnings = [r.getMessage() for r in caplog.records if r.name == "llm_gateway.limits"]
        assert len(warnings) == 2
        assert "unreachable" in warnings[0] and "answers again" in warnings[1]
    finally:
        await limits.aclose()


async def test_allow_policy_admits_everything_while_down(
    proxy: TcpProxy, prefix: str, redis_client: aioredis.Redis
) -> None:
    limits = limits_via(proxy, prefix, "allow")
    limiter, spend = limits.limiter, limits.spend
    try:
        await limiter.reserve(RULE, 1)
        await limiter.reserve(RULE, 1)
        with pytest.raises(RateLimitExceeded):
            await limiter.reserve(RULE, 1)
        proxy.cut()
        for _ in range(5):
            unchecked = await limiter.reserve(RULE, 1)
            assert unchecked.id == "a"
            await limiter.settle(unchecked, 1)
        held = await spend.reserve("k", "total", budget=0.001, amount=5.0)
        held2 = await spend.reserve("k", "total", budget=0.001, amount=5.0)
        await spend.settle(held, 0.5)
        await spend.settle(held2, 0.25)
        proxy.restore()
        await wait_until_up(limits)
        with pytest.raises(RateLimitExceeded):  # limits hold again
            await limiter.reserve(RULE, 1)
        # What was spent unchecked still counts against the budget.
        assert await redis_client.hget(f"{prefix}:sp:k:total", "spent") == b"750000000"
        with pytest.raises(BudgetExceeded):
            await spend.reserve("k", "total", budget=0.5, amount=0.1)
    finally:
        await limits.aclose()


async def test_a_stalled_event_loop_is_not_an_outage(
    prefix: str, redis_client: aioredis.Redis
) -> None:
    """The loop blocked for 0.4 s while 50 reserves wait for their replies (as under CPU
    contention): with the default 1 s timeout none of them takes Redis for down. (With
    0.25 s every one of them did, and the replica fell back to its local limits.)"""
    limits = build(RedisConfig(url="redis://127.0.0.1:6379/0", prefix=prefix))
    wide = (LimitRule("key:stall", rpm=1000),)

    async def stall() -> None:
        await asyncio.sleep(0)
        time.sleep(0.4)  # noqa: ASYNC251 - blocking the loop is the point

    try:
        _, *taken = await asyncio.gather(
            stall(), *(limits.limiter.reserve(wide, 1) for _ in range(50))
        )
        assert limits.health is not None and limits.health.up
        assert all(r is not None and r.id.startswith("r") for r in taken)
    finally:
        await limits.aclose()


async def test_a_silent_redis_times_out_quickly(prefix: str) -> None:
    """A server that accepts and never answers: the short socket timeout applies."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):  # read everything, answer nothing, until closed
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = build(
        RedisConfig(url=f"redis://127.0.0.1:{port}/0", prefix=prefix, on_unavailable="local"),
        timeout=0.25,
    )
    try:
        started = time.monotonic()
        reservation = await limits.limiter.reserve(RULE, 1)
        assert reservation.id.startswith("m")
        assert 0.2 < time.monotonic() - started < 1.5
        started = time.monotonic()
        await limits.limiter.reserve(RULE, 1)  # marked down: no second wait
        assert time.monotonic() - started < 0.1
    finally:
        await limits.aclose()
        server.close()


async def test_pooled_connections_cut_while_idle_do_not_flap(
    proxy: TcpProxy, prefix: str, redis_client: aioredis.Redis
) -> None:
    limits = limits_via(proxy, prefix, "local")
    wide = (LimitRule("key:pool", rpm=1000),)
    try:
        first = await asyncio.gather(*(limits.limiter.reserve(wide, 1) for _ in range(20)))
        assert all(r.id.startswith("r") for r in first)  # about 20 pooled connections
        proxy.cut()  # kills them all while idle
        assert (await limits.limiter.reserve(wide, 1)).id.startswith("m")
        proxy.restore()
        await wait_until_up(limits)
        again = await asyncio.gather(*(limits.limiter.reserve(wide, 1) for _ in range(20)))
        assert all(r.id.startswith("r") for r in again)
        assert limits.health is not None and limits.health.up
        assert await redis_client.zcard(f"{prefix}:rl:key:pool") == 40
    finally:
        await limits.aclose()


async def test_deny_policy_refuses_then_recovers(
    proxy: TcpProxy, prefix: str, redis_client: aioredis.Redis
) -> None:
    limits = limits_via(proxy, prefix, "deny")
    try:
        proxy.cut()
        with pytest.raises(LimiterUnavailable) as refused:
            await limits.limiter.reserve(RULE, 1)
        assert refused.value.status == 503
        assert refused.value.code == "limits_unavailable"
        with pytest.raises(LimiterUnavailable):
            await limits.spend.reserve("k", "total", budget=1.0, amount=0.1)
        proxy.restore()
        await wait_until_up(limits)
        admitted = await limits.limiter.reserve(RULE, 1)
        assert admitted.id.startswith("r")
        await limits.spend.reserve("k", "total", budget=1.0, amount=0.1)
    finally:
        await limits.aclose()


async def test_spend_during_outage_reaches_redis_after(
    proxy: TcpProxy, prefix: str, redis_client: aioredis.Redis
) -> None:
    limits = limits_via(proxy, prefix, "local")
    try:
        first = await limits.spend.reserve("k", "total", budget=1.0, amount=0.5)
        await limits.spend.settle(first, 0.5)
        seen = await limits.spend.reserve("k", "total", budget=1.0, amount=0.25)
        proxy.cut()
        await limits.spend.settle(seen, 0.25)  # Redis's reservation, settled while down
        # The local counter starts from the spend Redis last reported (0.5), not from zero.
        local = await limits.spend.reserve("k", "total", budget=1.0, amount=0.5)
        assert local.id.startswith("m")  # type: ignore[attr-defined]
        with pytest.raises(BudgetExceeded):
            await limits.spend.reserve("k", "total", budget=1.0, amount=0.01)
        await limits.spend.settle(local, 0.125)
        proxy.restore()
        await wait_until_up(limits)
        # Both settles made while Redis was away were added when it answered again.
        assert await limits.spend.spent("k", "total") == pytest.approx(0.875)
        stored = await redis_client.hmget(f"{prefix}:sp:k:total", ["spent", "reserved"])
        # And the reservation settled during the outage was released then, not at expiry.
        assert stored == [b"875000000", b"0"]
    finally:
        await limits.aclose()


async def test_transitions_logged_once_without_the_password(
    proxy: TcpProxy, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llm_gateway.limits")
    limits = limits_via(proxy, prefix, "deny", password="sekret-pw")
    try:
        proxy.cut()  # cut before the first connection: AUTH is never sent
        for _ in range(3):
            with pytest.raises(LimiterUnavailable):
                await limits.limiter.reserve(RULE, 1)
        records = [r for r in caplog.records if r.name == "llm_gateway.limits"]
        assert len(records) == 1
        message = records[0].getMessage()
        assert "unreachable" in message and f"127.0.0.1:{proxy.port}" in message
        assert "sekret" not in caplog.text
    finally:
        await limits.aclose()
    assert describe_url("redis://user:pw@cache.internal:6380/2") == "redis://cache.internal:6380/2"


async def test_factory_picks_the_backend(prefix: str, redis_client: aioredis.Redis) -> None:
    limiter, spend = build_limits(RedisConfig())
    assert isinstance(limiter, MemoryRateLimiter)
    assert isinstance(spend, MemorySpendCounter)
    await close_limits(limiter, spend)
    config = RedisConfig(url="redis://127.0.0.1:6379/0", prefix=prefix)
    limiter, spend = build_limits(config)
    assert isinstance(limiter, FailoverRateLimiter)
    assert isinstance(spend, FailoverSpendCounter)
    reservation = await limiter.reserve((LimitRule("key:factory", rpm=1),), 1)
    await limiter.settle(reservation, 1)
    held = await spend.reserve("factory", "total", budget=1.0, amount=0.5)
    await spend.settle(held, 0.5)
    assert await spend.spent("factory", "total") == 0.5
    await close_limits(limiter, spend)
