"""A tiny scriptable HTTP/1.1 server on 127.0.0.1 for the client tests.

Each accepted connection runs ``handler(conn)``; the handler reads requests and writes
raw bytes, so a test can misbehave precisely (stall, cut a body short, close at the worst
moment) and can observe what the client did to the socket (EOF, how many connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType


class Request:
    __slots__ = ("body", "headers", "method", "raw_headers", "target")

    def __init__(
        self, method: str, target: str, raw_headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.method = method
        self.target = target
        self.raw_headers = raw_headers
        self.headers = {k.lower(): v for k, v in raw_headers}
        self.body = body


class ServerConn:
    def __init__(
        self, server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.eof_at: float | None = None
        self.eof = asyncio.Event()

    async def read_request(self) -> Request | None:
        """The next request, or None if the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self._saw_eof()
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ")
        raw: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                raw.append((name, value.strip()))
        req = Request(method, target, raw, b"")
        length = int(req.headers.get("content-length", "0"))
        if length:
            req.body = await self.reader.readexactly(length)
        self.server.requests.append(req)
        return req

    async def respond(
        self,
        body: bytes = b"",
        *,
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
        chunked: bool = False,
    ) -> None:
        self.write(response(body, status=status, headers=headers, chunked=chunked))
        await self.writer.drain()

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def wait_eof(self) -> None:
        """Read and discard until the client closes (or resets) the connection."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        self._saw_eof()

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()

    def reset(self) -> None:
        """Close with a TCP RST (linger 0), as a crashed or overloaded server does."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def _saw_eof(self) -> None:
        if self.eof_at is None:
            self.eof_at = time.monotonic()
        self.eof.set()


Handler = Callable[[ServerConn], Awaitable[None]]


class RawServer:
    """``async with RawServer(handler) as srv``: ``srv.url``, connection stats, requests."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.accepted = 0
        self.active = 0
        self.max_active = 0
        self.conns: list[ServerConn] = []
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(
            self._on_conn, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for conn in self.conns:
            conn.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if exc is None and self.errors:
            raise self.errors[0]

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = ServerConn(self, reader, writer)
        self.conns.append(conn)
        self.accepted += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.handler(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # surfaced when the server context exits
            self.errors.append(exc)
        finally:
            self.active -= 1
            writer.close()
            self._tasks.discard(task)


def response(
    body: bytes = b"",
    *,
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
    chunked: bool = False,
) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{k}: {v}" for k, v in headers]
    if chunked:
        lines.append("transfer-encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(f"content-length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def serve_forever(conn: ServerConn, body: bytes = b"ok") -> None:
    """Answer every request on the connection with a fixed body (keep-alive)."""
    while await conn.read_request() is not None:
        await conn.respond(body)
