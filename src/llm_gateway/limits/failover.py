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
outage. Every such settle carries an id Redis remembers (``RedisSpendCounter.settle_memory``)
so one whose reply was lost (it timed out after running) is not counted twice when sent
again; one that may have run longer ago than Redis remembers is not sent again (the ledger
re-seed, run right after, restores it if it had not). Each transition is logged once at
WARNING, naming the server without credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from llm_gateway.core.errors import GatewayError
from llm_gateway.limits._common import MEMORY, UNCHECKED, HeldSpend
from llm_gateway.limits.base import LimitRule, Reservation, SpendReservation
from llm_gateway.limits.health import DOWN, UNAVAILABLE, RedisHealth, describe_url
from llm_gateway.limits.memory import MemoryRateLimiter, MemorySpendCounter
from llm_gateway.limits.redis import RedisRateLimiter, RedisSpendCounter
from llm_gateway.limits.reseed import Reseeder

log = logging.getLogger("llm_gateway.limits")

Policy = Literal["local", "allow", "deny"]
T = TypeVar("T")


class LimiterUnavailable(GatewayError):
    """Limits cannot be checked (Redis unreachable, policy ``deny``): 503, so every
    surface's error handler renders it without a mapping of its own."""

    status = 503
    default_code = "limits_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=1.0)


async def apply_policy(
    policy: Policy, local: Callable[[], Awaitable[T]], unchecked: Callable[[], T], what: str
) -> T:
    """What to do without Redis: ``local`` checks in memory, ``allow`` admits unchecked,
    ``deny`` refuses."""
    if policy == "local":
        return await local()
    if policy == "allow":
        return unchecked()
    raise LimiterUnavailable(f"{what} cannot be checked: Redis is unreachable.")


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
        shared = await self._health.attempt(self._redis.reserve, rules, tokens)
        if shared is not DOWN:
            return shared
        return await apply_policy(
            self._policy,
            lambda: self._memory.reserve(rules, tokens),
            lambda: Reservation(UNCHECKED, rules, tokens, time.time()),
            "Rate limits",
        )

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        backend = reservation.id[:1]
        if backend == MEMORY:
            await self._memory.settle(reservation, actual_tokens)
        elif backend != UNCHECKED:
            # While Redis is down the settle is dropped: the entry leaves with its window.
            await self._health.attempt(self._redis.settle, reservation, actual_tokens)

    async def aclose(self) -> None:
        await self._health.aclose()
        await self._memory.aclose()
        await self._redis.aclose()


class _Pending:
    """Spend Redis has not confirmed: sent again on recovery under the same settle id."""

    __slots__ = ("amount", "key_id", "period", "rid", "settle_id", "tried")

    def __init__(self, key_id: str, period: str, amount: float, rid: str, settle_id: str) -> None:
        self.key_id = key_id
        self.period = period
        self.amount = amount
        self.rid = rid  # the Redis reservation it releases, or ""
        self.settle_id = settle_id
        self.tried: float | None = None  # first send that may have reached Redis


class FailoverSpendCounter:
    def __init__(
        self,
        redis: RedisSpendCounter,
        memory: MemorySpendCounter,
        health: RedisHealth,
        policy: Policy,
        reseeder: Reseeder | None = None,
    ) -> None:
        self._redis = redis
        self._memory = memory
        self._health = health
        self._policy = policy
        self._reseeder = reseeder
        # Spend settled while Redis was known to be down (never sent): summed per key and
        # period, so a long outage costs one entry per key.
        self._unsent: dict[tuple[str, str], float] = {}
        # Sends that failed (they may have run) and Redis's own reservations settled while
        # it was down (they release their budget on recovery rather than at expiry).
        self._pending: list[_Pending] = []
        self._recovering = False
        health.on_recover(self._recover)

    async def seed(self, key_id: str, period: str, spent: float) -> None:
        await self._memory.seed(key_id, period, spent)
        if self._recovering:  # the re-seed on recovery, before Redis is marked up
            await self._redis.seed(key_id, period, spent)
        else:
            await self._health.attempt(self._redis.seed, key_id, period, spent)

    async def reserve(
        self, key_id: str, period: str, budget: float, amount: float
    ) -> SpendReservation:
        held = await self._health.attempt(self._redis.reserve, key_id, period, budget, amount)
        if held is not DOWN:
            if isinstance(held, HeldSpend):  # keep memory's view fresh for an outage
                self._memory.observe(key_id, period, held.spent_seen)
            return held
        return await apply_policy(
            self._policy,
            lambda: self._memory.reserve(key_id, period, budget, amount),
            lambda: HeldSpend(key_id, period, amount, id=UNCHECKED),
            "Budgets",
        )

    async def settle(self, reservation: SpendReservation, actual: float) -> None:
        backend = reservation.id[:1] if isinstance(reservation, HeldSpend) else ""
        if backend == MEMORY:
            await self._memory.settle(reservation, actual)
        key_id, period = reservation.key_id, reservation.period
        if backend not in (MEMORY, UNCHECKED):
            rid = reservation.id if isinstance(reservation, HeldSpend) else ""
            await self._send(_Pending(key_id, period, actual, rid, rid or self._redis.new_id()))
        elif actual > 0 and not self._health.up:
            slot = (key_id, period)
            self._unsent[slot] = self._unsent.get(slot, 0.0) + actual
        elif actual > 0:
            await self._send(_Pending(key_id, period, actual, "", self._redis.new_id()))

    async def _send(self, pending: _Pending) -> None:
        if self._health.up:
            pending.tried = time.monotonic()
            sent = await self._health.attempt(
                self._redis.add,
                pending.key_id,
                pending.period,
                pending.amount,
                pending.rid,
                pending.settle_id,
            )
            if sent is not DOWN:
                return
        self._pending.append(pending)

    async def _recover(self) -> None:
        """Redis answers again: send what it missed, then re-seed from the ledger (in that
        order: the re-seed takes the larger of Redis's and the ledger's figure, so spend
        sent after it would be counted twice when the ledger already has it)."""
        self._recovering = True
        try:
            await self._send_pending()
            if self._reseeder is not None:
                await self._reseeder.run()
        finally:
            self._recovering = False

    async def _send_pending(self) -> None:
        # Redis remembers a settle id for settle_memory seconds from when it ran (no
        # earlier than ``tried``); a little less, for clock drift between the two.
        forget_after = self._redis.settle_memory * 0.95
        while True:
            for (key_id, period), amount in self._unsent.items():
                self._pending.append(_Pending(key_id, period, amount, "", self._redis.new_id()))
            self._unsent.clear()
            if not self._pending:
                return
            pending = self._pending[0]
            now = time.monotonic()
            if pending.tried is None:
                pending.tried = now
            elif now - pending.tried > forget_after:
                log.warning(
                    "a spend settle of key %s that may have reached Redis %.0fs ago is not "
                    "sent again; the ledger re-seed restores it if it had not",
                    pending.key_id,
                    now - pending.tried,
                )
                self._pending.pop(0)
                continue
            try:
                await self._redis.add(
                    pending.key_id, pending.period, pending.amount, pending.rid, pending.settle_id
                )
            except UNAVAILABLE:
                raise  # kept: sent again at the next recovery, under the same id
            except Exception as exc:  # sending it again cannot help
                log.error("dropping a spend settle Redis refused (%s)", type(exc).__name__)
            self._pending.pop(0)

    async def spent(self, key_id: str, period: str) -> float:
        shared = await self._health.attempt(self._redis.spent, key_id, period)
        if shared is not DOWN:
            return shared
        return await self._memory.spent(key_id, period)

    async def aclose(self) -> None:
        if self._reseeder is not None:
            await self._reseeder.aclose()
        await self._health.aclose()
        await self._memory.aclose()
        await self._redis.aclose()


__all__ = [
    "UNAVAILABLE",
    "FailoverRateLimiter",
    "FailoverSpendCounter",
    "LimiterUnavailable",
    "RedisHealth",
    "apply_policy",
    "describe_url",
]
