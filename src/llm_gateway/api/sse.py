"""Server-sent events over raw ASGI: flushed frame by frame, never compressed or buffered.

``SSEResponse`` sends headers lazily with the first frame, so a failure before the first
event can still be answered with a proper HTTP error status. A single ``HeartbeatTicker``
serves every open stream: once a second it sends a comment to streams that have been
silent for the heartbeat interval (starting the response if needed), which costs nothing
per chunk, unlike a timeout around every upstream read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from llm_gateway.api.asgi import Send

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    # Tells nginx-style proxies not to buffer the stream.
    (b"x-accel-buffering", b"no"),
]
HEARTBEAT = b": keep-alive\n\n"


class SSEResponse:
    __slots__ = ("_headers", "_send", "closed", "last_write", "started")

    def __init__(self, send: Send, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self._send = send
        self._headers = [*SSE_HEADERS, *headers]
        self.started = False
        self.closed = False
        self.last_write = time.monotonic()

    def add_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Adds response headers; ignored once the response has started."""
        if not self.started:
            self._headers.extend(headers)

    async def _start(self) -> None:
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": self._headers})

    async def write(self, data: bytes) -> None:
        if not self.started:
            await self._start()
        self.last_write = time.monotonic()
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def close(self, data: bytes = b"") -> None:
        if self.closed:
            return
        if not self.started:
            await self._start()
        self.closed = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def heartbeat(self) -> None:
        if self.closed:
            return
        with contextlib.suppress(Exception):  # a gone client is handled by its own handler
            await self.write(HEARTBEAT)


class HeartbeatTicker:
    """Keeps silent streams alive with SSE comments; one task for all streams."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._streams: set[SSEResponse] = set()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def add(self, stream: SSEResponse) -> None:
        self._streams.add(stream)

    def discard(self, stream: SSEResponse) -> None:
        self._streams.discard(stream)

    def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        period = min(1.0, self.interval / 2)
        while True:
            await asyncio.sleep(period)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        for stream in self._streams:
            if not stream.closed and now - stream.last_write >= self.interval:
                stream.last_write = now
                task = asyncio.get_running_loop().create_task(stream.heartbeat())
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
