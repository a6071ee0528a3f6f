"""What limits do when Redis cannot be reached: the ``redis.on_unavailable`` policy.

A connection error or timeout (the client's socket timeout is short, 1 s by default)
marks Redis down. Until a background probe (PING, backoff 0.5 s doubling to 5 s) gets an
answer, no request waits on Redis again, and the policy decides:

- ``local``: each process enforces the limits and budgets alone, in memory. Across N
  replicas up to N times a rate limit may be admitted while Redis is away.
- ``allow``: admit without checking.
- ``deny``: refuse with ``LimiterUnavailable`` (the gateway answers 503).

A reservation is settled by the backend that made it (its id says which). Spend settled
while Redis is down (``local`` or ``allow``) is remembered per key and period and added to
Redis when it answers again, so the shared counter does not forget money spent during the
outage. Each transition is logged once at WARNING, naming the server without credentials.
"""

from __future__ import annotations

import time
from typing import Literal

from llm_gateway.core.errors import GatewayError
from llm_gateway.limits._common import MEMORY, UNCHECKED, HeldSpend
from llm_gateway.limits.base import LimitRule, Reservation, SpendReservation
from llm_gateway.limits.health import UNAVAILABLE, RedisHealth, describe_url
from llm_gateway.limits.memory import MemoryRateLimiter, MemorySpendCounter
from llm_gateway.limits.redis import RedisRateLimiter, RedisSpendCounter

Policy = Literal["local", "allow", "deny"]


class LimiterUnavailable(GatewayError):
    """Limits cannot be checked (Redis unreachable, policy ``deny``): 503, so every
    surface's error handler renders it without a mapping of its own."""

    status = 503
    default_code = "limits_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=1.0)


class FailoverRateLimiter:
    def __init__(
        self,
        redis: RedisRateLimiter,
        memory: MemoryRateLimiter,
        health: RedisHealth,
        policy: Policy,
    ) -> None:
        self._redis = redis
        self._memory = memory
        self._health = health
        self._policy = policy

    async def reserve(self, rules: tuple[LimitRule, ...], tokens: int) -> Reservation:
        if self._health.up:
            try:
                return await self._redis.reserve(rules, tokens)
            except UNAVAILABLE as exc:
                self._health.failed(exc)
        if self._policy == "local":
            return await self._memory.reserve(rules, tokens)
        if self._policy == "allow":
            return Reservation(UNCHECKED, rules, tokens, time.time())
        raise LimiterUnavailable("Rate limits cannot be checked: Redis is unreachable.")

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        backend = reservation.id[:1]
        if backend == MEMORY:
            await self._memory.settle(reservation, actual_tokens)
        elif backend != UNCHECKED and self._health.up:
            # While Redis is down the settle is dropped: the entry leaves with its window.
            try:
                await self._redis.settle(reservation, actual_tokens)
            except UNAVAILABLE as exc:
                self._health.failed(exc)

    async def aclose(self) -> None:
        await self._health.aclose()
        await self._memory.aclose()
        await self._redis.aclose()


class FailoverSpendCounter:
    def __init__(
        self,
        redis: RedisSpendCounter,
        memory: MemorySpendCounter,
        health: RedisHealth,
        policy: Policy,
    ) -> None:
        self._redis = redis
        self._memory = memory
        self._health = health
        self._policy = policy
        self._unsent: dict[tuple[str, str], float] = {}  # spend Redis has not seen yet
        # Redis's own reservations settled while it was down: settled there on recovery, so
        # they release their budget then rather than when they expire.
        self._late: list[tuple[SpendReservation, float]] = []
        health.on_recover(self._send_unsent)

    async def seed(self, key_id: str, period: str, spent: float) -> None:
        await self._memory.seed(key_id, period, spent)
        if self._health.up:
            try:
                await self._redis.seed(key_id, period, spent)
            except UNAVAILABLE as exc:
                self._health.failed(exc)

    async def reserve(
        self, key_id: str, period: str, budget: float, amount: float
    ) -> SpendReservation:
        if self._health.up:
            try:
                held = await self._redis.reserve(key_id, period, budget, amount)
            except UNAVAILABLE as exc:
                self._health.failed(exc)
            else:
                if isinstance(held, HeldSpend):  # keep memory's view fresh for an outage
                    self._memory.observe(key_id, period, held.spent_seen)
                return held
        if self._policy == "local":
            return await self._memory.reserve(key_id, period, budget, amount)
        if self._policy == "allow":
            return HeldSpend(key_id, period, amount, id=UNCHECKED)
        raise LimiterUnavailable("Budgets cannot be checked: Redis is unreachable.")

    async def settle(self, reservation: SpendReservation, actual: float) -> None:
        backend = reservation.id[:1] if isinstance(reservation, HeldSpend) else ""
        if backend == MEMORY:
            await self._memory.settle(reservation, actual)
        if backend in (MEMORY, UNCHECKED):
            await self._add_to_redis(reservation.key_id, reservation.period, actual)
            return
        if self._health.up:
            try:
                await self._redis.settle(reservation, actual)
                return
            except UNAVAILABLE as exc:
                self._health.failed(exc)
        self._late.append((reservation, actual))

    async def _add_to_redis(self, key_id: str, period: str, amount: float) -> None:
        if amount <= 0:
            return
        if self._health.up:
            try:
                await self._redis.add(key_id, period, amount)
                return
            except UNAVAILABLE as exc:
                self._health.failed(exc)
        self._remember(key_id, period, amount)

    def _remember(self, key_id: str, period: str, amount: float) -> None:
        if amount > 0:
            slot = (key_id, period)
            self._unsent[slot] = self._unsent.get(slot, 0.0) + amount

    async def _send_unsent(self) -> None:
        while self._late:
            reservation, actual = self._late[0]
            await self._redis.settle(reservation, actual)
            self._late.pop(0)
        while self._unsent:
            slot, amount = next(iter(self._unsent.items()))
            await self._redis.add(slot[0], slot[1], amount)
            if self._unsent.get(slot) == amount:
                del self._unsent[slot]
            else:  # more arrived while we were sending
                self._unsent[slot] -= amount

    async def spent(self, key_id: str, period: str) -> float:
        if self._health.up:
            try:
                return await self._redis.spent(key_id, period)
            except UNAVAILABLE as exc:
                self._health.failed(exc)
        return await self._memory.spent(key_id, period)

    async def aclose(self) -> None:
        await self._health.aclose()
        await self._memory.aclose()
        await self._redis.aclose()


__all__ = [
    "UNAVAILABLE",
    "FailoverRateLimiter",
    "FailoverSpendCounter",
    "LimiterUnavailable",
    "RedisHealth",
    "describe_url",
]
