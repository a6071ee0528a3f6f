"""Whether Redis answers: which errors mean "unreachable", and a background probe that
notices when it answers again (see ``limits.failover`` for what happens meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("llm_gateway.limits")

P = ParamSpec("P")
T = TypeVar("T")


class Down(enum.Enum):
    """What ``RedisHealth.attempt`` returns when Redis is (or just went) down."""

    DOWN = "down"


DOWN = Down.DOWN

# Errors that mean "Redis cannot serve us now", not "our script is wrong": unreachable,
# timed out, loading (a ConnectionError), a read-only replica after a failover, out of
# memory, no master. Other errors propagate: hiding a bug behind the policy would not help.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    OutOfMemoryError,
    MasterDownError,
    OSError,
    TimeoutError,
)


def describe_url(url: str) -> str:
    """``host:port/db`` of a Redis URL: never its user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    return f"{parts.scheme}://{host}:{port}{parts.path or ''}"


class RedisHealth:
    """Whether Redis answers. After a failure a background task probes until it does."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        where: str,
        probe_min: float = 0.5,
        probe_max: float = 5.0,
        timeout: float = 1.0,
    ) -> None:
        self.up = True
        self._client = client
        self._where = where
        self._probe_min = probe_min
        self._probe_max = probe_max
        self._timeout = timeout
        self._probe: asyncio.Task[None] | None = None
        self._on_recover: list[Callable[[], Awaitable[None]]] = []
        self.down_since: float | None = None

    def on_recover(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` when Redis answers again, before it is marked up (callbacks run
        in the order registered; one that fails does not stop the others)."""
        self._on_recover.append(callback)

    async def attempt(
        self, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T | Literal[Down.DOWN]:
        """``call`` on Redis if it is up; ``DOWN`` if it is down or this call finds it so
        (errors other than ``UNAVAILABLE`` propagate)."""
        if not self.up:
            return DOWN
        try:
            return await call(*args, **kwargs)
        except UNAVAILABLE as exc:
            self.failed(exc)
            return DOWN

    def failed(self, exc: BaseException) -> None:
        if not self.up:
            return
        self.up = False
        self.down_since = time.monotonic()
        log.warning(
            "Redis at %s is unreachable (%s); limits fall back to the configured policy",
            self._where,
            type(exc).__name__,
        )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._wait_for_redis())

    async def _wait_for_redis(self) -> None:
        delay = self._probe_min
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._probe_max)
            try:
                async with asyncio.timeout(self._timeout * 4):
                    await self._client.ping()
            except UNAVAILABLE:
                continue
            except Exception:  # an answer we cannot use: keep probing
                log.debug("Redis probe failed unexpectedly", exc_info=True)
                continue
            # Pooled connections idle through the outage may be dead sockets the pool has
            # not noticed; the first requests would trip over them and mark Redis down.
            with contextlib.suppress(Exception):
                await self._client.connection_pool.disconnect(inuse_connections=False)
            if await self._run_callbacks():
                break
        self.up = True
        self.down_since = None
        log.warning("Redis at %s answers again; limits are shared again", self._where)

    async def _run_callbacks(self) -> bool:
        """The recovery steps, in order. False when Redis failed again during one: then
        it stays down and the probe carries on (the steps run again, so what they send
        is not lost, and a replayed settle is applied once: see ``limits.failover``)."""
        for callback in self._on_recover:
            try:
                await callback()
            except UNAVAILABLE:
                log.debug("Redis failed during recovery", exc_info=True)
                return False
            except Exception as exc:
                # A bug in one step must not kill the probe and leave Redis down for
                # good: log it and carry on with the others.
                log.error("a Redis recovery step failed (%s)", type(exc).__name__, exc_info=True)
        return True

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None


__all__ = ["DOWN", "UNAVAILABLE", "Down", "RedisHealth", "describe_url"]
