"""The status feed's broadcaster: one frame encoded once, queued for every connection.

The broadcaster never awaits a client: ``broadcast`` encodes the frame once and offers it
to each connection's bounded queue with ``put_nowait``. A connection whose queue is full
(a dead or slow client that has stopped reading) is dropped on the spot: its ``dropped``
event fires and its handler closes the socket, while every other connection keeps getting
every frame. Each connection sends from its own queue in its own task.

Who sees what: provider frames (``status``, ``provider_state``) go to every connection;
a ``stats`` frame (one finished request) goes only to connections that see all traffic
(the admin key, or anyone in open mode) and to connections made with the virtual key the
request used. Other tenants' request ids, models, costs and errors are never shown.

Every frame a connection is sent carries ``seq``, counted per connection (the status sent
on connect is 0, the next frame it gets is 1), so a client can tell it missed nothing and
learns nothing from the numbering about traffic it does not see. The frame is encoded
once; the number is spliced in per connection.

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
    """One connection's bounded queue of encoded frames, and what it may see."""

    __slots__ = ("close_code", "dropped", "key_id", "queue", "sees_all", "seq")

    def __init__(self, size: int, *, key_id: str | None = None, sees_all: bool = True) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(size)
        self.dropped = asyncio.Event()
        # 1013 "try again later" for a client that fell behind; 1001 at shutdown.
        self.close_code = CLOSE_TOO_SLOW
        self.key_id = key_id  # its virtual key: it sees that key's stats
        self.sees_all = sees_all  # admin or open mode: every request's stats
        self.seq = 0

    def may_see(self, key_id: str | None) -> bool:
        return self.sees_all or (key_id is not None and key_id == self.key_id)

    def push(self, body: str) -> bool:
        """Queues an encoded frame (a JSON object without ``seq``) numbered for this
        connection; False (and ``dropped`` set) when the queue is full."""
        self.seq += 1
        return self.offer(f'{body[:-1]},"seq":{self.seq}}}')

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
        self._task: asyncio.Task[None] | None = None
        self.dropped_total = 0  # connections dropped for not keeping up
        tracker.subscribe(self._on_change)

    # -- connections -------------------------------------------------------------------

    def subscribe(self, *, key_id: str | None = None, sees_all: bool = True) -> Subscription:
        """A new connection: its queue starts with the full status (``seq`` 0), then every
        broadcast it may see. ``key_id``/``sees_all``: see the module's "who sees what"."""
        sub = Subscription(self.queue_size, key_id=key_id, sees_all=sees_all)
        sub.offer(encode(self.status(seq=0)))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def __len__(self) -> int:
        return len(self._subs)

    def status(self, *, seq: int) -> dict[str, Any]:
        """The full status frame, numbered ``seq`` (a reply repeats the connection's last
        number: it is an answer, not a broadcast)."""
        frame = status_frame(self._tracker, self._clock())
        frame["seq"] = seq
        return frame

    # -- broadcasting --------------------------------------------------------------------

    def broadcast(self, frame: dict[str, Any]) -> int:
        """Sends ``frame`` to every connection without waiting; returns how many took it."""
        return self._send(frame, everyone=True, key_id=None)

    def _send(self, frame: dict[str, Any], *, everyone: bool, key_id: str | None) -> int:
        if not self._subs:
            return 0
        body = encode(frame)
        taken = 0
        for sub in list(self._subs):
            if not everyone and not sub.may_see(key_id):
                continue
            if sub.push(body):
                taken += 1
            else:
                self._subs.discard(sub)
                self.dropped_total += 1
                log.warning("status feed: dropped a client that stopped reading")
        return taken

    def _on_change(self, change: StateChange) -> None:
        self.broadcast(change_frame(change, self._tracker.overall()))

    def on_usage(self, record: UsageRecord) -> None:
        """The gate's usage observer: one ``stats`` frame per finished request, for those
        allowed to see it."""
        if self._subs:
            self._send(stats_frame(record), everyone=False, key_id=record.key_id)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._periodic())

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._subs:
                self.broadcast(status_frame(self._tracker, self._clock()))

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
