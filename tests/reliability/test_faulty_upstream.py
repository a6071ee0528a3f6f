"""The fault-injecting fake itself, checked with plain httpx (no gateway involved), so a
failing reliability test points at the gateway and not at the fake."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.faulty_upstream import (
    BlackholePort,
    FaultyUpstream,
    closed_port,
    hang_before_headers,
    ok,
    reset_before_response,
    reset_mid_stream,
    silent_mid_stream,
    slow,
    status,
)

pytestmark = pytest.mark.timeout(10)

BODY = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def up() -> Iterator[FaultyUpstream]:
    with FaultyUpstream("fake") as upstream:
        yield upstream


def read_stream(client: httpx.Client, url: str) -> tuple[str, bool, list[float]]:
    """Content, whether [DONE] came, and the arrival time of each content chunk."""
    content, done, times = "", False, []
    with client.stream("POST", url, json={**BODY, "stream": True}) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        for line in r.iter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                if delta.get("content"):
                    content += delta["content"]
                    times.append(time.monotonic())
    return content, done, times


def test_ok_json_and_stream_on_one_keep_alive_connection(up: FaultyUpstream) -> None:
    up.queue(ok("a", "b"))
    with httpx.Client(timeout=5) as client:
        r = client.post(f"{up.url}/chat/completions", json=BODY)
        assert r.json()["choices"][0]["message"]["content"] == "ab"
        assert read_stream(client, f"{up.url}/chat/completions")[:2] == (up.answer, True)
    first, second = up.chat_requests
    assert first.connection == second.connection == 0
    assert second.stream and not first.stream
    assert first.finished_at is not None and first.aborted_at is None


def test_reset_before_response_is_a_connection_reset(up: FaultyUpstream) -> None:
    up.queue(reset_before_response())
    with pytest.raises(httpx.ReadError, match="reset"):
        httpx.post(f"{up.url}/chat/completions", json=BODY, timeout=5)
    assert up.chat_requests[0].reset


def test_reset_mid_stream_delivers_the_prefix_then_resets(up: FaultyUpstream) -> None:
    up.queue(reset_mid_stream(2))
    seen = ""
    with (
        pytest.raises(httpx.ReadError, match="reset"),
        httpx.stream("POST", f"{up.url}/chat/completions", json={**BODY, "stream": True}) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
    assert seen == "".join(up.default_text[:2])


def test_status_with_retry_after(up: FaultyUpstream) -> None:
    up.queue(status(429, retry_after=1), status(529))
    with httpx.Client(timeout=5) as client:
        r = client.post(f"{up.url}/chat/completions", json=BODY)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        assert client.post(f"{up.url}/chat/completions", json=BODY).status_code == 529


def test_hang_notices_the_client_leaving(up: FaultyUpstream) -> None:
    up.queue(hang_before_headers(5))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{up.url}/chat/completions", json=BODY, timeout=0.2)
    up.wait_for(lambda: up.chat_requests[0].aborted_at is not None, 1.0)
    record = up.chat_requests[0]
    assert record.aborted_at is not None and record.aborted_at - record.arrived_at < 0.5


def test_silent_and_slow_pace_the_chunks(up: FaultyUpstream) -> None:
    up.queue(silent_mid_stream(1, 0.3), slow(0.1))
    with httpx.Client(timeout=5) as client:
        content, done, times = read_stream(client, f"{up.url}/chat/completions")
        assert content == up.answer and done
        assert times[1] - times[0] >= 0.29
        content, done, times = read_stream(client, f"{up.url}/chat/completions")
        assert content == up.answer and done
        assert all(b - a >= 0.09 for a, b in itertools.pairwise(times))


def test_closed_port_refuses_and_blackhole_never_connects() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{closed_port()}/", timeout=1)
    with BlackholePort() as hole:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            httpx.get(hole.url, timeout=httpx.Timeout(5, connect=0.2))
        assert time.monotonic() - started < 1
