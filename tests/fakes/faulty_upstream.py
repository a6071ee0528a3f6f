"""A fake OpenAI chat-completions upstream with byte-level control, for fault injection.

Unlike ``OpenAIUpstream`` (an ASGI app behind uvicorn) this is a raw ``asyncio`` TCP
server on 127.0.0.1 that writes the HTTP/1.1 bytes itself, so it can do what no ASGI app
can: reset the connection (RST, ``SO_LINGER 0``) right after reading a request or in the
middle of a chunked SSE body, hang before the status line, go silent mid-stream, or pace
its chunks. It speaks the OpenAI wire format (non-stream JSON, and SSE over chunked
transfer encoding ending in ``data: [DONE]``), rendered by ``OpenAIUpstream`` so the bytes
match the fake every other test uses.

Each request takes the next ``Behaviour`` from a queue (``queue``), else the ``default``
one. Every request is recorded (``requests``) with its arrival time, the connection it came
on, when the response finished and, if the client closed the connection before that, when
(``aborted_at``): that is how tests prove a hedged or abandoned attempt was cancelled.

A refused connection needs no server at all: ``closed_port()``. A connect that never
completes (for connect timeouts) is ``BlackholePort``: a listener whose accept queue is full.

The server runs on its own event loop in a background thread, so it serves sync and async
tests alike and keeps its timing independent of the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal

from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import Scenario, UsageSpec

__all__ = [
    "Behaviour",
    "BlackholePort",
    "FaultyUpstream",
    "RequestRecord",
    "closed_port",
    "hang_before_headers",
    "ok",
    "reset_before_response",
    "reset_mid_stream",
    "silent_mid_stream",
    "slow",
    "status",
]

Kind = Literal["ok", "reset_before_response", "status", "reset_mid_stream", "silent_mid_stream"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}


@dataclass(frozen=True)
class Behaviour:
    """What the upstream does with one request.

    ``text`` None means the upstream's own default answer. Chunk counts (``after_chunks``)
    count *content* chunks, i.e. text deltas; the role chunk always goes first.
    """

    kind: Kind = "ok"
    text: tuple[str, ...] | None = None
    status: int = 200
    retry_after: float | None = None
    error_body: dict[str, Any] | None = None
    headers_delay: float = 0.0  # seconds before the status line (hang before first byte)
    after_chunks: int = 0  # for reset/silent mid-stream
    silence: float = 0.0  # for silent_mid_stream: how long to stay silent
    chunk_delay: float = 0.0  # seconds between content chunks (slow)

    def then(self, **changes: Any) -> Behaviour:
        return replace(self, **changes)


def ok(*text: str, headers_delay: float = 0.0, chunk_delay: float = 0.0) -> Behaviour:
    """A normal answer: ``text`` pieces as chunks (or the upstream's default answer)."""
    return Behaviour("ok", text=text or None, headers_delay=headers_delay, chunk_delay=chunk_delay)


def slow(chunk_delay: float, *text: str) -> Behaviour:
    """A normal answer paced at ``chunk_delay`` seconds between chunks."""
    return Behaviour("ok", text=text or None, chunk_delay=chunk_delay)


def reset_before_response() -> Behaviour:
    """Read the request, then RST the connection without a single response byte."""
    return Behaviour("reset_before_response")


def reset_mid_stream(after_chunks: int, *text: str) -> Behaviour:
    """Send headers and ``after_chunks`` content chunks, then RST the connection."""
    return Behaviour("reset_mid_stream", text=text or None, after_chunks=after_chunks)


def status(
    code: int, *, retry_after: float | None = None, body: dict[str, Any] | None = None
) -> Behaviour:
    """An error answer with this HTTP status (and a ``Retry-After`` header if given)."""
    return Behaviour("status", status=code, retry_after=retry_after, error_body=body)


def hang_before_headers(seconds: float, *text: str) -> Behaviour:
    """Say nothing for ``seconds`` (the client may give up first), then answer normally."""
    return Behaviour("ok", text=text or None, headers_delay=seconds)


def silent_mid_stream(after_chunks: int, seconds: float, *text: str) -> Behaviour:
    """Send ``after_chunks`` content chunks, go silent for ``seconds``, then finish."""
    return Behaviour(
        "silent_mid_stream", text=text or None, after_chunks=after_chunks, silence=seconds
    )


@dataclass
class RequestRecord:
    index: int
    connection: int  # connection number on this upstream, from 0
    arrived_at: float  # time.monotonic() when the request head and body were read
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    behaviour: Behaviour
    finished_at: float | None = None  # the response was completely written
    aborted_at: float | None = None  # the client closed the connection before that
    reset: bool = False  # this upstream reset the connection on purpose

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


@dataclass
class _Conn:
    number: int
    opened_at: float
    closed_at: float | None = None
    requests: list[RequestRecord] = field(default_factory=list)


class _ClientGone(Exception):
    pass


class FaultyUpstream:
    """Use as a context manager: ``with FaultyUpstream("primary") as up: up.url``."""

    def __init__(self, name: str = "upstream", *, default: Behaviour | None = None) -> None:
        self.name = name
        self.default_text: tuple[str, ...] = (f"[{name}]", " one", " two", " three", " four")
        self.default = default or ok()
        self.requests: list[RequestRecord] = []
        self.connections: list[_Conn] = []
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._render = OpenAIUpstream("openai")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # --- test API ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to configure as a provider's ``base_url`` (with ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def text_of(self, behaviour: Behaviour | None = None) -> str:
        """The full content an answer of ``behaviour`` carries."""
        pieces = behaviour.text if behaviour is not None and behaviour.text else None
        return "".join(pieces or self.default_text)

    @property
    def answer(self) -> str:
        """This upstream's default full answer."""
        return "".join(self.default_text)

    @property
    def chat_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        """Block until ``predicate()`` holds (it is evaluated against live records)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: condition not met within {timeout}s")
            time.sleep(0.005)

    async def await_for(self, predicate: Callable[[], bool], within: float = 3.0) -> None:
        """``wait_for`` without blocking the caller's event loop."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: condition not met within {within}s")
            await asyncio.sleep(0.005)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FaultyUpstream:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, "127.0.0.1", 0)
                )
                self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:  # pragma: no cover - start-up failure
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                self._stopped.set()

        self._thread = threading.Thread(target=run, name=f"faulty-{self.name}", daemon=True)
        self._thread.start()
        if not started.wait(5):  # pragma: no cover
            raise TimeoutError("the faulty upstream did not start")
        if failure:  # pragma: no cover
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        def shutdown() -> None:
            server.close()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FaultyUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the server --------------------------------------------------------------------

    def _next(self) -> Behaviour:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(len(self.connections), time.monotonic())
        self.connections.append(conn)
        try:
            while True:
                head = await _read_request(reader)
                if head is None:
                    break
                method, path, headers, raw = head
                body: Any = None
                if raw:
                    with contextlib.suppress(ValueError):
                        body = json.loads(raw)
                is_chat = method == "POST" and path.endswith("/chat/completions")
                behaviour = self._next() if is_chat else ok()
                record = RequestRecord(
                    index=len(self.requests),
                    connection=conn.number,
                    arrived_at=time.monotonic(),
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    behaviour=behaviour,
                )
                self.requests.append(record)
                conn.requests.append(record)
                try:
                    keep = await self._respond(record, reader, writer, is_chat)
                except _ClientGone:
                    record.aborted_at = time.monotonic()
                    break
                except (ConnectionError, OSError):
                    record.aborted_at = time.monotonic()
                    break
                if not record.reset:
                    record.finished_at = time.monotonic()
                if not keep:
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            conn.closed_at = time.monotonic()
            if not writer.is_closing():
                writer.close()
            self._tasks.discard(task)

    async def _respond(
        self,
        record: RequestRecord,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        is_chat: bool,
    ) -> bool:
        """Answer one request; False when the connection must not be reused."""
        b = record.behaviour
        if not is_chat:
            if record.path.endswith("/models"):
                listing = {"object": "list", "data": [{"id": "m", "object": "model", "created": 0}]}
                await _write_json(writer, 200, listing)
                return True
            await _write_json(writer, 404, {"error": {"message": f"no route {record.path}"}})
            return True
        if b.kind == "reset_before_response":
            await asyncio.sleep(0.01)
            record.reset = True
            _reset(writer)
            return False
        if b.headers_delay:
            await _sleep_unless_gone(reader, b.headers_delay)
        if b.kind == "status":
            await self._write_error(writer, b)
            return True
        body = record.body if isinstance(record.body, dict) else {}
        model = str(body.get("model", ""))
        scenario = Scenario(text=b.text or self.default_text, usage=UsageSpec(5, 5))
        if not record.stream:
            data = json.dumps(self._render._completion(scenario, model)).encode()
            if b.kind in ("reset_mid_stream", "silent_mid_stream"):
                # Headers and half the body, then the fault.
                head = _status_line(200) + _headers(
                    [("content-type", "application/json"), ("content-length", str(len(data)))]
                )
                writer.write(head + data[: len(data) // 2])
                await writer.drain()
                if b.kind == "reset_mid_stream":
                    await asyncio.sleep(0.05)
                    record.reset = True
                    _reset(writer)
                    return False
                await _sleep_unless_gone(reader, b.silence)
                writer.write(data[len(data) // 2 :])
                await writer.drain()
                return True
            writer.write(
                _status_line(200)
                + _headers(
                    [("content-type", "application/json"), ("content-length", str(len(data)))]
                )
                + data
            )
            await writer.drain()
            return True
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = self._render._chunks(scenario, model, include_usage)
        writer.write(
            _status_line(200)
            + _headers(
                [
                    ("content-type", "text/event-stream; charset=utf-8"),
                    ("cache-control", "no-cache"),
                    ("transfer-encoding", "chunked"),
                ]
            )
        )
        await writer.drain()
        # chunks[0] is the role chunk, then one per text piece, then finish (and usage).
        content_sent = 0
        for i, frame in enumerate(chunks):
            is_content = 1 <= i <= len(scenario.text)
            if is_content and content_sent == b.after_chunks:
                if b.kind == "reset_mid_stream":
                    # Let the chunks already written reach the client before the RST.
                    await asyncio.sleep(0.05)
                    record.reset = True
                    _reset(writer)
                    return False
                if b.kind == "silent_mid_stream":
                    await _sleep_unless_gone(reader, b.silence)
            if is_content and content_sent and b.chunk_delay:
                await _sleep_unless_gone(reader, b.chunk_delay)
            _check_gone(reader)
            writer.write(_chunk(frame))
            await writer.drain()
            if is_content:
                content_sent += 1
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _write_error(self, writer: asyncio.StreamWriter, b: Behaviour) -> None:
        kinds = {
            400: ("invalid_request_error", None),
            429: ("requests", "rate_limit_exceeded"),
            529: ("overloaded_error", None),
        }
        type_, code = kinds.get(b.status, ("server_error", None))
        payload = b.error_body or {
            "error": {
                "message": f"{self.name}: scripted {b.status}",
                "type": type_,
                "param": None,
                "code": code,
            }
        }
        extra: list[tuple[str, str]] = []
        if b.retry_after is not None:
            value = b.retry_after
            extra.append(("retry-after", str(int(value)) if value == int(value) else str(value)))
        await _write_json(writer, b.status, payload, extra)


# --- wire helpers ------------------------------------------------------------------------


def _status_line(code: int) -> bytes:
    return f"HTTP/1.1 {code} {_REASONS.get(code, 'Status')}\r\n".encode()


def _headers(pairs: list[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _write_json(
    writer: asyncio.StreamWriter,
    code: int,
    payload: Any,
    extra: list[tuple[str, str]] | None = None,
) -> None:
    data = json.dumps(payload).encode()
    pairs = [("content-type", "application/json"), ("content-length", str(len(data)))]
    writer.write(_status_line(code) + _headers(pairs + (extra or [])) + data)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN: SO_LINGER on with a zero timeout, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _gone(reader: asyncio.StreamReader) -> bool:
    return reader.at_eof() or reader.exception() is not None


def _check_gone(reader: asyncio.StreamReader) -> None:
    if _gone(reader):
        raise _ClientGone


async def _sleep_unless_gone(reader: asyncio.StreamReader, seconds: float) -> None:
    """Sleep, but notice (and raise ``_ClientGone``) as soon as the client closes."""
    deadline = time.monotonic() + seconds
    while True:
        _check_gone(reader)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.005))


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """One HTTP/1.1 request (content-length or chunked body); None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return method, path, headers, body


# --- ports that misbehave at the TCP level -----------------------------------------------


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BlackholePort:
    """A listener whose accept queue is full, so a new connect is never answered.

    Linux drops a SYN when the listen backlog is full; the connecting side retransmits
    and waits, which is exactly an upstream that does not complete the TCP handshake.
    """

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = int(self._listener.getsockname()[1])
        self._fillers: list[socket.socket] = []

    def __enter__(self) -> BlackholePort:
        # Fill the backlog (0 lets one or two in, depending on the kernel) until a connect
        # stalls; a stalled connect proves the next one will too.
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", self.port))
            self._fillers.append(s)
            time.sleep(0.02)
            if not _connected(s):
                break
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        for s in self._fillers:
            s.close()
        self._listener.close()


def _connected(s: socket.socket) -> bool:
    try:
        s.getpeername()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def upstreams(*names: str) -> Iterator[list[FaultyUpstream]]:
    """Several started upstreams at once, stopped at the end."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(FaultyUpstream(n)) for n in names]
