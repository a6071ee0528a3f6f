"""What happens when Redis comes back: spend it missed, lost counters, lost replies, and
recovery steps that fail (real Redis behind a TCP proxy that the tests cut)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tests.fakes.tcp_proxy import TcpProxy, tcp_proxy

from llm_gateway.config.schema import RedisConfig
from llm_gateway.limits import Limits, build
from llm_gateway.limits.base import BudgetExceeded
from llm_gateway.limits.failover import FailoverSpendCounter
from llm_gateway.limits.health import RedisHealth
from llm_gateway.limits.memory import MemorySpendCounter
from llm_gateway.limits.redis import RedisSpendCounter, connect
from llm_gateway.limits.reseed import Reseeder


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with tcp_proxy("127.0.0.1", 6379) as running:
        yield running


async def eventually(check: Any, what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


class Ledger:
    """Stands in for the gateway's ledger: the spend per key it would report."""

    def __init__(self, limits: Limits, period: str = "total") -> None:
        self.spent: dict[str, float] = {}
        self.calls = 0
        self._limits = limits
        self._period = period

    async def reseed(self) -> None:  # what AccessService.reseed does, from storage
        self.calls += 1
        for key_id, spent in self.spent.items():
            await self._limits.spend.seed(key_id, self._period, spent)


def limits_via(proxy: TcpProxy, prefix: str) -> Limits:
    config = RedisConfig(url=f"redis://127.0.0.1:{proxy.port}/0", prefix=prefix)
    return build(config, timeout=0.25, probe_min=0.05)


async def test_counter_lost_while_redis_was_down_is_restored_on_recovery(
    proxy: TcpProxy, prefix: str, redis_client: aioredis.Redis
) -> None:
    """P2-2 over a restart: Redis comes back empty; what was settled locally during the
    outage is sent first, then the ledger re-seed restores the rest, once."""
    limits = limits_via(proxy, prefix)
    ledger = Ledger(limits)
    limits.on_reseed(ledger.reseed)
    try:
        ledger.spent["k"] = 5.0
        await ledger.reseed()
        with pytest.raises(BudgetExceeded):
            await limits.spend.reserve("k", "total", budget=5.0, amount=0.01)
        proxy.cut()
        await redis_client.delete(f"{prefix}:sp:k:total")  # the restart lost it
        with pytest.raises(BudgetExceeded):  # the local counter knows the $5
            await limits.spend.reserve("k", "total", budget=5.0, amount=0.01)
        local = await limits.spend.reserve("k", "total", budget=6.0, amount=0.01)
        await limits.spend.settle(local, 0.01)
        ledger.spent["k"] = 5.01  # the ledger has the outage's spend too
        calls = ledger.calls
        proxy.restore()
        assert limits.health is not None
        await eventually(lambda: limits.health is not None and limits.health.up, "never up")
        assert ledger.calls == calls + 1  # re-seeded before being marked up
        assert await redis_client.hget(f"{prefix}:sp:k:total", "spent") == b"5010000000"
        with pytest.raises(BudgetExceeded):
            await limits.spend.reserve("k", "total", budget=5.0, amount=0.01)
    finally:
        await limits.aclose()


async def test_counter_lost_without_an_outage_is_reseeded_in_the_background(
    prefix: str, redis_client: aioredis.Redis
) -> None:
    """P2-2 after FLUSH or eviction: no outage to notice, but the next reserve finds the
    counter unseeded and the re-seed runs (at most once per interval)."""
    limits = build(RedisConfig(url="redis://127.0.0.1:6379/0", prefix=prefix))
    ledger = Ledger(limits)
    limits.on_reseed(ledger.reseed)
    assert limits.reseeder is not None
    try:
        ledger.spent["k"] = 5.0
        await ledger.reseed()
        # Lost, then re-created by one settle of $0.01 (the ledger has it too by now).
        await redis_client.delete(f"{prefix}:sp:k:total")
        await redis_client.hset(f"{prefix}:sp:k:total", "spent", 10_000_000)
        ledger.spent["k"] = 5.01
        for _ in range(5):  # every reserve finds it unseeded until the re-seed ran
            await limits.spend.reserve("k", "total", budget=50.0, amount=0.0)
        await eventually(lambda: limits.reseeder is not None and limits.reseeder.runs, "no run")
        assert ledger.calls == 2  # the first seed, then one background run
        assert await limits.spend.spent("k", "total") == pytest.approx(5.01)
        with pytest.raises(BudgetExceeded):
            await limits.spend.reserve("k", "total", budget=5.0, amount=0.01)
    finally:
        await limits.aclose()


class LostReplies(RedisSpendCounter):
    """Runs each ``add`` on Redis, then reports a timeout for the first ``lose`` of them:
    a reply lost after the script ran."""

    def __init__(self, *args: Any, lose: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lose = lose

    async def add(
        self, key_id: str, period: str, amount: float, rid: str = "", settle_id: str = ""
    ) -> bool:
        applied = await super().add(key_id, period, amount, rid, settle_id)
        if self.lose > 0:
            self.lose -= 1
            raise RedisTimeoutError("Timeout reading from socket")
        return applied


def counter_losing_replies(
    client: aioredis.Redis, prefix: str, lose: int, settle_memory: float = 900.0
) -> tuple[FailoverSpendCounter, RedisHealth, LostReplies]:
    health = RedisHealth(client, where="test", timeout=0.25, probe_min=0.05)
    redis_spend = LostReplies(
        client, prefix=prefix, owns_client=False, lose=lose, settle_memory=settle_memory
    )
    spend = FailoverSpendCounter(redis_spend, MemorySpendCounter(), health, "local", Reseeder())
    return spend, health, redis_spend


async def test_a_settle_that_ran_before_its_timeout_is_not_counted_twice(
    prefix: str, redis_client: aioredis.Redis
) -> None:
    """P2-3: the settle runs on Redis, its reply is lost (timeout: Redis marked down); on
    recovery it is sent again under the same id, and Redis applies it once."""
    client = connect("redis://127.0.0.1:6379/0", timeout=0.25)
    spend, health, _ = counter_losing_replies(client, prefix, lose=1)
    try:
        held = await spend.reserve("k", "total", budget=10.0, amount=1.0)
        local_later = await spend.reserve("k", "total", budget=10.0, amount=1.0)
        await spend.settle(held, 0.5)  # applied, then "timed out"
        assert not health.up
        local = await spend.reserve("k", "total", budget=10.0, amount=1.0)
        await spend.settle(local, 0.25)  # in memory while down, sent on recovery
        await spend.settle(local_later, 0.125)  # Redis's own, settled while down
        await eventually(lambda: health.up, "never up")
        stored = await redis_client.hmget(f"{prefix}:sp:k:total", ["spent", "reserved"])
        assert stored == [b"875000000", b"0"]  # 0.5 once, 0.25, 0.125; nothing held
        assert await redis_client.zcard(f"{prefix}:sp:k:total:d") == 3
    finally:
        await spend.aclose()
        await client.aclose()


async def test_a_lost_reply_older_than_redis_remembers_is_not_sent_again(
    proxy: TcpProxy, prefix: str, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis forgot the settle id (outage longer than settle_memory): sending it again
    could count it twice, so it is dropped with a warning and the re-seed restores it."""
    caplog.set_level(logging.WARNING, logger="llm_gateway.limits")
    client = connect(f"redis://127.0.0.1:{proxy.port}/0", timeout=0.25)
    spend, health, redis_spend = counter_losing_replies(client, prefix, lose=0, settle_memory=0.2)
    try:
        held = await spend.reserve("k", "total", budget=10.0, amount=1.0)
        redis_spend.lose = 1
        await spend.settle(held, 0.5)  # ran on Redis, reply lost: marked down
        proxy.cut()  # and kept away longer than Redis remembers the settle id
        assert not health.up
        await asyncio.sleep(0.3)
        proxy.restore()
        await eventually(lambda: health.up, "never up")
        assert await spend.spent("k", "total") == 0.5  # not 1.0
        assert await redis_client.hget(f"{prefix}:sp:k:total", "reserved") == b"0"
        assert "not sent again" in caplog.text
    finally:
        await spend.aclose()
        await client.aclose()


async def test_a_failing_recovery_step_does_not_keep_redis_down(
    proxy: TcpProxy, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="llm_gateway.limits")
    limits = limits_via(proxy, prefix)
    assert limits.health is not None
    health = limits.health
    after: list[str] = []

    async def broken() -> None:
        raise RuntimeError("a bug in a recovery step")

    async def later() -> None:
        after.append("ran")

    health.on_recover(broken)
    health.on_recover(later)
    try:
        proxy.cut()
        assert (await limits.spend.reserve("k", "total", 1.0, 0.1)).id.startswith("m")  # type: ignore[attr-defined]
        proxy.restore()
        await eventually(lambda: health.up, "the probe died: Redis stayed down")
        assert after == ["ran"]
        assert "recovery step failed (RuntimeError)" in caplog.text
        assert (await limits.spend.reserve("k", "total", 1.0, 0.1)).id.startswith("r")  # type: ignore[attr-defined]
    finally:
        await limits.aclose()


async def test_recovery_is_retried_when_redis_fails_again_during_it(
    proxy: TcpProxy, prefix: str
) -> None:
    limits = limits_via(proxy, prefix)
    assert limits.health is not None
    health = limits.health
    seen: list[bool] = []

    async def flaky() -> None:
        seen.append(health.up)
        if len(seen) == 1:
            raise RedisConnectionError("gone again")

    health.on_recover(flaky)
    try:
        proxy.cut()
        await limits.spend.reserve("k", "total", 1.0, 0.1)  # finds it down
        proxy.restore()
        await eventually(lambda: health.up, "never up")
        assert seen == [False, False]  # not marked up after the failed attempt
    finally:
        await limits.aclose()


async def test_replicas_recovering_together_count_the_outage_once(
    proxy: TcpProxy, prefix: str, redis_client: aioredis.Redis
) -> None:
    """Each replica sends what it settled during the outage; the re-seed after it must not
    add the same spend again from the ledger (which has every replica's)."""
    replicas = [limits_via(proxy, prefix) for _ in range(2)]
    ledgers = [Ledger(limits) for limits in replicas]
    for limits, ledger in zip(replicas, ledgers, strict=True):
        limits.on_reseed(ledger.reseed)
        ledger.spent["k"] = 1.0
    try:
        await ledgers[0].reseed()
        proxy.cut()
        for limits, amount in zip(replicas, (0.25, 0.5), strict=True):
            local = await limits.spend.reserve("k", "total", budget=10.0, amount=0.1)
            await limits.spend.settle(local, amount)
        for ledger in ledgers:
            ledger.spent["k"] = 1.75  # the ledger has both replicas' outage spend
        proxy.restore()
        await eventually(
            lambda: all(one.health is not None and one.health.up for one in replicas), "down"
        )
        assert await redis_client.hget(f"{prefix}:sp:k:total", "spent") == b"1750000000"
        assert all(ledger.calls >= 1 for ledger in ledgers)
    finally:
        for limits in replicas:
            await limits.aclose()


async def test_reseed_hook_is_a_no_op_without_redis() -> None:
    limits = build(RedisConfig())
    calls: list[int] = []

    async def reseed() -> None:
        calls.append(1)

    limits.on_reseed(reseed)  # in-process counters never lose their figures
    await limits.spend.reserve("k", "total", 1.0, 0.1)
    assert limits.reseeder is None and calls == []
    await limits.aclose()
