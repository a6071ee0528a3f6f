"""Rate limits (requests and tokens per minute) and spend budgets: in-process or Redis.

Importing this package stays cheap (the gate imports ``limits.base`` on every start):
redis and the failover machinery load only when ``build`` is called with a Redis URL.
``LimiterUnavailable`` (503, policy ``deny``) lives in ``limits.failover``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from llm_gateway.limits.base import RateLimiter, SpendCounter

if TYPE_CHECKING:
    from llm_gateway.config.schema import RedisConfig
    from llm_gateway.limits.health import RedisHealth
    from llm_gateway.limits.reseed import Reseeder


class Limits:
    """The limiter and spend counter of one gateway process, closed together."""

    def __init__(
        self,
        limiter: RateLimiter,
        spend: SpendCounter,
        health: RedisHealth | None = None,
        reseeder: Reseeder | None = None,
    ) -> None:
        self.limiter = limiter
        self.spend = spend
        self.health = health  # None: in-process only
        self.reseeder = reseeder

    def on_reseed(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Register the ledger re-seed: a callback that reads each budgeted key's spend
        for its current period from the ledger and calls ``spend.seed`` with it.

        With Redis it runs when Redis answers again after an outage (after the spend
        settled meanwhile was sent; Redis is marked up only once it returns) and, in the
        background, when a reserve finds a counter Redis lost. In-process limits never
        lose their counters: there it is never called.
        """
        if self.reseeder is not None:
            self.reseeder.set(callback)

    async def aclose(self) -> None:
        if self.health is not None:
            await self.health.aclose()
        await aclose(self.limiter, self.spend)


def build(
    redis: RedisConfig,
    *,
    timeout: float = 1.0,
    window: float = 60.0,
    reservation_ttl: float = 900.0,
    probe_min: float = 0.5,
    settle_memory: float | None = None,
) -> Limits:
    """In-process limits when ``redis.url`` is unset; otherwise Redis behind the
    ``on_unavailable`` policy. ``timeout`` is the Redis socket timeout in seconds,
    ``probe_min`` the first pause before probing a Redis that stopped answering,
    ``settle_memory`` how long Redis remembers applied settle ids (default: the
    reservation ttl; costs about 125 bytes per settle for that long)."""
    from llm_gateway.limits.memory import MemoryRateLimiter, MemorySpendCounter

    memory_limiter = MemoryRateLimiter(window=window)
    memory_spend = MemorySpendCounter(reservation_ttl=reservation_ttl)
    if redis.url is None:
        return Limits(memory_limiter, memory_spend)

    from llm_gateway.limits.failover import FailoverRateLimiter, FailoverSpendCounter
    from llm_gateway.limits.health import RedisHealth, describe_url
    from llm_gateway.limits.redis import RedisRateLimiter, RedisSpendCounter, connect
    from llm_gateway.limits.reseed import Reseeder

    client = connect(redis.url, timeout=timeout)
    reseeder = Reseeder()
    health = RedisHealth(
        client, where=describe_url(redis.url), timeout=timeout, probe_min=probe_min
    )
    limiter = FailoverRateLimiter(
        RedisRateLimiter(client, prefix=redis.prefix, window=window),  # owns the client
        memory_limiter,
        health,
        redis.on_unavailable,
    )
    spend = FailoverSpendCounter(
        RedisSpendCounter(
            client,
            prefix=redis.prefix,
            reservation_ttl=reservation_ttl,
            settle_memory=settle_memory,
            owns_client=False,
            on_unseeded=reseeder.request,
        ),
        memory_spend,
        health,
        redis.on_unavailable,
        reseeder,
    )
    return Limits(limiter, spend, health, reseeder)


def build_limits(redis: RedisConfig) -> tuple[RateLimiter, SpendCounter]:
    """The limiter and spend counter for ``redis``; close both with ``aclose``."""
    limits = build(redis)
    return limits.limiter, limits.spend


async def aclose(limiter: RateLimiter, spend: SpendCounter) -> None:
    """Close what ``build_limits`` returned (the spend counter first: it shares the
    limiter's Redis client, which the limiter closes)."""
    await spend.aclose()
    await limiter.aclose()


__all__ = ["Limits", "aclose", "build", "build_limits"]
