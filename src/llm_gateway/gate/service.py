"""Builds and runs what the gate needs beside the request path: storage, the ledger writer,
limits, and the key snapshot (loaded at start, refreshed on change and on a timer).

Across replicas, a key change made through one gateway's admin API is announced on a
Redis channel so every replica reloads its snapshot at once; without Redis (one process)
the reload is local. A periodic refresh covers a missed announcement and changes made
straight in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any

from llm_gateway.config.schema import GatewayConfig
from llm_gateway.gate.gate import Gate, period_id
from llm_gateway.gate.keys import KeyRing
from llm_gateway.limits.base import RateLimiter, SpendCounter
from llm_gateway.routing.router import Router
from llm_gateway.storage.base import Storage

if TYPE_CHECKING:  # imported at start-up only: redis and SQLAlchemy cost import time
    from llm_gateway.limits import Limits

log = logging.getLogger("llm_gateway.gate")

LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class OpenModeRefused(RuntimeError):
    """Open mode (no admin key, no keys) on an address other machines can reach."""


class AccessService:
    def __init__(self, config: GatewayConfig, gate: Gate, router: Router) -> None:
        self._config = config
        self.gate = gate
        self.router = router
        self.storage: Storage | None = None
        self.writer: Any = None  # storage.writer.UsageWriter once started
        self.limiter: RateLimiter | None = None
        self.spend: SpendCounter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._limits: Limits | None = None
        self._redis: Any = None
        self._channel = f"{config.redis.prefix}:keys-changed"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        from llm_gateway.limits import build as build_limits
        from llm_gateway.storage import default_journal_path, open_storage
        from llm_gateway.storage.writer import UsageWriter

        config = self._config
        self._limits = build_limits(config.redis)
        self.limiter, self.spend = self._limits.limiter, self._limits.spend
        self.gate.attach_limits(self.limiter, self.spend)
        self.router.attach_limiter(self.limiter)
        storage = open_storage(config.storage.url)
        self.storage = storage
        await storage.start()
        store = config.storage
        self.writer = UsageWriter(
            storage,
            batch_size=store.batch_size,
            flush_seconds=store.flush_seconds,
            max_buffered=store.max_buffered_records,
            journal_path=store.journal_path or default_journal_path(store.url),
        )
        await self.writer.start()
        self.gate.add_observer(self.writer.submit)
        await self.reload_keys()
        if self.gate.open_mode and not is_loopback(config.server.host):
            raise OpenModeRefused(
                f"Refusing to serve on {config.server.host}: there is no admin key and no "
                "API key, so anyone who can reach this address could use every provider. "
                "Set auth.admin_key (or LLM_GATEWAY_ADMIN_KEY) and create keys, or bind "
                "to 127.0.0.1."
            )
        self._tasks.append(asyncio.create_task(self._refresh_loop()))
        if config.redis.url is not None:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(config.redis.url, socket_timeout=1.0)
            self._tasks.append(asyncio.create_task(self._listen_for_changes()))

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.gate.drain()
        if self.writer is not None:
            await self.writer.aclose()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
        if self._limits is not None:
            with contextlib.suppress(Exception):
                await self._limits.aclose()
        if self.storage is not None:
            await self.storage.aclose()

    # -- health of what we depend on ------------------------------------------------------

    async def ping_database(self) -> None:
        """Raises when the database does not answer (one indexed lookup)."""
        assert self.storage is not None
        await self.storage.get_key("health-check")

    async def ping_redis(self) -> None:
        assert self._redis is not None
        await self._redis.ping()

    # -- keys -----------------------------------------------------------------------------

    async def reload_keys(self) -> None:
        """Replace the gate's snapshot with the store's keys and seed budget counters."""
        assert self.storage is not None
        keys = await self.storage.list_keys()
        self.gate.set_keys(KeyRing(keys))
        spend = self.spend
        budgeted = [k for k in keys if k.budget is not None and k.revoked_at is None]
        if spend is None or not budgeted:
            return
        now = time.time()
        periods = {k.id: period_id(k.budget_period, now) for k in budgeted}
        spent = await self.storage.spend_by_key({kid: start for kid, (_, start) in periods.items()})
        for key_id, (period, _) in periods.items():
            await spend.seed(key_id, period, spent.get(key_id, 0.0))

    async def keys_changed(self) -> None:
        """After an admin change: reload here, and tell the other replicas."""
        await self.reload_keys()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.publish(self._channel, b"1")

    async def _refresh_loop(self) -> None:
        interval = self._config.auth.keys_refresh_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload_keys()
            except Exception as exc:  # the database is down: keep serving the snapshot
                log.warning("could not refresh API keys (serving the last snapshot): %s", exc)

    async def _listen_for_changes(self) -> None:
        import redis.asyncio as redis

        # Its own client: a subscription waits on its socket indefinitely, so it must not
        # inherit the short timeout of the command client.
        listener = redis.Redis.from_url(self._config.redis.url or "", health_check_interval=30)
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
            await self.reload_keys()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    try:
                        await self.reload_keys()
                    except Exception as exc:
                        log.warning("could not reload API keys after a change: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


__all__ = ["AccessService", "OpenModeRefused", "is_loopback"]
