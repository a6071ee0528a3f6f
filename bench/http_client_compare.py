"""Our HttpClient against aiohttp and httpx, on uvloop, against one fast local server.

The server is a raw ``asyncio.Protocol`` on uvloop in a *separate process* (so the client
under test has its core to itself) that answers every request with a fixed ~400-byte JSON
body, or, for ``/stream``, a chunked ``text/event-stream`` of 200 SSE events written in
one go. Each client runs in a fresh uvloop loop:

* request case: N requests (default 20,000) at concurrency 64, after a warm-up; prints
  req/s and per-request p50/p99 latency;
* streaming case: M streamed responses (default 400) at concurrency 16, 200 chunks each;
  prints SSE chunks/s (the body pieces each client hands out are counted too).

Run: ``uv run python bench/http_client_compare.py [-n 20000] [--streams 400]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import cast

import aiohttp
import httpx
import uvloop

from llm_gateway.http import HttpClient

JSON_BODY = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Hello! This is a fixed benchmark answer of moderate length."},'
    b'"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,'
    b'"completion_tokens":14,"total_tokens":26},"system_fingerprint":"fp_bench",'
    b'"service_tier":"default","extra":"padding-padding-padding-padding"}'
)
STREAM_CHUNKS = 200
REQUEST_BODY = b'{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'


def _responses() -> tuple[bytes, bytes]:
    plain = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(JSON_BODY)).encode() + b"\r\n\r\n" + JSON_BODY
    )
    event = (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk",'
        b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n'
    )
    framed = f"{len(event):x}\r\n".encode() + event + b"\r\n"
    stream = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n" + framed * STREAM_CHUNKS + b"0\r\n\r\n"
    )
    return plain, stream


class _ServerProtocol(asyncio.Protocol):
    """Minimal keep-alive HTTP/1.1 responder: scan for the head, skip content-length bytes."""

    def __init__(self, plain: bytes, stream: bytes) -> None:
        self.plain = plain
        self.stream = stream
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else None])
            total = end + 4 + length
            if len(buf) < total:
                break
            out.append(self.stream if b" /stream" in head[:64] else self.plain)
            buf = buf[total:]
        self.buf = buf
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


def _serve(conn: Connection) -> None:
    async def main() -> None:
        plain, stream = _responses()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _ServerProtocol(plain, stream), "127.0.0.1", 0, backlog=1024
        )
        conn.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, conn.recv)  # any message: stop
        server.close()

    uvloop.run(main())


# --- one benchmark case per client -------------------------------------------------

Call = Callable[[], Awaitable[None]]
PIECES = [0]  # body pieces handed out by the client under test, summed over streams


async def _drive(call: Call, total: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        clock = time.perf_counter
        while remaining > 0:
            remaining -= 1
            t0 = clock()
            await call()
            latencies.append(clock() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


async def _run_case(
    name: str,
    make: Callable[[str], tuple[Call, Call, Callable[[], Awaitable[None]]]],
    url: str,
    n: int,
    streams: int,
) -> dict[str, float]:
    req, stream, close = make(url)
    await _drive(req, min(2000, n), 64)  # warm-up: connections, caches
    elapsed, lat = await _drive(req, n, 64)
    lat.sort()
    # One request at a time: the client's own per-request latency, without queueing.
    _, seq = await _drive(req, min(3000, n), 1)
    await _drive(stream, 32, 16)
    PIECES[0] = 0
    s_elapsed, _ = await _drive(stream, streams, 16)
    await close()
    return {
        "req_s": n / elapsed,
        "p50_ms": statistics.median(lat) * 1e3,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
        "seq_p50_us": statistics.median(seq) * 1e6,
        "chunks_s": streams * STREAM_CHUNKS / s_elapsed,
        "pieces": PIECES[0] / streams,
    }


def make_ours(url: str) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    client = HttpClient(url, headers={"authorization": "Bearer x"}, max_connections=64)
    headers = {"content-type": "application/json"}

    async def req() -> None:
        r = await client.request("POST", "/v1/chat/completions", headers=headers, body=REQUEST_BODY)
        assert r.status == 200 and len(r.body) == len(JSON_BODY)

    async def stream() -> None:
        count = 0
        async with client.stream("POST", "/stream", headers=headers, body=REQUEST_BODY) as response:
            async for _piece in response.iter_bytes():
                count += 1
        assert count == STREAM_CHUNKS
        PIECES[0] += count

    return req, stream, client.aclose


def make_aiohttp(url: str) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(
        url,
        headers={"authorization": "Bearer x"},
        connector=aiohttp.TCPConnector(limit=64),
        auto_decompress=False,
    )
    headers = {"content-type": "application/json"}

    async def req() -> None:
        async with session.post("/v1/chat/completions", headers=headers, data=REQUEST_BODY) as r:
            body = await r.read()
        assert r.status == 200 and len(body) == len(JSON_BODY)

    async def stream() -> None:
        size = 0
        async with session.post("/stream", headers=headers, data=REQUEST_BODY) as r:
            async for piece, _ in r.content.iter_chunks():
                size += len(piece)
                PIECES[0] += 1
        assert size > 0

    return req, stream, session.close


def make_httpx(url: str) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(
        base_url=url,
        headers={"authorization": "Bearer x"},
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )
    headers = {"content-type": "application/json"}

    async def req() -> None:
        r = await client.post("/v1/chat/completions", headers=headers, content=REQUEST_BODY)
        assert r.status_code == 200 and len(r.content) == len(JSON_BODY)

    async def stream() -> None:
        size = 0
        async with client.stream("POST", "/stream", headers=headers, content=REQUEST_BODY) as r:
            async for piece in r.aiter_raw():
                size += len(piece)
                PIECES[0] += 1
        assert size > 0

    return req, stream, client.aclose


CLIENTS = {"llm_gateway.http": make_ours, "aiohttp": make_aiohttp, "httpx": make_httpx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="requests per client")
    parser.add_argument("--streams", type=int, default=400, help="streamed responses per client")
    parser.add_argument("--only", choices=sorted(CLIENTS), action="append")
    args = parser.parse_args()

    ours, theirs = mp.Pipe()
    server = mp.Process(target=_serve, args=(theirs,), daemon=True)
    server.start()
    port = ours.recv()
    url = f"http://127.0.0.1:{port}"
    print(
        f"{args.n} requests at concurrency 64 ({len(JSON_BODY)}-byte JSON body); "
        f"{args.streams} streams x {STREAM_CHUNKS} chunks at concurrency 16; uvloop; "
        "server in its own process\n"
    )
    print(
        f"{'client':<18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'c=1 p50 us':>12}"
        f"{'chunks/s':>12}{'pieces/resp':>13}"
    )
    try:
        for name, make in CLIENTS.items():
            if args.only and name not in args.only:
                continue
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                r = runner.run(_run_case(name, make, url, args.n, args.streams))
            print(
                f"{name:<18}{r['req_s']:>10,.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
                f"{r['seq_p50_us']:>12.0f}{r['chunks_s']:>12,.0f}{r['pieces']:>13.1f}",
                flush=True,
            )
    finally:
        ours.send("stop")
        server.join(5)


if __name__ == "__main__":
    main()
