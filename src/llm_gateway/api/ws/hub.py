"""The status feed's broadcaster: one frame encoded once, queued for every connection.

The broadcaster never awaits a client: ``broadcast`` encodes the frame once and offers it
to each connection's bounded queue with ``put_nowait``. A connection whose queue is full
(a dead or slow client that has stopped reading) is dropped on the spot: its ``dropped``
event fires and its handler closes the socket, while every other connection keeps getting
every frame. Each connection sends from its own queue in its own task.

Every broadcast frame carries ``seq``, one counter for the whole feed, so a client can tell
it missed nothing; the status a connection gets on connect carries the current ``seq``.

Sources: the tracker's state changes (pushed at once), the gate's usage records (one
``stats`` frame per finished request) and a periodic full ``status`` frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from llm_gateway.core.records import UsageRecord
from llm_gateway.status.frames import change_frame, stats_frame, status_frame
from llm_gateway.status.tracker import ProviderTracker, StateChange

log = logging.getLogger("llm_gateway.status")

DEFAULT_QUEUE_SIZE = 256
CLOSE_TOO_SLOW = 1013
CLOSE_GOING_AWAY = 1001


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class Subscription:
    """One connection's bounded queue of encoded frames."""

    __slots__ = ("close_code", "dropped", "queue")

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(size)
        self.dropped = asyncio.Event()
        # 1013 "try again later" for a client that fell behind; 1001 at shutdown.
        self.close_code = CLOSE_TOO_SLOW

    def offer(self, text: str) -> bool:
        """Queues a frame without waiting; False (and ``dropped`` set) when it is full."""
        if self.dropped.is_set():
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped.set()
            return False
        return True


class StatusHub:
    def __init__(
        self,
        tracker: ProviderTracker,
        *,
        interval: float,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tracker = tracker
        self.interval = interval
        self.queue_size = queue_size
        self._clock = clock
        self._subs: set[Subscription] = set()
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped_total = 0  # connections dropped for not keeping up
        tracker.subscribe(self._on_change)

    # -- connections -------------------------------------------------------------------

    def subscribe(self) -> Subscription:
        """A new connection: its queue starts with the full status, then every broadcast."""
        sub = Subscription(self.queue_size)
        sub.offer(encode(self.status(seq=self._seq)))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def __len__(self) -> int:
        return len(self._subs)

    def status(self, *, seq: int | None = None) -> dict[str, Any]:
        frame = status_frame(self._tracker, self._clock())
        frame["seq"] = self._seq if seq is None else seq
        return frame

    # -- broadcasting --------------------------------------------------------------------

    def broadcast(self, frame: dict[str, Any]) -> int:
        """Sends ``frame`` to every connection without waiting; returns how many took it."""
        self._seq += 1
        frame["seq"] = self._seq
        if not self._subs:
            return 0
        text = encode(frame)
        taken = 0
        for sub in list(self._subs):
            if sub.offer(text):
                taken += 1
            else:
                self._subs.discard(sub)
                self.dropped_total += 1
                log.warning("status feed: dropped a client that stopped reading")
        return taken

    def broadcast_threadsafe(self, frame: dict[str, Any]) -> None:
        """``broadcast`` from another thread (a producer off the event loop, or a test)."""
        if self._loop is None:
            raise RuntimeError("the status hub has not started")
        self._loop.call_soon_threadsafe(self.broadcast, frame)

    def _on_change(self, change: StateChange) -> None:
        self.broadcast(change_frame(change, self._tracker.overall()))

    def on_usage(self, record: UsageRecord) -> None:
        """The gate's usage observer: one ``stats`` frame per finished request."""
        if self._subs:
            self.broadcast(stats_frame(record))

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._periodic())

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._subs:
                self.broadcast(self.status())

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in list(self._subs):
            sub.close_code = CLOSE_GOING_AWAY
            sub.dropped.set()  # their handlers close the sockets
        self._subs.clear()
