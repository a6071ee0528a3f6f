"""The load driver: raw asyncio protocol clients (one keep-alive connection per worker).

Each worker is an ``asyncio.Protocol`` with an ``httptools`` response parser.  The request
bytes are precomputed; the next request is written from the completion callback itself (no
task, future or coroutine switch per request).  Timestamps are ``time.perf_counter_ns`` taken
once per ``data_received``.

Measured per request: latency (send → end of response).  For streams also: time to first
*content* chunk (an SSE event whose ``delta.content`` is a non-empty string), every gap
between consecutive content chunks, completion, the content-chunk count (checked against the
expected N) and ``data: [DONE]``.  A stream *stalls* when one of its gaps exceeds the
upstream's own pacing by more than ``stall_ms`` (100 ms), or when its first content chunk
(which the fake upstream sends at once, unpaced) comes more than ``stall_ms`` after the
request: a stream queued for 5 s before its first token has stalled too.

Closed loop: ``total`` requests or ``duration_s`` seconds, whichever ends first; in-flight
requests then finish (bounded by ``grace_s``; whatever is still open is counted as timed out).
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import cast

import httptools
import msgspec

perf_ns = time.perf_counter_ns


def build_request(
    host: str,
    port: int,
    path: str,
    body: Mapping[str, object],
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Precompute the bytes of one ``POST`` request with a JSON body."""
    payload = msgspec.json.encode(body)
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {host}:{port}",
        "content-type: application/json",
        "accept: */*",
        f"content-length: {len(payload)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass(frozen=True, slots=True)
class Workload:
    """What one run sends: the request bytes and what a good answer looks like."""

    request: bytes
    stream: bool = False
    expected_chunks: int | None = None  # content chunks a complete stream must carry
    interval_ms: float = 0.0  # the upstream's own pacing (stall threshold is on top of it)


def percentile(sorted_values: Sequence[int] | Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    n = len(sorted_values)
    if n == 0:
        return 0.0
    k = max(0, min(n - 1, math.ceil(p / 100.0 * n) - 1))
    return float(sorted_values[k])


def summarize_ns(values: Sequence[int]) -> dict[str, float]:
    """p50/p90/p99/max/mean of nanosecond values, in microseconds."""
    s = sorted(values)
    if not s:
        return {"n": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    return {
        "n": len(s),
        "p50": percentile(s, 50) / 1000.0,
        "p90": percentile(s, 90) / 1000.0,
        "p99": percentile(s, 99) / 1000.0,
        "max": s[-1] / 1000.0,
        "mean": sum(s) / len(s) / 1000.0,
    }


@dataclass
class RunResult:
    """The outcome of one run (times in microseconds unless named otherwise)."""

    concurrency: int
    stream: bool
    ok: int = 0
    errors: int = 0
    timed_out: int = 0
    incomplete_streams: int = 0
    stalled_streams: int = 0  # a gap > pacing + stall_ms, or a first chunk later than stall_ms
    late_first_chunk: int = 0  # streams whose first content chunk came later than stall_ms
    cache_hits: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    rate: float = 0.0  # ok requests (or complete streams) per second
    latency_us: dict[str, float] = field(default_factory=dict)
    ttft_us: dict[str, float] = field(default_factory=dict)
    gap_us: dict[str, float] = field(default_factory=dict)
    chunks: int = 0
    driver_cpu_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class _Run:
    """Bookkeeping shared by the connections of one run."""

    def __init__(
        self,
        work: Workload,
        total: int,
        deadline_ns: int,
        collect_gaps: bool,
        stall_ms: float,
        result: RunResult,
    ) -> None:
        self.work = work
        self.request = work.request
        self.stream = work.stream
        self.remaining = total
        self.deadline_ns = deadline_ns
        self.collect_gaps = collect_gaps
        self.stall_ns = int((work.interval_ms + stall_ms) * 1e6)
        self.first_stall_ns = int(stall_ms * 1e6)  # the upstream sends the first chunk at once
        self.result = result
        self.latencies = array("q")
        self.ttfts = array("q")
        self.gaps = array("q")
        self.active = 0
        self.first_send = 0
        self.last_done = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inflight: set[_Conn] = set()

    def take(self) -> bool:
        if self.remaining > 0 and perf_ns() < self.deadline_ns:
            self.remaining -= 1
            return True
        return False

    def start(self, conn: _Conn) -> None:
        if conn.transport is None or conn.transport.is_closing():
            return
        if self.take():
            self.active += 1
            self.inflight.add(conn)
            conn.send(self)

    def finished(self, conn: _Conn, ok: bool) -> None:
        """Called by a connection when its request ended; sends the next or retires."""
        now = conn.now
        self.last_done = now
        res = self.result
        if ok:
            res.ok += 1
            self.latencies.append(now - conn.t_send)
        else:
            res.errors += 1
        if (
            conn.transport is not None
            and not conn.transport.is_closing()
            and conn.keep_alive
            and self.take()
        ):
            conn.send(self)
            return
        self.inflight.discard(conn)
        self.release()

    def release(self) -> None:
        self.active -= 1
        if self.active == 0 and not self.done.done():
            self.done.set_result(None)


class _Conn(asyncio.Protocol):
    """One keep-alive client connection."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.run: _Run | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.t_send = 0
        self.now = 0
        self.status = 0
        self.keep_alive = True
        self.cache_hit = False
        self.buf = b""
        self.first = 0
        self.last = 0
        self.max_gap = 0
        self.nchunks = 0
        self.saw_done = False
        self.stream_error = False

    # asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        run = self.run
        if run is not None and self in run.inflight:
            self.now = perf_ns()
            self.keep_alive = False
            self.run = None
            run.finished(self, False)

    def data_received(self, data: bytes) -> None:
        self.now = perf_ns()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    # request
    def send(self, run: _Run) -> None:
        self.run = run
        self.status = 0
        self.cache_hit = False
        if run.stream:
            self.buf = b""
            self.first = 0
            self.last = 0
            self.max_gap = 0
            self.nchunks = 0
            self.saw_done = False
            self.stream_error = False
        assert self.transport is not None
        self.t_send = perf_ns()
        if run.first_send == 0:
            run.first_send = self.t_send
        self.transport.write(run.request)

    # httptools
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 7 and name.lower() == b"x-cache" and value[:3].upper() == b"HIT":
            self.cache_hit = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        run = self.run
        if run is not None and run.stream:
            self._sse(body, run)

    def on_message_complete(self) -> None:
        run = self.run
        if run is None:
            return
        self.keep_alive = self.parser.should_keep_alive()
        res = run.result
        key = str(self.status)
        res.status_counts[key] = res.status_counts.get(key, 0) + 1
        if self.cache_hit:
            res.cache_hits += 1
        ok = self.status == 200
        if ok and run.stream:
            work = run.work
            complete = (
                self.saw_done
                and not self.stream_error
                and (work.expected_chunks is None or self.nchunks == work.expected_chunks)
            )
            if not complete:
                res.incomplete_streams += 1
                ok = False
            else:
                res.chunks += self.nchunks
                ttft = self.first - self.t_send if self.first else 0
                if self.first:
                    run.ttfts.append(ttft)
                late = ttft > run.first_stall_ns
                if late:
                    res.late_first_chunk += 1
                if late or self.max_gap > run.stall_ns:
                    res.stalled_streams += 1
        if not self.keep_alive and self.transport is not None:
            self.transport.close()
        run.finished(self, ok)

    # SSE
    def _sse(self, body: bytes, run: _Run) -> None:
        if self.buf:
            body = self.buf + body
        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
        start = 0
        find = body.find
        while True:
            end = find(b"\n\n", start)
            if end < 0:
                break
            self._event(body, start, end, run)
            start = end + 2
        self.buf = body[start:] if start < len(body) else b""

    def _event(self, body: bytes, start: int, end: int, run: _Run) -> None:
        i = body.find(b'"content"', start, end)
        if i >= 0:
            j = i + 9
            while j < end and body[j] in b" :":
                j += 1
            if j + 1 < end and body[j] == 34 and body[j + 1] != 34:  # a non-empty string
                now = self.now
                if self.first == 0:
                    self.first = now
                else:
                    gap = now - self.last
                    if gap > self.max_gap:
                        self.max_gap = gap
                    if run.collect_gaps:
                        run.gaps.append(gap)
                self.last = now
                self.nchunks += 1
            return
        if body.startswith(b"data: [DONE]", start) or body.startswith(b"data:[DONE]", start):
            self.saw_done = True
        elif body.find(b'"error"', start, end) >= 0 and body.find(b'"choices"', start, end) < 0:
            self.stream_error = True


class Pool:
    """``size`` keep-alive connections to ``host:port`` (loopback only)."""

    def __init__(self, host: str, port: int, size: int) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the driver only targets loopback")
        self.host = host
        self.port = port
        self.size = size
        self.conns: list[_Conn] = []

    async def _open(self, sem: asyncio.Semaphore) -> _Conn:
        async with sem:
            loop = asyncio.get_running_loop()
            _t, proto = await asyncio.wait_for(
                loop.create_connection(_Conn, self.host, self.port), timeout=10.0
            )
            return proto

    async def connect(self, parallel: int = 64) -> None:
        """(Re)open every connection that is not open."""
        sem = asyncio.Semaphore(parallel)
        keep = [c for c in self.conns if c.transport is not None and not c.transport.is_closing()]
        fresh = await asyncio.gather(*(self._open(sem) for _ in range(self.size - len(keep))))
        self.conns = keep + list(fresh)

    def close(self) -> None:
        for c in self.conns:
            if c.transport is not None:
                c.transport.close()
        self.conns = []

    async def run(
        self,
        work: Workload,
        *,
        total: int,
        duration_s: float,
        ramp_s: float = 0.0,
        collect_gaps: bool = False,
        stall_ms: float = 100.0,
        grace_s: float = 10.0,
    ) -> RunResult:
        """Run ``total`` requests (or ``duration_s``) over all connections, closed loop."""
        await self.connect()
        loop = asyncio.get_running_loop()
        result = RunResult(concurrency=self.size, stream=work.stream)
        cpu0 = time.process_time()
        start_ns = perf_ns()
        run = _Run(work, total, start_ns + int(duration_s * 1e9), collect_gaps, stall_ms, result)
        run.active = 1  # held until every connection has been started (after the ramp)
        handles: list[asyncio.TimerHandle] = []
        for i, conn in enumerate(self.conns):
            if ramp_s > 0 and i:
                handles.append(loop.call_later(ramp_s * i / self.size, run.start, conn))
            else:
                run.start(conn)
        if ramp_s > 0:
            handles.append(loop.call_later(ramp_s, run.release))
        else:
            run.release()
        try:
            await asyncio.wait_for(asyncio.shield(run.done), duration_s + ramp_s + grace_s)
        except TimeoutError:
            result.timed_out = len(run.inflight)
            for conn in list(run.inflight):
                conn.run = None
                if conn.transport is not None:
                    conn.transport.abort()
        for h in handles:
            h.cancel()
        result.driver_cpu_s = time.process_time() - cpu0
        end = run.last_done or perf_ns()
        result.wall_s = max(1e-9, (end - (run.first_send or start_ns)) / 1e9)
        result.rate = result.ok / result.wall_s
        result.latency_us = summarize_ns(run.latencies)
        if work.stream:
            result.ttft_us = summarize_ns(run.ttfts)
            if collect_gaps:
                result.gap_us = summarize_ns(run.gaps)
        return result
