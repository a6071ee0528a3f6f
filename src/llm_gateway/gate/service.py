"""Builds and runs what the gate needs beside the request path: storage, the ledger writer,
limits, and the key snapshot (loaded at start; kept current by ``key_sync.KeySync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from llm_gateway.config.schema import GatewayConfig
from llm_gateway.core.records import UsageRecord, VirtualKey
from llm_gateway.gate.gate import Gate, period_id
from llm_gateway.gate.key_sync import KeySync
from llm_gateway.gate.keys import KeyRing
from llm_gateway.gate.loopback import is_loopback
from llm_gateway.limits.base import RateLimiter, SpendCounter
from llm_gateway.routing.router import Router
from llm_gateway.storage.base import Storage

if TYPE_CHECKING:  # imported at start-up only: redis and SQLAlchemy cost import time
    from llm_gateway.limits import Limits

log = logging.getLogger("llm_gateway.gate")

BACKGROUND_OPEN_DELAY_SECONDS = 0.5
STORAGE_WAIT_SECONDS = 10.0  # an admin call waits this long for storage still opening


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
        self._pending: list[UsageRecord] = []
        self.storage_ready = asyncio.Event()
        self._opening: asyncio.Task[None] | None = None
        self._redis: Any = None
        self._key_sync = KeySync(
            self.reload_keys,
            refresh_seconds=config.auth.keys_refresh_seconds,
            redis_url=config.redis.url,
            channel=f"{config.redis.prefix}:keys-changed",
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Ready to serve when this returns; the ledger may still be opening behind it.

        With the default SQLite file the keys are read with ``sqlite3`` in milliseconds
        and the real storage (SQLAlchemy, migrations, the writer; about a second) opens in
        the background, its records buffered until then. Any other database is opened
        before serving: keys must be known before the first request is judged.
        """
        from llm_gateway.limits import build as build_limits

        config = self._config
        self._limits = build_limits(config.redis)
        self._limits.on_reseed(self.reseed)
        self.limiter, self.spend = self._limits.limiter, self._limits.spend
        self.gate.attach_limits(self.limiter, self.spend)
        self.router.attach_limiter(self.limiter)
        self.gate.add_observer(self._submit)
        if not await self._read_keys_fast():
            await self._open_storage()
            await self.reload_keys()
        else:
            self._opening = asyncio.create_task(self._open_storage_in_background())
            self._tasks.append(self._opening)
        if self.gate.open_mode and not is_loopback(config.server.host):
            raise OpenModeRefused(
                f"Refusing to serve on {config.server.host}: there is no admin key and no "
                "API key, so anyone who can reach this address could use every provider. "
                "Set auth.admin_key (or LLM_GATEWAY_ADMIN_KEY) and create keys, or bind "
                "to 127.0.0.1."
            )
        if config.redis.url is not None:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(config.redis.url, socket_timeout=1.0)
        self._key_sync.start(self._redis)

    def _submit(self, record: UsageRecord) -> None:
        writer = self.writer
        if writer is not None:
            writer.submit(record)
        else:
            self._pending.append(record)  # the ledger is still opening: kept until it is

    async def _read_keys_fast(self) -> bool:
        """The key snapshot (and budget spend) straight from the SQLite file, if it is one."""
        from llm_gateway.storage.sqlite_peek import read_keys, read_spend, sqlite_file

        path = sqlite_file(self._config.storage.url)
        if path is None:
            return False
        try:
            keys = read_keys(path)
            starts = self._budget_starts(keys)
            spent = read_spend(path, {k: start for k, (_, start) in starts.items()})
        except sqlite3.Error as exc:  # locked or unreadable: open it the slow way
            log.info("reading keys directly from %s failed (%s); opening storage first", path, exc)
            return False
        self.gate.set_keys(KeyRing(keys))
        await self._seed(starts, spent)
        return True

    async def _start_writer(self) -> None:
        """The ledger writer, writing through to the storage once it is open.

        It starts before the storage does, so records are never held anywhere but in the
        writer: while the database is not open yet (or will not open), its inserts fail
        as an outage and the writer keeps them, spilling to the journal past
        ``storage.max_buffered_records``.
        """
        if self.writer is not None:
            return
        from llm_gateway.storage import default_journal_path
        from llm_gateway.storage.writer import UsageWriter

        store = self._config.storage
        writer = UsageWriter(
            _WhenOpen(self),
            batch_size=store.batch_size,
            flush_seconds=store.flush_seconds,
            max_buffered=store.max_buffered_records,
            journal_path=store.journal_path or default_journal_path(store.url),
        )
        await writer.start()
        for record in self._pending:
            writer.submit(record)
        self._pending.clear()
        self.writer = writer

    async def _open_storage(self) -> None:
        from llm_gateway.storage import open_storage

        await self._start_writer()
        storage = open_storage(self._config.storage.url)
        await storage.start()
        self.storage = storage
        self.storage_ready.set()

    async def _open_storage_in_background(self) -> None:
        # Not urgent (records wait in memory): let the first requests through first, as
        # the imports below hold the interpreter for a good part of their ~0.5-1 s.
        await asyncio.sleep(BACKGROUND_OPEN_DELAY_SECONDS)
        # The imports run off the event loop, so requests keep flowing meanwhile.
        await asyncio.to_thread(_import_storage_modules)
        delay = 0.5
        while True:
            try:
                await self._open_storage()
                await self.reload_keys()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("could not open storage (retrying in %.1fs): %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def aclose(self) -> None:
        await self._key_sync.aclose()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.gate.drain()
        if self.writer is None and self._pending:
            # Shut down before the ledger's writer started: start it now; what the
            # database will not take goes to the journal on close.
            try:
                await self._start_writer()
            except Exception as exc:
                log.error("%d usage records could not be kept: %s", len(self._pending), exc)
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
        storage = await self.wait_for_storage()
        await storage.get_key("health-check")

    async def wait_for_storage(self) -> Storage:
        """The storage, once open (it opens behind start-up with SQLite); waits at most
        ``STORAGE_WAIT_SECONDS``."""
        if self.storage is None:
            try:
                async with asyncio.timeout(STORAGE_WAIT_SECONDS):
                    await self.storage_ready.wait()
            except TimeoutError:
                from llm_gateway.storage.base import StorageUnavailableError

                raise StorageUnavailableError("storage is still opening") from None
        assert self.storage is not None
        return self.storage

    async def ping_redis(self) -> None:
        assert self._redis is not None
        await self._redis.ping()

    # -- keys -----------------------------------------------------------------------------

    async def reload_keys(self) -> None:
        """Replace the gate's snapshot with the store's keys and seed budget counters."""
        if self.storage is None:
            return  # still opening: the snapshot read at start-up stands
        keys = await self.storage.list_keys()
        self.gate.set_keys(KeyRing(keys))
        starts = self._budget_starts(keys)
        if starts and self.spend is not None:
            spent = await self.storage.spend_by_key({k: s for k, (_, s) in starts.items()})
            await self._seed(starts, spent)

    async def reseed(self) -> None:
        """Seed the budget counters again from the ledger: Redis lost them (restart,
        FLUSH, eviction) or answers again after an outage. Called by the limits; ``seed``
        never lowers a counter, and a counter Redis kept is left alone."""
        storage = self.storage
        if storage is None or self.spend is None:
            return  # the ledger is still opening: the start-up seed stands
        if self.writer is not None:
            await self.writer.flush()  # this replica's latest records into the ledger first
        keys = await storage.list_keys()
        starts = self._budget_starts(keys)
        if starts:
            spent = await storage.spend_by_key({k: s for k, (_, s) in starts.items()})
            await self._seed(starts, spent)

    @staticmethod
    def _budget_starts(keys: list[VirtualKey]) -> dict[str, tuple[str, float]]:
        """Each budgeted key's current period: its id and start."""
        now = time.time()
        return {
            k.id: period_id(k.budget_period, now)
            for k in keys
            if k.budget is not None and k.revoked_at is None
        }

    async def _seed(self, starts: dict[str, tuple[str, float]], spent: dict[str, float]) -> None:
        if self.spend is None:
            return
        for key_id, (period, _) in starts.items():
            await self.spend.seed(key_id, period, spent.get(key_id, 0.0))

    async def keys_changed(self) -> None:
        """After an admin change: reload here, and tell the other replicas."""
        await self.reload_keys()
        await self._key_sync.announce()


class _WhenOpen:
    """The writer's store: the storage once it is open; an outage until then."""

    def __init__(self, access: AccessService) -> None:
        self._access = access

    async def insert_usage(self, records: list[UsageRecord]) -> int:
        storage = self._access.storage
        if storage is None:
            from llm_gateway.storage.base import StorageUnavailableError

            raise StorageUnavailableError("storage is not open yet")
        return await storage.insert_usage(records)


def _import_storage_modules() -> None:
    import llm_gateway.storage.sql
    import llm_gateway.storage.writer  # noqa: F401


__all__ = ["AccessService", "OpenModeRefused"]
