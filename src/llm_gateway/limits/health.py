"""Whether Redis answers: which errors mean "unreachable", and a background probe that
notices when it answers again (see ``limits.failover`` for what happens meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
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
        self._on_recover.append(callback)

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
            try:
                async with asyncio.timeout(self._timeout * 4):
                    await self._client.ping()
            except UNAVAILABLE:
                delay = min(delay * 2, self._probe_max)
                continue
            except Exception:  # an answer we cannot use: keep probing
                log.debug("Redis probe failed unexpectedly", exc_info=True)
                delay = min(delay * 2, self._probe_max)
                continue
            break
        # Pooled connections idle through the outage may be dead sockets the pool has not
        # noticed; the first requests would trip over them and mark Redis down again.
        with contextlib.suppress(Exception):
            await self._client.connection_pool.disconnect(inuse_connections=False)
        for callback in self._on_recover:
            try:
                await callback()
            except UNAVAILABLE:
                # Gone again at once: stay up; the next failing call marks it down.
                log.debug("Redis failed during recovery", exc_info=True)
        self.up = True
        self.down_since = None
        log.warning("Redis at %s answers again; limits are shared again", self._where)

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None


__all__ = ["UNAVAILABLE", "RedisHealth", "describe_url"]
