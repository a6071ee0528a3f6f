"""Rate limiter and spend counter on Redis: exact across replicas.

Every check-and-reserve and every settle is one Lua script (``limits.redis_scripts``),
run with EVALSHA and, when the server does not know the script yet (first call, restart,
SCRIPT FLUSH), with EVAL, which also caches it. Redis runs a script alone, so concurrent
reserves from any number of processes see each other's entries: a limit of 60 admits 60.

The client should not retry commands by itself: a retried reserve whose reply was lost
would reserve twice. ``connect`` builds a client that way.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from llm_gateway.limits import redis_scripts
from llm_gateway.limits._common import REDIS, HeldSpend, IdSource
from llm_gateway.limits.base import (
    BudgetExceeded,
    LimitRule,
    LimitState,
    RateLimitExceeded,
    Reservation,
    SpendReservation,
)

NANO = 1_000_000_000  # spend is kept in nano-dollars
_DAY_MS = 86_400_000
# Every integer handed to a script stays below 2**53: Lua holds numbers as doubles, and
# HINCRBY refuses anything beyond int64. An absurd estimate (max_tokens of 10**30) is
# clamped here rather than failing inside Redis; a request that large is refused by its
# limit or budget anyway.
MAX_INT = 2**53 - 1


def clamp(value: int) -> int:
    """``value`` within ``0 .. MAX_INT``."""
    return min(max(value, 0), MAX_INT)


def connect(url: str, *, timeout: float = 1.0, max_connections: int = 64) -> aioredis.Redis:
    """A client with short socket timeouts, no automatic retries, and a bounded pool.

    Why 1 s and not less: a refused or reset connection fails at once whatever the
    timeout, so the timeout only matters for a server that stops answering. But it also
    fires when this process's event loop stalls (a burst of new connections, CPU
    contention), and a false "Redis is down" switches the replica to the fallback policy
    (with 0.25 s, a three-replica burst on a busy 2-core machine once admitted 78 of 60).

    When every connection is busy a call waits for one (up to four timeouts) instead of
    failing: a burst of requests is not an outage.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout * 4,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)
    return client


class _Script:
    """One Lua script: EVALSHA, falling back to EVAL on NOSCRIPT."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: aioredis.Redis, keys: list[str], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


_RESERVE = _Script(redis_scripts.RESERVE)
_SETTLE = _Script(redis_scripts.SETTLE)
_SPEND_RESERVE = _Script(redis_scripts.SPEND_RESERVE)
_SPEND_SETTLE = _Script(redis_scripts.SPEND_SETTLE)
_SPEND_SEED = _Script(redis_scripts.SPEND_SEED)


def _limit(value: int | None) -> int:
    return -1 if value is None else min(value, MAX_INT)


class RedisRateLimiter:
    """Sliding-window requests and tokens per subject, shared by every replica."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "llmgw",
        window: float = 60.0,
        owns_client: bool = True,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self._prefix = prefix
        self._window_us = round(window * 1_000_000)
        self._new_id = IdSource(REDIS)

    def _keys(self, subject: str) -> tuple[str, str]:
        zset = f"{self._prefix}:rl:{subject}"
        return zset, zset + ":t"

    async def reserve(self, rules: tuple[LimitRule, ...], tokens: int) -> Reservation:
        active = [rule for rule in rules if rule.rpm is not None or rule.tpm is not None]
        rid = self._new_id()
        if not active:
            return Reservation(rid, rules, tokens, time.time())
        keys: list[str] = []
        args: list[Any] = [self._window_us, rid, clamp(tokens)]
        for rule in active:
            keys.extend(self._keys(rule.subject))
            args += (_limit(rule.rpm), _limit(rule.tpm))
        reply = await _RESERVE(self._client, keys, args)
        if int(reply[0]) == 0:
            rule = active[int(reply[1]) - 1]
            dimension = "requests" if int(reply[2]) == 1 else "tokens"
            wait = int(reply[3]) / 1_000_000
            limit, used = int(reply[4]), int(reply[5])
            state = LimitState(limit, max(limit - used, 0), wait)
            raise RateLimitExceeded(rule.subject, dimension, wait, state)
        now = int(reply[1])
        requests: LimitState | None = None
        tokens_state: LimitState | None = None
        for index, rule in enumerate(active):
            count, used, head = (int(value) for value in reply[2 + 3 * index : 5 + 3 * index])
            reset = (head + self._window_us - now) / 1_000_000
            if rule.rpm is not None:
                left = rule.rpm - count
                if requests is None or left < requests.remaining:
                    requests = LimitState(rule.rpm, left, reset)
            if rule.tpm is not None:
                left = rule.tpm - used
                if tokens_state is None or left < tokens_state.remaining:
                    tokens_state = LimitState(rule.tpm, left, reset)
        return Reservation(rid, rules, tokens, now / 1_000_000, requests, tokens_state)

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        keys = [
            self._keys(rule.subject)[1]
            for rule in reservation.rules
            if rule.rpm is not None or rule.tpm is not None
        ]
        if keys:
            await _SETTLE(self._client, keys, [reservation.id, clamp(actual_tokens)])

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def period_ttl_ms(period: str) -> int:
    """How long a period's counter outlives its last write (-1: for ever).

    Knows the period ids of ``gate.period_id``: ``d2026-11-22`` (a day), ``m2026-11`` (a
    month) and ``total``. A daily counter untouched for three days belongs to a past day;
    a monthly one untouched for 63 days to a past month.
    """
    if period.startswith("d"):
        return 3 * _DAY_MS
    if period.startswith("m"):
        return 63 * _DAY_MS
    return -1


def _nano(dollars: float) -> int:
    if not dollars > 0:  # also NaN
        return 0
    return MAX_INT if dollars >= MAX_INT / NANO else clamp(round(dollars * NANO))


class RedisSpendCounter:
    """Spend per key and period with expiring in-flight reservations, on Redis.

    Reservations not settled within ``reservation_ttl`` seconds release their budget at
    the next reserve of that key and period (a crashed replica's calls). Every settle
    carries an id that Redis remembers for ``settle_memory`` seconds (default: the
    reservation ttl), so sending one again after a lost reply counts it once.
    ``on_unseeded`` is called when a reserve finds a period the ledger never seeded
    (its hash was lost and re-created by later settles).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "llmgw",
        reservation_ttl: float = 900.0,
        settle_memory: float | None = None,
        owns_client: bool = True,
        on_unseeded: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self._prefix = prefix
        self._ttl_us = round(reservation_ttl * 1_000_000)
        memory = reservation_ttl if settle_memory is None else settle_memory
        self.settle_memory = memory
        self._memory_us = max(round(memory * 1_000_000), 1)
        self._new_id = IdSource(REDIS)
        self.on_unseeded = on_unseeded

    def _keys(self, key_id: str, period: str) -> list[str]:
        spend = f"{self._prefix}:sp:{key_id}:{period}"
        return [spend, spend + ":r", spend + ":d"]

    def new_id(self) -> str:
        """A fresh settle id, for a caller that may have to send the same add again."""
        return self._new_id()

    async def seed(self, key_id: str, period: str, spent: float) -> None:
        """Seed the period's spend from the ledger unless it was seeded already (then
        Redis's figure, ahead of the ledger, stands); never lowers it."""
        keys = self._keys(key_id, period)[:1]
        await _SPEND_SEED(self._client, keys, [_nano(spent), period_ttl_ms(period)])

    async def reserve(
        self, key_id: str, period: str, budget: float, amount: float
    ) -> SpendReservation:
        rid = self._new_id()
        nano = _nano(amount)
        args = [_nano(budget), nano, rid, self._ttl_us, period_ttl_ms(period)]
        reply = await _SPEND_RESERVE(self._client, self._keys(key_id, period)[:2], args)
        if int(reply[3]) == 0 and self.on_unseeded is not None:
            self.on_unseeded()
        spent = int(reply[1]) / NANO
        if int(reply[0]) == 0:
            raise BudgetExceeded(key_id, budget, spent + int(reply[2]) / NANO)
        return HeldSpend(key_id, period, nano / NANO, id=rid, spent_seen=spent)

    async def settle(self, reservation: SpendReservation, actual: float) -> None:
        """Settle a reservation under its own id as the settle id (once, however often)."""
        rid = reservation.id if isinstance(reservation, HeldSpend) else ""
        await self.add(reservation.key_id, reservation.period, actual, rid, rid)

    async def add(
        self, key_id: str, period: str, amount: float, rid: str = "", settle_id: str = ""
    ) -> bool:
        """Add spend, releasing reservation ``rid`` if given and still held. A settle id
        already applied within ``settle_memory`` adds nothing (returns False)."""
        keys = self._keys(key_id, period)
        args = [rid, _nano(amount), period_ttl_ms(period), settle_id or self._new_id()]
        args.append(self._memory_us)
        return int(await _SPEND_SETTLE(self._client, keys, args)) == 1

    async def spent(self, key_id: str, period: str) -> float:
        value = await self._client.hget(self._keys(key_id, period)[0], "spent")
        return int(value) / NANO if value is not None else 0.0

    async def reserved(self, key_id: str, period: str) -> float:
        key = self._keys(key_id, period)[0]
        value = await self._client.hget(key, "reserved")
        return int(value) / NANO if value is not None else 0.0

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


__all__ = [
    "MAX_INT",
    "NANO",
    "RedisRateLimiter",
    "RedisSpendCounter",
    "clamp",
    "connect",
    "period_ttl_ms",
]
