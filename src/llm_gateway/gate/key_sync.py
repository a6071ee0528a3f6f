"""Keeps every replica's key snapshot current: a Redis channel and a timer.

A key change made through one gateway's admin API is announced on a Redis channel, and
every replica listening reloads its snapshot at once. A periodic reload covers a missed
announcement (the channel was down) and changes made straight in the database. Without
Redis (one process) only the timer runs; the process that made a change reloads itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("llm_gateway.gate")

Reload = Callable[[], Awaitable[None]]


class KeySync:
    def __init__(
        self,
        reload: Reload,
        *,
        refresh_seconds: float,
        redis_url: str | None,
        channel: str,
    ) -> None:
        self._reload = reload
        self._refresh_seconds = refresh_seconds
        self._redis_url = redis_url
        self._channel = channel
        self._publisher: Any = None  # a redis.asyncio client, with Redis configured
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, publisher: Any) -> None:
        """``publisher``: the command client announcements go through (None: no Redis)."""
        self._publisher = publisher
        self._tasks.append(asyncio.create_task(self._refresh_loop()))
        if self._redis_url is not None:
            self._tasks.append(asyncio.create_task(self._listen_for_changes(self._redis_url)))

    async def announce(self) -> None:
        """Tell the other replicas that keys changed (best effort: the timer is the net)."""
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.publish(self._channel, b"1")

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self._reload()
            except Exception as exc:  # the database is down: keep serving the snapshot
                log.warning("could not refresh API keys (serving the last snapshot): %s", exc)

    async def _listen_for_changes(self, url: str) -> None:
        import redis.asyncio as redis

        # Its own client: a subscription waits on its socket indefinitely, so it must not
        # inherit the short timeout of the command client.
        listener = redis.Redis.from_url(url, health_check_interval=30)
        delay = 0.5
        try:
            while True:
                try:
                    await self._listen(listener)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "key-change channel lost (%s); retrying in %.1fs",
                        type(exc).__name__,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                else:
                    delay = 0.5
        finally:
            with contextlib.suppress(Exception):
                await listener.aclose()

    async def _listen(self, listener: Any) -> None:
        pubsub = listener.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            # Reload once subscribed: a change made while we were not listening counts too.
            await self._reload()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    try:
                        await self._reload()
                    except Exception as exc:
                        log.warning("could not reload API keys after a change: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


__all__ = ["KeySync"]
