"""A lean, pooled HTTP/1.1 client for upstream LLM APIs.

Why not httpx or aiohttp: the upstream call is most of the gateway's own overhead, and
both spend far more Python per request than the exchange needs (measured: an httpx proxy
serves ~210 req/s, aiohttp ~1,800). This client is one ``asyncio.Protocol`` per socket
feeding ``httptools``' C parser, a LIFO keep-alive pool, one timer handle per exchange and
no task per request. It speaks exactly what an LLM upstream needs: one origin per client,
HTTP/1.1 keep-alive, ``content-length``/chunked/read-until-close bodies, and streaming
with backpressure. No redirects, no cookies, no proxies, no compression (we ask for
``identity`` so bodies can be relayed and parsed as they arrive).

Closing matters as much as speed: leaving a stream early, or cancelling the awaiting task,
aborts that socket at once so the upstream sees the client go away and stops generating
(and stops billing). Such a socket never returns to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import msgspec
from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from llm_gateway.core.context import CALL_LIMITS
from llm_gateway.http.errors import (
    ConnectError,
    ConnectTimeout,
    DeadlineExceeded,
    FirstByteTimeout,
    HttpError,
    ReadTimeout,
    RemoteProtocolError,
)

__all__ = ["HttpClient", "HttpResponse", "HttpStream"]

# A stream consumer may fall this far behind before we stop reading the socket (the
# kernel buffers, then TCP flow control, then push back on the upstream itself).
_HIGH_WATER = 1 << 20
_LOW_WATER = 256 << 10
# Bodies up to this size are copied into the request bytes (one write, one syscall);
# larger ones are written after the head so a multi-MiB body is not copied again.
_JOIN_LIMIT = 64 << 10
# Headers the client owns: a caller's value would break framing or keep-alive.
_MANAGED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_decode_json = msgspec.json.decode


class _StaleConnectionError(ConnectError):
    """A reused keep-alive socket died before answering; the request is retried once."""


class HttpResponse:
    """A complete response. ``headers`` has lower-case names, repeats joined with ", "."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return _decode_json(self.body)

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status} ({len(self.body)} bytes)>"


class _Connection(asyncio.Protocol):
    """One socket and its parser; carries one exchange at a time.

    Parser callbacks fill the exchange state below and wake the single waiting consumer
    (``_waiter``). A consumer waits for the whole response (``request``) or, in streaming
    mode, for headers and then each body piece.
    """

    __slots__ = (
        "_body",
        "_buffered",
        "_busy",
        "_client",
        "_closed",
        "_deadline",
        "_default_read_timeout",
        "_done",
        "_exc",
        "_first_byte_timeout",
        "_framed",
        "_got_bytes",
        "_head_only",
        "_headers",
        "_idle",
        "_keep_alive",
        "_last_rx",
        "_loop",
        "_parser",
        "_parser_dirty",
        "_paused",
        "_read_timeout",
        "_reused",
        "_status",
        "_streaming",
        "_timer",
        "_transport",
        "_waiter",
    )

    def __init__(
        self,
        client: HttpClient,
        loop: asyncio.AbstractEventLoop,
        read_timeout: float | None,
        first_byte_timeout: float | None,
    ) -> None:
        self._client = client
        self._loop = loop
        self._default_read_timeout = read_timeout
        self._deadline: float | None = None
        self._read_timeout = read_timeout
        self._first_byte_timeout = first_byte_timeout
        self._transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._parser_dirty = False
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._headers: dict[str, str] = {}
        self._status = 0
        self._busy = False
        self._idle = False
        self._reused = False
        self._closed = False
        self._done = False
        self._exc: HttpError | None = None
        self._framed = False
        self._got_bytes = False
        self._head_only = False
        self._keep_alive = False
        self._streaming = False
        self._paused = False
        self._last_rx = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Requests are written in one piece: never let Nagle hold one back.
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if not self._busy:
            # Bytes nobody asked for: the stream is out of sync, never reuse it.
            self._keep_alive = False
            self._close()
            return
        if not self._got_bytes:
            self._got_bytes = True
            if self._read_timeout != self._first_byte_timeout:
                # The first byte ends the wait for an answer (its own limit); from here
                # on the limit is the idle gap between bytes.
                self._cancel_timer()
                if self._read_timeout is not None or self._deadline is not None:
                    now = self._loop.time()
                    self._last_rx = now
                    self._timer = self._loop.call_at(
                        self._due(now, self._read_timeout), self._on_timer
                    )
        elif self._timer is not None:
            self._last_rx = self._loop.time()
        try:
            self._parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade) as exc:
            if self._done:  # trailing garbage after a complete response
                self._keep_alive = False
                self._close()
            else:
                self._fail(
                    RemoteProtocolError(f"malformed response from {self._client.origin}: {exc}")
                )

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost decides what EOF meant

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()
        if self._idle:
            self._client._idle_lost(self)
            return
        if not self._busy or self._done or self._exc is not None:
            return
        if self._status and not self._framed and not self._head_only:
            # Neither content-length nor chunked: the body is everything until close.
            self._keep_alive = False
            self._finish()
            return
        origin = self._client.origin
        if not self._got_bytes:
            reason = f"{origin} closed the connection before responding"
            if exc is not None:
                reason = f"{reason}: {exc}"
            self._exc = _StaleConnectionError(reason) if self._reused else ConnectError(reason)
        else:
            self._exc = RemoteProtocolError(f"{origin} closed the connection mid-response")
        self._wake()

    # --- httptools callbacks ---------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        headers = self._headers
        old = headers.get(key)
        text = value.decode("latin-1")
        headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        if self._done:  # a second response nobody asked for
            self._keep_alive = False
            return
        status = self._parser.get_status_code()
        if status < 200:
            # An interim 1xx response: its headers are not the final response's.
            self._headers = {}
            return
        self._status = status
        headers = self._headers
        self._framed = "content-length" in headers or (
            "chunked" in headers.get("transfer-encoding", "").lower()
        )
        if self._head_only:
            # The parser cannot know the request was HEAD and would wait for the
            # advertised body; finish here and use a fresh parser for the next exchange.
            self._parser_dirty = True
            self._keep_alive = self._parser.get_http_version() == "1.1" and (
                "close" not in headers.get("connection", "").lower()
            )
            self._finish()
            return
        self._keep_alive = self._parser.should_keep_alive()
        if self._streaming:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self._done:  # body bytes after a HEAD response or after completion
            self._keep_alive = False
            return
        self._body.append(body)
        if self._streaming:
            self._buffered += len(body)
            if self._buffered > _HIGH_WATER and not self._paused:
                self._paused = True
                cast(asyncio.Transport, self._transport).pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if not self._status:  # end of an interim 1xx response
            return
        if self._done:
            # After HEAD the parser may end the (empty) message itself; anything else
            # completing after we finished is a response nobody asked for.
            if not self._head_only:
                self._keep_alive = False
            return
        self._finish()

    # --- exchange --------------------------------------------------------------------

    async def exchange(
        self, head: bytes, tail: bytes | None, head_only: bool, streaming: bool
    ) -> None:
        """Send a request and wait for the whole response, or only its headers if streaming."""
        transport = self._transport
        if self._closed or transport is None or transport.is_closing():
            cls = _StaleConnectionError if self._reused else ConnectError
            raise cls(f"connection to {self._client.origin} closed before the request was sent")
        if self._parser_dirty:
            self._parser = HttpResponseParser(self)
            self._parser_dirty = False
        self._status = 0
        self._headers = {}
        self._body.clear()
        self._buffered = 0
        self._done = False
        self._exc = None
        self._got_bytes = False
        self._framed = False
        self._head_only = head_only
        self._streaming = streaming
        self._busy = True
        limits = CALL_LIMITS.get()
        if limits is None:
            self._read_timeout = self._default_read_timeout
            self._deadline = None
        else:
            idle = limits.idle_timeout
            self._read_timeout = idle if idle is not None else self._default_read_timeout
            self._deadline = limits.deadline
        if tail is None:
            transport.write(head)
        else:
            transport.writelines((head, tail))
        timeout = self._first_byte_timeout
        if timeout is not None or self._deadline is not None:
            now = self._loop.time()
            self._last_rx = now
            self._timer = self._loop.call_at(self._due(now, timeout), self._on_timer)
        if streaming:
            while not self._status and not self._done and self._exc is None:
                await self.wait()
            if self._exc is not None and not self._status:
                raise self._exc
        else:
            while not self._done and self._exc is None:
                await self.wait()
            if self._exc is not None:
                raise self._exc

    async def wait(self) -> None:
        """Sleep until a parser event; a cancelled waiter aborts the socket at once."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        except BaseException:
            self._waiter = None
            self.abort()
            raise

    def take_body(self) -> bytes:
        body = self._body
        if not body:
            return b""
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        return data

    def consumed(self, n: int) -> None:
        """A stream consumer took ``n`` bytes; resume reading once it has caught up."""
        self._buffered -= n
        if self._paused and self._buffered <= _LOW_WATER:
            self._resume()

    def reusable(self) -> bool:
        return (
            self._done
            and self._keep_alive
            and self._exc is None
            and not self._closed
            and not cast(asyncio.Transport, self._transport).is_closing()
        )

    def alive(self) -> bool:
        return not self._closed and not cast(asyncio.Transport, self._transport).is_closing()

    def abort(self) -> None:
        """Close now, dropping buffers: the peer sees the connection go away at once."""
        self._cancel_timer()
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.abort()

    # --- internals -------------------------------------------------------------------

    def _finish(self) -> None:
        self._done = True
        self._cancel_timer()
        if self._paused:
            self._resume()
        if not self._keep_alive:
            self._close()
        self._wake()

    def _fail(self, exc: HttpError) -> None:
        if self._exc is None:
            self._exc = exc
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def _resume(self) -> None:
        self._paused = False
        if not self._closed:
            cast(asyncio.Transport, self._transport).resume_reading()
            if not self._done and self._read_timeout is not None and self._timer is None:
                # The idle clock restarts: time spent paused was the consumer's, not the upstream's.
                now = self._loop.time()
                self._last_rx = now
                self._timer = self._loop.call_at(now + self._read_timeout, self._on_timer)

    def _due(self, now: float, timeout: float | None) -> float:
        """When the timer must next fire: the phase's limit or the request's deadline."""
        due = now + timeout if timeout is not None else math.inf
        deadline = self._deadline
        return deadline if deadline is not None and deadline < due else due

    def _cancel_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        if self._done or self._paused or self._exc is not None:
            return
        deadline = self._deadline
        if deadline is not None and self._loop.time() >= deadline - 0.001:
            self._fail(DeadlineExceeded(f"the request's deadline passed ({self._client.origin})"))
            return
        if not self._got_bytes:
            first = cast(float, self._first_byte_timeout)
            self._fail(
                FirstByteTimeout(f"no answer from {self._client.origin} within {first:g} seconds")
            )
            return
        if self._read_timeout is None:  # only the request's deadline is being watched
            self._timer = self._loop.call_at(self._due(self._loop.time(), None), self._on_timer)
            return
        timeout = self._read_timeout
        idle_due = self._last_rx + timeout
        if idle_due - self._loop.time() > 0.001:
            # Bytes arrived since the timer was set: sleep until the new due time. One
            # timer handle per idle gap instead of one per received packet.
            self._timer = self._loop.call_at(self._due(self._last_rx, timeout), self._on_timer)
            return
        self._fail(
            ReadTimeout(f"no response bytes from {self._client.origin} for {timeout:g} seconds")
        )


class HttpStream:
    """A response whose body is read as it arrives; use as ``async with client.stream(...)``.

    ``status`` and ``headers`` are set on entering the context. Leaving it before the body
    is complete aborts the connection (the upstream sees it close); a completed body leaves
    the connection to the pool.
    """

    __slots__ = ("_client", "_conn", "_head", "_head_only", "_tail", "headers", "status")

    def __init__(
        self, client: HttpClient, head: bytes, tail: bytes | None, head_only: bool
    ) -> None:
        self._client = client
        self._head = head
        self._tail = tail
        self._head_only = head_only
        self._conn: _Connection | None = None
        self.status = 0
        self.headers: dict[str, str] = {}

    async def __aenter__(self) -> HttpStream:
        if self._conn is not None or not self._head:
            raise RuntimeError("an HttpStream can be entered only once")
        conn = await self._client._send(self._head, self._tail, self._head_only, True)
        self._head = b""
        self._tail = None
        self._conn = conn
        self.status = conn._status
        self.headers = conn._headers
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            self._client._release(conn)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (chunked encoding already removed).

        Each step yields everything received so far and not yet taken, so chunks that
        arrived in one socket read are handed over together: one wake-up and one parse
        pass for all of them, never a wait for more.
        """
        return self

    def __aiter__(self) -> HttpStream:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the stream is not open")
        body = conn._body
        while not body:
            if conn._exc is not None:
                raise conn._exc
            if conn._done:
                raise StopAsyncIteration
            await conn.wait()
        piece = body.popleft() if len(body) == 1 else conn.take_body()
        conn.consumed(len(piece))
        return piece

    async def read(self) -> bytes:
        """The rest of the body, in one piece."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("the stream is not open")
        # From here on the whole body is wanted: no wake-ups per piece, no backpressure.
        conn._streaming = False
        if conn._paused:
            conn.consumed(conn._buffered)
        while not conn._done and conn._exc is None:
            await conn.wait()
        if conn._exc is not None:
            raise conn._exc
        return conn.take_body()


class HttpClient:
    """Pooled keep-alive HTTP/1.1 client for ONE origin (scheme://host:port[/base_path]).

    Idle connections are reused last-in first-out (the warmest socket, and the others can
    age out on the server). At most ``max_connections`` sockets exist; further requests
    wait for one in FIFO order. A reused socket that the server closed while it sat idle
    is detected before the first response byte and the request is retried once on a fresh
    connection; nothing is retried once response bytes have arrived.
    """

    __slots__ = (
        "_base_path",
        "_closed",
        "_connect_timeout",
        "_default_names",
        "_defaults",
        "_first_byte_timeout",
        "_fixed",
        "_host",
        "_idle",
        "_max",
        "_port",
        "_read_timeout",
        "_server_hostname",
        "_ssl",
        "_total",
        "_waiters",
        "origin",
    )

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float | None = 600.0,
        max_connections: int = 512,
        ssl_context: ssl.SSLContext | None = None,
        first_byte_timeout: float | Literal["read_timeout"] | None = "read_timeout",
    ) -> None:
        """``read_timeout`` limits each silent gap once the response has started;
        ``first_byte_timeout`` limits the wait for the response to start (a non-streamed
        completion sends nothing until it is generated). By default both are
        ``read_timeout``."""
        parts = urlsplit(base_url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/path], got {base_url!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        secure = scheme == "https"
        default_port = 443 if secure else 80
        host = parts.hostname
        port = parts.port or default_port
        self._host = host
        self._port = port
        self._base_path = parts.path.rstrip("/")
        self._ssl: ssl.SSLContext | None = None
        self._server_hostname: str | None = None
        if secure:
            self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
            self._server_hostname = host
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._first_byte_timeout = (
            read_timeout if first_byte_timeout == "read_timeout" else first_byte_timeout
        )
        self._max = max_connections
        self.origin = f"{scheme}://{host}:{port}"

        host_header = f"[{host}]" if ":" in host else host
        if port != default_port:
            host_header = f"{host_header}:{port}"
        # The part of every request head that never changes, encoded once per client.
        self._fixed = (
            f"host: {host_header}\r\naccept-encoding: identity\r\nconnection: keep-alive\r\n"
        )
        self._defaults: dict[str, str] = {}
        for name, value in (headers or {}).items():
            key = name.lower()
            if key in _MANAGED or key == "accept-encoding":
                continue
            line = f"{name}: {value}\r\n"
            if line.count("\n") != 1 or line.count("\r") != 1:
                raise ValueError(f"header {name!r} contains a line break")
            self._defaults[key] = line
        self._default_names = frozenset(self._defaults)
        self._fixed += "".join(self._defaults.values())

        self._idle: list[_Connection] = []
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._total = 0
        self._closed = False

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- public API ------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole response body."""
        head, tail = self._encode(method, path, headers, body)
        conn = await self._send(head, tail, method == "HEAD", False)
        response = HttpResponse(conn._status, conn._headers, conn.take_body())
        self._release(conn)
        return response

    def stream(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> AbstractAsyncContextManager[HttpStream]:
        """Send one request; the context yields once headers arrive, the body streams."""
        head, tail = self._encode(method, path, headers, body)
        return HttpStream(self, head, tail, method == "HEAD")

    async def aclose(self) -> None:
        """Close idle connections now and in-flight ones when their exchange ends."""
        self._closed = True
        idle = self._idle
        self._idle = []
        for conn in idle:
            conn._idle = False
            conn.abort()
        self._total -= len(idle)
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectError(f"client for {self.origin} is closed"))
        await asyncio.sleep(0)  # let the transports finish closing

    # --- request encoding ------------------------------------------------------------

    def _encode(
        self, method: str, path: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> tuple[bytes, bytes | None]:
        if path and path[0] != "/" and path[0] != "?":
            path = "/" + path
        target = self._base_path + path or "/"
        fixed = self._fixed
        lines = 0
        if headers:
            extra: list[str] = []
            overridden: set[str] | None = None
            for name, value in headers.items():
                key = name.lower()
                if key in _MANAGED:
                    continue
                if key in self._default_names:
                    if overridden is None:
                        overridden = set()
                    overridden.add(key)
                extra.append(f"{name}: {value}\r\n")
            if overridden is not None:
                fixed = self._fixed_without(overridden)
            lines = len(extra)
            user = "".join(extra)
        else:
            user = ""
        if body is not None:
            end = f"content-length: {len(body)}\r\n\r\n"
        elif method in _BODY_METHODS:
            end = "content-length: 0\r\n\r\n"
        else:
            end = "\r\n"
        request_line = f"{method} {target} HTTP/1.1\r\n"
        # Caller-supplied text must not smuggle line breaks (header/request injection):
        # each piece holds exactly the CRLFs we put there.
        checked = request_line + user
        if checked.count("\n") != lines + 1 or checked.count("\r") != lines + 1:
            raise ValueError("line break in request method, path or header")
        head = f"{request_line}{fixed}{user}{end}".encode()
        if body:
            if len(body) <= _JOIN_LIMIT:
                return head + body, None
            return head, body
        return head, None

    def _fixed_without(self, overridden: set[str]) -> str:
        fixed = self._fixed
        keep = [line for key, line in self._defaults.items() if key not in overridden]
        cut = fixed.index("connection: keep-alive\r\n") + len("connection: keep-alive\r\n")
        return fixed[:cut] + "".join(keep)

    # --- pool ------------------------------------------------------------------------

    async def _send(
        self, head: bytes, tail: bytes | None, head_only: bool, streaming: bool
    ) -> _Connection:
        """Run one exchange on a pooled connection, retrying once if a reused one was stale."""
        conn = await self._acquire()
        try:
            await conn.exchange(head, tail, head_only, streaming)
            return conn
        except _StaleConnectionError:
            conn.abort()
        except BaseException:
            conn.abort()
            self._release(conn)
            raise
        # The stale socket's slot passes to a fresh connection.
        try:
            conn = await self._open()
        except BaseException:
            self._free_slot()
            raise
        try:
            await conn.exchange(head, tail, head_only, streaming)
        except BaseException:
            conn.abort()
            self._release(conn)
            raise
        return conn

    async def _acquire(self) -> _Connection:
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn._idle = False
            if conn.alive():
                return conn
            conn.abort()
            self._total -= 1
        if self._closed:
            raise ConnectError(f"client for {self.origin} is closed")
        if self._total >= self._max:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Cancelled after being handed a connection or slot: pass it on.
                    given = waiter.result()
                    if given is None:
                        self._free_slot()
                    else:
                        self._release(given)
                raise
            if handed is not None:
                if handed.alive():
                    return handed
                handed.abort()  # died while being handed over; its slot is ours
        else:
            self._total += 1
        try:
            return await self._open()
        except BaseException:
            self._free_slot()
            raise

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = _Connection(self, loop, self._read_timeout, self._first_byte_timeout)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
        except TimeoutError:
            conn.abort()
            raise ConnectTimeout(
                f"connecting to {self.origin} took over {self._connect_timeout:g} seconds"
            ) from None
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise ConnectError(f"cannot connect to {self.origin}: {exc}") from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        """Return a connection after its exchange: to a waiter, the idle list, or the bin."""
        conn._busy = False
        if self._closed or not conn.reusable():
            conn.abort()
            self._free_slot()
            return
        conn._reused = True
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn._idle = True
        self._idle.append(conn)

    def _free_slot(self) -> None:
        """A connection is gone: hand its slot to the first waiter, or shrink the pool."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._total -= 1

    def _idle_lost(self, conn: _Connection) -> None:
        """The server closed an idle connection: forget it now rather than on next use."""
        conn._idle = False
        try:
            self._idle.remove(conn)
        except ValueError:  # pragma: no cover - aclose already dropped it
            return
        self._free_slot()
