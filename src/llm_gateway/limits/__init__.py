"""Rate limits (requests and tokens per minute) and spend budgets: in-process or Redis.

Importing this package stays cheap (the gate imports ``limits.base`` on every start):
redis and the failover machinery load only when ``build`` is called with a Redis URL.
``LimiterUnavailable`` (503, policy ``deny``) lives in ``limits.failover``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_gateway.limits.base import RateLimiter, SpendCounter

if TYPE_CHECKING:
    from llm_gateway.config.schema import RedisConfig
    from llm_gateway.limits.health import RedisHealth


class Limits:
    """The limiter and spend counter of one gateway process, closed together."""

    def __init__(
        self, limiter: RateLimiter, spend: SpendCounter, health: RedisHealth | None = None
    ) -> None:
        self.limiter = limiter
        self.spend = spend
        self.health = health  # None: in-process only

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
) -> Limits:
    """In-process limits when ``redis.url`` is unset; otherwise Redis behind the
    ``on_unavailable`` policy. ``timeout`` is the Redis socket timeout in seconds,
    ``probe_min`` the first pause before probing a Redis that stopped answering."""
    from llm_gateway.limits.memory import MemoryRateLimiter, MemorySpendCounter

    memory_limiter = MemoryRateLimiter(window=window)
    memory_spend = MemorySpendCounter(reservation_ttl=reservation_ttl)
    if redis.url is None:
        return Limits(memory_limiter, memory_spend)

    from llm_gateway.limits.failover import FailoverRateLimiter, FailoverSpendCounter
    from llm_gateway.limits.health import RedisHealth, describe_url
    from llm_gateway.limits.redis import RedisRateLimiter, RedisSpendCounter, connect

    client = connect(redis.url, timeout=timeout)
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
            client, prefix=redis.prefix, reservation_ttl=reservation_ttl, owns_client=False
        ),
        memory_spend,
        health,
        redis.on_unavailable,
    )
    return Limits(limiter, spend, health)


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
