"""A fast fake OpenAI upstream for the benchmark (never the bottleneck).

Raw ``asyncio.Protocol`` + ``httptools`` on uvloop, HTTP/1.1 keep-alive, precomputed
response bytes.  It answers:

* ``POST /v1/chat/completions`` non-stream: one ``chat.completion`` object (~450 bytes,
  OpenAI's exact shape including ``usage``) with ``content-length``.
* ``POST /v1/chat/completions`` with ``"stream": true``: ``text/event-stream`` with chunked
  transfer encoding, one HTTP chunk per SSE event: a role chunk, **N content chunks**, a
  finish chunk (``finish_reason: "stop"``), a usage chunk (``choices: []``) when the request
  has ``stream_options.include_usage`` (as OpenAI does; every other chunk then carries
  ``"usage": null``), and ``data: [DONE]``.
* ``GET /v1/models``: a one-model list.  Anything else: an OpenAI-shaped 404.

Knobs, all taken from the request body so they survive a gateway hop:

* **N** (content chunks of a stream, and ``completion_tokens``) = ``max_tokens``
  (or ``max_completion_tokens``), default 16, capped at 10,000.
* **Pacing**: a model name ending in ``-paced-<ms>`` (e.g. ``bench-model-paced-50``) sends
  the role chunk and the first content chunk at once, then one content chunk every ``<ms>``
  milliseconds on the event loop's timer (``call_at`` on an absolute schedule, so no drift
  and no task per stream); the finish/usage/``[DONE]`` frames go with the last content
  chunk.  ``--interval-ms`` sets the pacing for models without the suffix (default 0).
  Unpaced streams are written with a single ``transport.write``.

Run: ``python bench/fake_upstream.py --port 0`` prints ``FAKE_UPSTREAM_READY <port>`` once it
listens.  It stops by itself after ``--max-seconds`` or when its parent process goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ipaddress
import os
import re
import signal
import sys
from dataclasses import dataclass
from typing import cast

import httptools
import msgspec

DEFAULT_CHUNKS = 16
MAX_CHUNKS = 10_000
CREATED = 1_700_000_000
_PACED = re.compile(r"-paced-(\d+)$")
_CACHE_LIMIT = 1024


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class _ChatRequest(msgspec.Struct):
    model: str = "bench-model"
    stream: bool | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream_options: _StreamOptions | None = None


_decode_request = msgspec.json.Decoder(_ChatRequest).decode
_encode = msgspec.json.encode


def _http_head(status: str, content_type: bytes, length: int | None, keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status}".encode(), b"content-type: " + content_type]
    if length is None:
        lines += [b"cache-control: no-cache", b"transfer-encoding: chunked"]
    else:
        lines.append(b"content-length: " + str(length).encode())
    lines.append(b"connection: keep-alive" if keep_alive else b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _json_response(status: str, obj: object, keep_alive: bool) -> bytes:
    body = _encode(obj)
    return _http_head(status, b"application/json", len(body), keep_alive) + body


def _error(status: str, message: str, err_type: str, keep_alive: bool) -> bytes:
    obj = {"error": {"message": message, "type": err_type, "param": None, "code": None}}
    return _json_response(status, obj, keep_alive)


def _usage(n: int) -> dict[str, object]:
    return {
        "prompt_tokens": 12,
        "completion_tokens": n,
        "total_tokens": 12 + n,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _token(i: int) -> str:
    return f"tok{i} "


def completion_body(model: str, n: int) -> bytes:
    """The non-stream ``chat.completion`` JSON for ``n`` completion tokens."""
    content = (
        "Hello from the benchmark fake upstream." if n <= 16 else "".join(map(_token, range(n)))
    )
    return _encode(
        {
            "id": "chatcmpl-bench0000000000000000000001",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(n),
            "system_fingerprint": "fp_bench",
        }
    )


def _chunk(model: str, choices: list[object], include_usage: bool, usage: object = None) -> bytes:
    obj: dict[str, object] = {
        "id": "chatcmpl-bench0000000000000000000001",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": choices,
    }
    if include_usage:
        obj["usage"] = usage
    event = b"data: " + _encode(obj) + b"\n\n"
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


def _delta_choice(delta: dict[str, object], finish: str | None = None) -> list[object]:
    return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]


@dataclass(frozen=True, slots=True)
class StreamParts:
    """Precomputed wire bytes of one stream: ``first`` goes at once, then ``rest[i]``."""

    first: bytes
    rest: tuple[bytes, ...]

    def whole(self) -> bytes:
        return self.first + b"".join(self.rest)


def stream_parts(model: str, n: int, include_usage: bool, keep_alive: bool) -> StreamParts:
    """The whole SSE response for ``n`` content chunks, split at content-chunk boundaries."""
    head = _http_head("200 OK", b"text/event-stream", None, keep_alive)
    role = _chunk(
        model, _delta_choice({"role": "assistant", "content": "", "refusal": None}), include_usage
    )
    contents = [
        _chunk(model, _delta_choice({"content": _token(i)}), include_usage) for i in range(n)
    ]
    tail = _chunk(model, _delta_choice({}, "stop"), include_usage)
    if include_usage:
        tail += _chunk(model, [], True, _usage(n))
    done = b"data: [DONE]\n\n"
    tail += f"{len(done):x}\r\n".encode() + done + b"\r\n" + b"0\r\n\r\n"
    if n == 0:
        return StreamParts(head + role + tail, ())
    first = head + role + contents[0]
    rest = contents[1:]
    if rest:
        rest[-1] += tail
        return StreamParts(first, tuple(rest))
    return StreamParts(first + tail, ())


_MODELS_BODY = {
    "object": "list",
    "data": [{"id": "bench-model", "object": "model", "created": CREATED, "owned_by": "bench"}],
}


class FakeState:
    """Shared per-server settings and the response cache."""

    def __init__(self, interval_ms: float = 0.0) -> None:
        self.interval_ms = interval_ms
        self.requests = 0
        self._nonstream: dict[tuple[str, int, bool], bytes] = {}
        self._streams: dict[tuple[str, int, bool, bool], StreamParts] = {}

    def nonstream(self, model: str, n: int, keep_alive: bool) -> bytes:
        key = (model, n, keep_alive)
        resp = self._nonstream.get(key)
        if resp is None:
            if len(self._nonstream) > _CACHE_LIMIT:
                self._nonstream.clear()
            body = completion_body(model, n)
            resp = _http_head("200 OK", b"application/json", len(body), keep_alive) + body
            self._nonstream[key] = resp
        return resp

    def stream(self, model: str, n: int, include_usage: bool, keep_alive: bool) -> StreamParts:
        key = (model, n, include_usage, keep_alive)
        parts = self._streams.get(key)
        if parts is None:
            if len(self._streams) > _CACHE_LIMIT:
                self._streams.clear()
            parts = stream_parts(model, n, include_usage, keep_alive)
            self._streams[key] = parts
        return parts

    def interval_for(self, model: str) -> float:
        m = _PACED.search(model)
        return float(m.group(1)) if m else self.interval_ms


class UpstreamProtocol(asyncio.Protocol):
    """One client connection; requests on it are answered strictly in order."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.busy = False
        self.pending: collections.deque[tuple[bytes, bytes, bytes, bool]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.chunks: tuple[bytes, ...] = ()
        self.idx = 0
        self.t0 = 0.0
        self.interval = 0.0
        self.keep_alive = True

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.transport = None
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(
                    _error("400 Bad Request", "bad HTTP", "invalid_request_error", False)
                )
                self.transport.close()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        req = (
            self.parser.get_method(),
            self.url,
            b"".join(self.body),
            self.parser.should_keep_alive(),
        )
        self.url = b""
        self.body = []
        if self.busy:
            self.pending.append(req)
        else:
            self._handle(*req)

    # request handling
    def _handle(self, method: bytes, url: bytes, body: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        self.state.requests += 1
        path = url.split(b"?", 1)[0]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            self._chat(transport, body, keep_alive)
            return
        if method == b"GET" and path.endswith(b"/models"):
            transport.write(_json_response("200 OK", _MODELS_BODY, keep_alive))
        else:
            transport.write(
                _error("404 Not Found", "no such route", "invalid_request_error", keep_alive)
            )
        self._done(keep_alive)

    def _chat(self, transport: asyncio.Transport, body: bytes, keep_alive: bool) -> None:
        try:
            req = _decode_request(body)
        except msgspec.ValidationError as exc:
            transport.write(
                _error("400 Bad Request", str(exc), "invalid_request_error", keep_alive)
            )
            self._done(keep_alive)
            return
        except msgspec.DecodeError:
            transport.write(
                _error("400 Bad Request", "invalid JSON", "invalid_request_error", keep_alive)
            )
            self._done(keep_alive)
            return
        n = req.max_tokens if req.max_tokens is not None else req.max_completion_tokens
        n = DEFAULT_CHUNKS if n is None else max(0, min(n, MAX_CHUNKS))
        if not req.stream:
            transport.write(self.state.nonstream(req.model, n, keep_alive))
            self._done(keep_alive)
            return
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        parts = self.state.stream(req.model, n, include_usage, keep_alive)
        interval = self.state.interval_for(req.model)
        if interval <= 0 or not parts.rest:
            transport.write(parts.whole())
            self._done(keep_alive)
            return
        transport.write(parts.first)
        self.busy = True
        self.keep_alive = keep_alive
        self.chunks = parts.rest
        self.idx = 0
        self.interval = interval / 1000.0
        self.t0 = self.loop.time()
        self.timer = self.loop.call_at(self.t0 + self.interval, self._tick)

    def _tick(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None:
            return
        transport.write(self.chunks[self.idx])
        self.idx += 1
        if self.idx < len(self.chunks):
            self.timer = self.loop.call_at(self.t0 + (self.idx + 1) * self.interval, self._tick)
            return
        self.busy = False
        self.chunks = ()
        self._done(self.keep_alive)

    def _done(self, keep_alive: bool) -> None:
        if not keep_alive:
            if self.transport is not None:
                self.transport.close()
            return
        while self.pending and not self.busy and self.transport is not None:
            self._handle(*self.pending.popleft())


async def start_fake(
    host: str = "127.0.0.1", port: int = 0, interval_ms: float = 0.0
) -> tuple[asyncio.Server, FakeState]:
    """Start the fake upstream on the running loop; returns the server and its state."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the fake upstream only listens on loopback, not {host}")
    state = FakeState(interval_ms)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(state), host, port, backlog=4096, reuse_address=True
    )
    return server, state


def server_port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def _serve(args: argparse.Namespace) -> None:
    server, _state = await start_fake(args.host, args.port, args.interval_ms)
    print(f"FAKE_UPSTREAM_READY {server_port(server)}", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    parent = os.getppid()
    deadline = loop.time() + args.max_seconds
    async with server:
        while not stop.done() and loop.time() < deadline:
            if os.getppid() != parent:  # the runner died: do not outlive it
                break
            await asyncio.wait([stop], timeout=1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument(
        "--interval-ms", type=float, default=0.0, help="pacing for models without -paced-<ms>"
    )
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop by itself after")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(_serve(args))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_serve(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
