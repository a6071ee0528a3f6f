"""Fault injection over real sockets: gateway → faulty fake upstreams on 127.0.0.1.

Each test runs a fresh gateway (breakers and latency stats are per gateway) in front of a
``primary`` route that misbehaves in one scripted way and a healthy ``secondary`` route,
and checks three things: the outcome (status, content, which route served it, how many
upstream attempts were made), how long it took (bounded from both sides where the
behaviour implies a wait), and, for streams, that the client saw exactly one route's
answer (or a prefix of it, ended by an in-stream error) and never a duplicated or spliced
one. Timeouts are tenths of a second so the file runs in well under a minute.

docs/reliability.md tabulates these scenarios; keep the two in step.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import serve_gateway
from tests.fakes.faulty_upstream import (
    Behaviour,
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
from tests.fakes.server import RunningServer

pytestmark = pytest.mark.timeout(15)

MESSAGES = [{"role": "user", "content": "hi"}]
# Generous upper slack for scheduling on a loaded CI machine; lower bounds are exact.
SLACK = 0.5


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def primary() -> Iterator[FaultyUpstream]:
    with FaultyUpstream("primary") as up:
        yield up


@pytest.fixture
def secondary() -> Iterator[FaultyUpstream]:
    with FaultyUpstream("secondary") as up:
        yield up


def provider(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "openai_compatible", "base_url": base_url, "connect_timeout": 0.5, **extra}


def model(*routes: str, **settings: Any) -> dict[str, Any]:
    """A model with small, fast reliability settings; ``settings`` override them."""
    base: dict[str, Any] = {
        "routes": list(routes),
        "timeout": 5.0,
        "retries": {"attempts": 2, "base_delay": 0.05, "max_delay": 2.0},
        "breaker": {"failures": 5, "cooldown_seconds": 30},
    }
    base.update(settings)
    return base


def two_routes(
    primary_url: str,
    secondary_url: str,
    *,
    providers: dict[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Config with model ``m``: primary/p-model first, secondary/s-model as fallback."""
    return {
        "server": {"heartbeat_seconds": 30},
        "providers": {
            "primary": provider(primary_url, **(providers or {}).get("primary", {})),
            "secondary": provider(secondary_url, **(providers or {}).get("secondary", {})),
        },
        "models": {"m": model("primary/p-model", "secondary/s-model", **settings)},
    }


def one_route(primary_url: str, **settings: Any) -> dict[str, Any]:
    return {
        "server": {"heartbeat_seconds": 30},
        "providers": {"primary": provider(primary_url)},
        "models": {"m": model("primary/p-model", **settings)},
    }


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: Any
    elapsed: float

    @property
    def content(self) -> str:
        return str(self.body["choices"][0]["message"]["content"])

    @property
    def error(self) -> dict[str, Any]:
        return dict(self.body["error"])


@dataclass
class StreamReply:
    status: int
    headers: httpx.Headers
    elapsed: float
    body: Any = None  # the JSON error body when the stream never started
    content: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)
    content_after_error: str = ""
    role_chunks: int = 0
    done: bool = False
    first_byte_after: float | None = None

    @property
    def error(self) -> dict[str, Any]:
        if self.errors:
            return dict(self.errors[0]["error"])
        return dict(self.body["error"])


async def complete(gw: RunningServer, name: str = "m", **extra: Any) -> Reply:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": name, "messages": MESSAGES, **extra},
        )
    elapsed = time.monotonic() - started
    return Reply(r.status_code, r.headers, r.json(), elapsed)


async def stream(gw: RunningServer, name: str = "m", **extra: Any) -> StreamReply:
    """A streamed completion read as raw SSE, so every frame the client got is visible."""
    started = time.monotonic()
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "POST",
            f"{gw.url}/v1/chat/completions",
            json={"model": name, "messages": MESSAGES, "stream": True, **extra},
        ) as r,
    ):
        out = StreamReply(r.status_code, r.headers, 0.0)
        if r.status_code != 200 or not r.headers.get("content-type", "").startswith(
            "text/event-stream"
        ):
            out.body = json.loads(await r.aread())
            out.elapsed = time.monotonic() - started
            return out
        try:
            async for line in r.aiter_lines():
                if out.first_byte_after is None:
                    out.first_byte_after = time.monotonic() - started
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    out.done = True
                    continue
                frame = json.loads(data)
                if "error" in frame:
                    out.errors.append(frame)
                    continue
                for choice in frame.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("role"):
                        out.role_chunks += 1
                    text = delta.get("content") or ""
                    if out.errors:
                        out.content_after_error += text
                    else:
                        out.content += text
        except httpx.TransportError as exc:  # a stream must end cleanly, never be cut
            raise AssertionError(
                f"the gateway cut the stream instead of closing it: {exc!r}"
            ) from exc
    out.elapsed = time.monotonic() - started
    return out


def served_by(reply: Reply | StreamReply, route: str, attempts: int | None = None) -> None:
    assert reply.status == 200, reply.body
    assert reply.headers.get("x-gateway-provider") == route
    if attempts is not None:
        assert reply.headers.get("x-gateway-attempts") == str(attempts)


def exactly_one_answer(reply: StreamReply, answer: str) -> None:
    """The whole answer of one route, once, and a clean end: no duplicate, no splice."""
    assert reply.errors == [], reply.errors
    assert reply.content == answer
    assert reply.role_chunks == 1
    assert reply.done


def prefix_then_error(reply: StreamReply, answer: str, code: str | None = None) -> None:
    """A non-empty strict prefix of one route's answer, then one error event, nothing more."""
    assert reply.status == 200
    assert reply.content and answer.startswith(reply.content) and reply.content != answer, (
        reply.content
    )
    assert len(reply.errors) == 1, reply.errors
    assert reply.content_after_error == ""
    assert reply.role_chunks == 1
    if code is not None:
        assert reply.error["code"] == code, reply.error


def within(elapsed: float, low: float, high: float) -> None:
    assert low <= elapsed <= high, f"took {elapsed:.3f}s, expected {low}..{high}s"


# --- baseline ------------------------------------------------------------------------------


async def test_healthy_route_sets_the_gateway_headers(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await complete(gw)
        streamed = await stream(gw)
    served_by(reply, "primary", attempts=1)
    assert reply.content == primary.answer
    assert reply.headers.get("x-gateway-model") == "p-model"
    overhead = float(reply.headers["x-gateway-overhead-ms"])
    assert 0 <= overhead < reply.elapsed * 1000
    served_by(streamed, "primary", attempts=1)
    assert streamed.headers.get("x-gateway-model") == "p-model"
    assert float(streamed.headers["x-gateway-overhead-ms"]) >= 0
    exactly_one_answer(streamed, primary.answer)
    assert secondary.chat_requests == []


# --- connection-level faults -------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
async def test_connection_refused_falls_back_quickly(
    secondary: FaultyUpstream, streaming: bool
) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/v1"
    with serve_gateway(two_routes(refused, secondary.url)) as gw:
        reply = await (stream(gw) if streaming else complete(gw))
    served_by(reply, "secondary")
    # Every try on the refused route is an attempt; there are at most retries.attempts.
    assert reply.headers.get("x-gateway-attempts") in ("2", "3")
    within(reply.elapsed, 0, 0.5 + SLACK)
    if isinstance(reply, StreamReply):
        exactly_one_answer(reply, secondary.answer)
    else:
        assert reply.content == secondary.answer
    assert len(secondary.chat_requests) == 1


async def test_connect_timeout_is_its_own_error_then_falls_back(
    secondary: FaultyUpstream,
) -> None:
    with BlackholePort() as hole:
        solo = one_route(hole.url, retries={"attempts": 1})
        solo["providers"]["primary"]["connect_timeout"] = 0.2
        with serve_gateway(solo) as gw:
            failed = await complete(gw)
        config = two_routes(
            hole.url, secondary.url, providers={"primary": {"connect_timeout": 0.2}}
        )
        config["models"]["m"]["retries"] = {"attempts": 1}
        with serve_gateway(config) as gw:
            reply = await complete(gw)
    assert failed.status == 504, failed.body
    assert failed.error["code"] == "connect_timeout"
    within(failed.elapsed, 0.2, 0.2 + SLACK)
    served_by(reply, "secondary", attempts=2)
    within(reply.elapsed, 0.2, 0.2 + SLACK)


async def test_reset_before_response_retries_then_falls_back(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = reset_before_response()
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await complete(gw)
    served_by(reply, "secondary", attempts=3)
    assert reply.content == secondary.answer
    assert len(primary.chat_requests) == 2  # retries.attempts on the first route
    assert all(r.reset for r in primary.chat_requests)
    within(reply.elapsed, 0, 0.6 + SLACK)


async def test_reset_before_response_then_recovery_is_retried_on_the_same_route(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(reset_before_response())
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await stream(gw)
    served_by(reply, "primary", attempts=2)
    exactly_one_answer(reply, primary.answer)
    assert secondary.chat_requests == []
    within(reply.elapsed, 0, 0.3 + SLACK)


async def test_reset_mid_stream_is_an_in_stream_error_without_fallback(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(reset_mid_stream(after_chunks=2))
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await stream(gw)
    served_by(reply, "primary", attempts=1)
    prefix_then_error(reply, primary.answer)
    assert reply.content == "".join(primary.default_text[:2])
    assert secondary.chat_requests == []  # the first byte was out: no fallback, no splice
    assert len(primary.chat_requests) == 1  # and no retry either
    within(reply.elapsed, 0, 0.3 + SLACK)


async def test_reset_mid_stream_surfaces_as_an_sdk_error_after_the_prefix(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(reset_mid_stream(after_chunks=1))
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0, timeout=10)
        seen: list[str] = []
        with pytest.raises(openai.APIError):
            events = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async for chunk in events:
                if chunk.choices and chunk.choices[0].delta.content:
                    seen.append(chunk.choices[0].delta.content)
        await client.close()
    assert "".join(seen) == primary.default_text[0]
    assert secondary.chat_requests == []


# --- HTTP status faults --------------------------------------------------------------------


async def test_429_retry_after_is_honoured_on_the_same_route(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(status(429, retry_after=1))
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await complete(gw)
    served_by(reply, "primary", attempts=2)
    assert reply.content == primary.answer
    first, second = primary.chat_requests
    assert second.arrived_at - first.arrived_at >= 0.95  # waited the Retry-After
    within(reply.elapsed, 0.95, 1.0 + SLACK)
    assert secondary.chat_requests == []


async def test_429_retry_after_beyond_max_delay_falls_back_at_once(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(status(429, retry_after=30))
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await stream(gw)
    served_by(reply, "secondary", attempts=2)
    exactly_one_answer(reply, secondary.answer)
    assert len(primary.chat_requests) == 1  # no point waiting 30 s on this route
    within(reply.elapsed, 0, 0.3 + SLACK)


async def test_429_retry_after_beyond_the_deadline_is_not_waited_for(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    # Within max_delay (2 s) but not within the model's deadline (1.5 s).
    primary.queue(status(429, retry_after=2))
    with serve_gateway(two_routes(primary.url, secondary.url, timeout=1.5)) as gw:
        reply = await complete(gw)
    served_by(reply, "secondary", attempts=2)
    within(reply.elapsed, 0, 0.3 + SLACK)


async def test_500_retries_then_falls_back(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = status(500)
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await stream(gw)
    served_by(reply, "secondary", attempts=3)
    exactly_one_answer(reply, secondary.answer)
    assert len(primary.chat_requests) == 2
    # One backoff sleep of at most base_delay * 2**0 (full jitter) between the tries.
    within(reply.elapsed, 0, 0.05 + 0.3 + SLACK)


async def test_529_overloaded_falls_back(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = status(529)
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await complete(gw)
    served_by(reply, "secondary")
    assert reply.content == secondary.answer
    assert 1 <= len(primary.chat_requests) <= 2
    assert reply.headers["x-gateway-attempts"] == str(len(primary.chat_requests) + 1)
    within(reply.elapsed, 0, 0.3 + SLACK)


async def test_every_route_failing_names_each_failure(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = status(500)
    secondary.default = status(529)
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await complete(gw)
    assert reply.status >= 500
    assert "primary" in reply.error["message"] and "secondary" in reply.error["message"]
    within(reply.elapsed, 0, 0.5 + SLACK)


async def test_callers_own_400_is_passed_through_without_retry_or_fallback(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(status(400))
    with serve_gateway(two_routes(primary.url, secondary.url)) as gw:
        reply = await stream(gw)
    assert reply.status == 400, reply.body
    assert reply.error["type"] == "invalid_request_error"
    assert "primary: scripted 400" in reply.error["message"]
    assert len(primary.chat_requests) == 1
    assert secondary.chat_requests == []
    within(reply.elapsed, 0, 0.2 + SLACK)


async def test_429_reaches_the_caller_with_retry_after_when_no_route_can_wait(
    primary: FaultyUpstream,
) -> None:
    primary.queue(status(429, retry_after=30))
    with serve_gateway(one_route(primary.url)) as gw:
        reply = await complete(gw)
    assert reply.status == 429, reply.body
    assert float(reply.headers["retry-after"]) == 30
    assert len(primary.chat_requests) == 1
    within(reply.elapsed, 0, 0.2 + SLACK)


# --- timeouts ------------------------------------------------------------------------------


async def test_hang_before_first_byte_is_a_first_token_timeout_then_fallback(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = hang_before_headers(5)
    config = two_routes(
        primary.url, secondary.url, first_token_timeout=0.3, retries={"attempts": 1}
    )
    with serve_gateway(config) as gw:
        reply = await stream(gw)
    served_by(reply, "secondary", attempts=2)
    exactly_one_answer(reply, secondary.answer)
    within(reply.elapsed, 0.3, 0.3 + SLACK)
    # The abandoned attempt's connection is closed, not left to hang for 5 s.
    await primary.await_for(lambda: primary.chat_requests[0].aborted_at is not None, 1.0)


async def test_first_token_timeout_is_its_own_error_code(primary: FaultyUpstream) -> None:
    primary.default = hang_before_headers(5)
    config = one_route(primary.url, first_token_timeout=0.3, retries={"attempts": 1})
    with serve_gateway(config) as gw:
        reply = await stream(gw)
    assert reply.status == 504, reply.body
    assert reply.error["code"] == "first_token_timeout"
    within(reply.elapsed, 0.3, 0.3 + SLACK)


async def test_provider_first_token_timeout_applies_when_the_model_sets_none(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = hang_before_headers(5)
    config = two_routes(
        primary.url,
        secondary.url,
        providers={"primary": {"first_token_timeout": 0.3}},
        retries={"attempts": 1},
    )
    with serve_gateway(config) as gw:
        reply = await stream(gw)
    served_by(reply, "secondary", attempts=2)
    within(reply.elapsed, 0.3, 0.3 + SLACK)


async def test_silent_mid_stream_is_an_idle_timeout_error_in_the_stream(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(silent_mid_stream(after_chunks=2, seconds=5))
    with serve_gateway(two_routes(primary.url, secondary.url, idle_timeout=0.3)) as gw:
        reply = await stream(gw)
    served_by(reply, "primary", attempts=1)
    prefix_then_error(reply, primary.answer, code="idle_timeout")
    assert secondary.chat_requests == []
    within(reply.elapsed, 0.3, 0.3 + SLACK)
    await primary.await_for(lambda: primary.chat_requests[0].aborted_at is not None, 1.0)


async def test_silence_after_headers_before_any_content_is_still_free_to_fall_back(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    # Headers and the role chunk arrive, then nothing: no content has reached the client,
    # so this is a first-token timeout and the next route may still serve.
    primary.queue(silent_mid_stream(after_chunks=0, seconds=5))
    config = two_routes(
        primary.url, secondary.url, first_token_timeout=0.3, retries={"attempts": 1}
    )
    with serve_gateway(config) as gw:
        reply = await stream(gw)
    served_by(reply, "secondary", attempts=2)
    exactly_one_answer(reply, secondary.answer)
    within(reply.elapsed, 0.3, 0.3 + SLACK)


@pytest.mark.parametrize(
    "fault",
    [reset_mid_stream(after_chunks=0), silent_mid_stream(after_chunks=0, seconds=5)],
    ids=["reset", "silent"],
)
async def test_non_stream_answer_cut_mid_body_falls_back(
    primary: FaultyUpstream, secondary: FaultyUpstream, fault: Behaviour
) -> None:
    # A JSON answer is only sent to the client once complete: a body cut short (reset, or
    # silence past the idle timeout) costs nothing but time, and the next route serves.
    primary.default = fault
    config = two_routes(
        primary.url, secondary.url, idle_timeout=0.3, retries={"attempts": 1}, timeout=2.0
    )
    with serve_gateway(config) as gw:
        reply = await complete(gw)
    served_by(reply, "secondary", attempts=2)
    assert reply.content == secondary.answer
    within(reply.elapsed, 0, 0.3 + SLACK)


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
async def test_provider_idle_timeout_does_not_cut_the_wait_for_the_first_byte(
    primary: FaultyUpstream, streaming: bool
) -> None:
    # idle_timeout is "the longest silent gap between chunks"; the wait for the first byte
    # is the first-token phase (its own timeout, here 2 s), and a JSON answer's headers
    # only come once the whole completion is generated.
    primary.queue(hang_before_headers(0.6))
    config = one_route(primary.url, first_token_timeout=2.0, retries={"attempts": 1})
    config["providers"]["primary"]["idle_timeout"] = 0.3
    with serve_gateway(config) as gw:
        reply = await (stream(gw) if streaming else complete(gw))
    served_by(reply, "primary", attempts=1)
    within(reply.elapsed, 0.6, 0.6 + SLACK)


async def test_slow_stream_within_the_idle_timeout_completes(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    # 4 gaps of 0.15 s: each under the idle timeout, their sum well over it.
    primary.queue(slow(0.15))
    with serve_gateway(two_routes(primary.url, secondary.url, idle_timeout=0.3)) as gw:
        reply = await stream(gw)
    served_by(reply, "primary", attempts=1)
    exactly_one_answer(reply, primary.answer)
    within(reply.elapsed, 0.6, 0.6 + SLACK)


async def test_total_deadline_before_the_first_byte(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = hang_before_headers(5)
    secondary.default = hang_before_headers(5)
    with serve_gateway(two_routes(primary.url, secondary.url, timeout=0.8)) as gw:
        reply = await complete(gw)
    assert reply.status == 504, reply.body
    assert reply.error["code"] == "total_timeout"
    within(reply.elapsed, 0.8, 0.8 + SLACK)
    await primary.await_for(lambda: primary.chat_requests[0].aborted_at is not None, 1.0)


async def test_total_deadline_mid_stream_is_an_in_stream_error(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(slow(0.3))  # 4 gaps of 0.3 s: the whole answer needs 1.2 s
    with serve_gateway(two_routes(primary.url, secondary.url, timeout=0.8)) as gw:
        reply = await stream(gw)
    served_by(reply, "primary", attempts=1)
    prefix_then_error(reply, primary.answer, code="total_timeout")
    assert secondary.chat_requests == []
    within(reply.elapsed, 0.8, 0.8 + SLACK)


# --- circuit breaker -------------------------------------------------------------------------


async def test_breaker_opens_skips_the_route_probes_once_and_closes(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = status(500)
    config = two_routes(
        primary.url,
        secondary.url,
        retries={"attempts": 1},
        breaker={"failures": 3, "cooldown_seconds": 0.8},
    )
    with serve_gateway(config) as gw:
        for _ in range(3):  # three consecutive failures open the breaker
            served_by(await complete(gw), "secondary", attempts=2)
        assert len(primary.chat_requests) == 3
        opened_at = time.monotonic()

        # Open: the failing route is not touched; the request goes straight to the next.
        skipped = await complete(gw)
        served_by(skipped, "secondary", attempts=1)
        assert len(primary.chat_requests) == 3
        within(skipped.elapsed, 0, 0.2)

        # After the cooldown: one probe (slow, so others arrive while it is in flight).
        await asyncio.sleep(max(0.0, opened_at + 0.8 + 0.05 - time.monotonic()))
        primary.default = ok()
        primary.queue(ok(headers_delay=0.4))
        probe_and_others = await asyncio.gather(
            complete(gw), *(_later(complete(gw), 0.1) for _ in range(3))
        )
        assert len(primary.chat_requests) == 4  # exactly one probe reached the route
        providers = sorted(r.headers["x-gateway-provider"] for r in probe_and_others)
        assert providers == ["primary", "secondary", "secondary", "secondary"]

        # The probe succeeded: the breaker is closed, the route serves again.
        closed = await complete(gw)
        served_by(closed, "primary", attempts=1)


async def test_breaker_failed_probe_reopens_for_another_cooldown(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.default = status(500)
    config = two_routes(
        primary.url,
        secondary.url,
        retries={"attempts": 1},
        breaker={"failures": 2, "cooldown_seconds": 0.5},
    )
    with serve_gateway(config) as gw:
        for _ in range(2):
            await complete(gw)
        await asyncio.sleep(0.6)
        probe = await complete(gw)  # the probe fails: open again
        served_by(probe, "secondary", attempts=2)
        assert len(primary.chat_requests) == 3
        after = await complete(gw)
        served_by(after, "secondary", attempts=1)
        assert len(primary.chat_requests) == 3


async def test_breaker_opens_on_the_failure_ratio_of_its_window(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    # Never two failures in a row, but the 4th call (a failure) makes half of a full 4-call
    # window failed. (The ratio is judged when a failure is recorded.)
    primary.queue(ok(), status(500), ok(), status(500))
    config = two_routes(
        primary.url,
        secondary.url,
        retries={"attempts": 1},
        breaker={"failures": 10, "failure_ratio": 0.5, "window": 4, "cooldown_seconds": 30},
    )
    with serve_gateway(config) as gw:
        for _ in range(4):
            assert (await complete(gw)).status == 200
        assert len(primary.chat_requests) == 4
        skipped = await complete(gw)
    served_by(skipped, "secondary", attempts=1)
    assert len(primary.chat_requests) == 4


async def test_callers_own_400s_do_not_open_the_breaker(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    primary.queue(status(400), status(400), status(400))
    config = two_routes(primary.url, secondary.url, breaker={"failures": 2, "cooldown_seconds": 30})
    with serve_gateway(config) as gw:
        for _ in range(3):
            assert (await complete(gw)).status == 400
        reply = await complete(gw)
    served_by(reply, "primary", attempts=1)
    assert secondary.chat_requests == []


async def test_single_route_outage_fails_fast_once_the_breaker_opens(
    primary: FaultyUpstream,
) -> None:
    primary.default = status(500)
    config = one_route(
        primary.url,
        retries={"attempts": 3, "base_delay": 0.1, "max_delay": 0.1},
        breaker={"failures": 3, "cooldown_seconds": 1.0},
    )
    with serve_gateway(config) as gw:
        first = await complete(gw)  # three failed attempts: three consecutive failures
        assert first.status >= 500
        assert len(primary.chat_requests) == 3
        opened_at = time.monotonic()

        fast = await complete(gw)
        assert fast.status == 503, fast.body
        assert len(primary.chat_requests) == 3  # the upstream was not touched
        within(fast.elapsed, 0, 0.1)
        message = fast.error["message"].lower()
        assert "circuit" in message and "open" in message, message
        # ...and when the route will be tried again, as a duration.
        assert re.search(r"\d+(\.\d+)?\s*(s|sec|seconds?)\b", message), message
        retry_after = float(fast.headers["retry-after"])
        assert 0 < retry_after <= 1.0 + 1  # the header is whole seconds, rounded up

        # The outage ends; after the cooldown one probe gets through and closes the breaker.
        primary.default = ok()
        await asyncio.sleep(max(0.0, opened_at + 1.0 + 0.05 - time.monotonic()))
        probe = await complete(gw)
        served_by(probe, "primary", attempts=1)
        served_by(await complete(gw), "primary", attempts=1)
        assert len(primary.chat_requests) == 5


async def test_single_route_streams_also_fail_fast_while_open(primary: FaultyUpstream) -> None:
    primary.default = status(500)
    config = one_route(
        primary.url,
        retries={"attempts": 2, "base_delay": 0.1, "max_delay": 0.1},
        breaker={"failures": 2, "cooldown_seconds": 5},
    )
    with serve_gateway(config) as gw:
        await stream(gw)
        fast = await stream(gw)
    assert fast.status == 503, fast.body
    assert "circuit" in fast.error["message"].lower()
    within(fast.elapsed, 0, 0.1)
    assert len(primary.chat_requests) == 2


# --- hedging ---------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
async def test_hedge_uses_the_faster_route_and_cancels_the_slow_one(
    primary: FaultyUpstream, secondary: FaultyUpstream, streaming: bool
) -> None:
    primary.queue(hang_before_headers(3))
    config = two_routes(primary.url, secondary.url, hedge={"after_ms": 200})
    with serve_gateway(config) as gw:
        reply = await (stream(gw) if streaming else complete(gw))
        served_by(reply, "secondary", attempts=2)
        if isinstance(reply, StreamReply):
            exactly_one_answer(reply, secondary.answer)
        else:
            assert reply.content == secondary.answer
        within(reply.elapsed, 0.2, 0.2 + SLACK)
        (slow_one,) = primary.chat_requests
        (fast_one,) = secondary.chat_requests
        assert 0.18 <= fast_one.arrived_at - slow_one.arrived_at <= 0.2 + SLACK
        # The loser is cancelled: its upstream connection is closed right away.
        await primary.await_for(lambda: slow_one.aborted_at is not None, 1.0)
        assert slow_one.aborted_at is not None
        assert slow_one.aborted_at - (fast_one.finished_at or 0) < 0.5


async def test_hedge_is_not_started_when_the_first_route_is_quick(
    primary: FaultyUpstream, secondary: FaultyUpstream
) -> None:
    config = two_routes(primary.url, secondary.url, hedge={"after_ms": 300})
    with serve_gateway(config) as gw:
        reply = await stream(gw)
        await asyncio.sleep(0.4)  # past the hedge delay: still nothing on the second route
    served_by(reply, "primary", attempts=1)
    exactly_one_answer(reply, primary.answer)
    assert secondary.chat_requests == []


# --- graceful shutdown -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(
    tmp_path: Path, upstream: FaultyUpstream, drain_seconds: float
) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port, "graceful_shutdown_seconds": drain_seconds},
        "providers": {"up": {"type": "openai_compatible", "base_url": upstream.url}},
        "models": {"m": {"routes": ["up/u-model"]}},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith("LLM_GATEWAY_")
    }
    env["HOME"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_gateway", "serve", "--config", str(path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                _, err = proc.communicate(timeout=5)
                raise RuntimeError(f"llm-gateway serve did not start: {err}") from None
            time.sleep(0.05)


class _StreamReader(threading.Thread):
    """Reads one streamed completion in the background, noting when content first came."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.first_content = threading.Event()
        self.content = ""
        self.done = False
        self.failure: BaseException | None = None
        self.ended_at = 0.0

    def run(self) -> None:
        try:
            body = {"model": "m", "messages": MESSAGES, "stream": True}
            with httpx.stream(
                "POST", f"http://127.0.0.1:{self.port}/v1/chat/completions", json=body, timeout=10
            ) as r:
                for line in r.iter_lines():
                    if line == "data: [DONE]":
                        self.done = True
                    elif line.startswith("data: "):
                        frame = json.loads(line[6:])
                        for choice in frame.get("choices") or []:
                            self.content += (choice.get("delta") or {}).get("content") or ""
                        if self.content:
                            self.first_content.set()
        except BaseException as exc:
            self.failure = exc
        finally:
            self.ended_at = time.monotonic()
            self.first_content.set()


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


@pytest.mark.timeout(30)
def test_sigterm_drains_an_in_flight_stream_and_refuses_new_connections(
    tmp_path: Path, primary: FaultyUpstream
) -> None:
    primary.default = slow(0.25)  # 4 gaps: about 1 s of streaming
    proc, port = _serve(tmp_path, primary, drain_seconds=5)
    try:
        reader = _StreamReader(port)
        reader.start()
        assert reader.first_content.wait(5) and reader.failure is None, reader.failure
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # Stops accepting at once...
        refused_at = None
        while time.monotonic() - signalled < 0.8:
            if _refused(port):
                refused_at = time.monotonic()
                break
            time.sleep(0.02)
        assert refused_at is not None, "new connections were still accepted after SIGTERM"
        # ...while the in-flight stream runs to its end...
        reader.join(5)
        assert reader.failure is None, reader.failure
        assert reader.content == primary.answer and reader.done
        assert reader.ended_at - signalled >= 0.5  # it really was in flight
        # ...and then the process exits promptly.
        proc.wait(timeout=3)
        assert time.monotonic() - reader.ended_at < 1.5
        assert proc.returncode in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


@pytest.mark.timeout(30)
def test_sigterm_closes_streams_still_running_after_the_drain_timeout(
    tmp_path: Path, primary: FaultyUpstream
) -> None:
    primary.default = slow(1.0)  # 4 gaps of 1 s: longer than the 1 s drain
    proc, port = _serve(tmp_path, primary, drain_seconds=1)
    try:
        reader = _StreamReader(port)
        reader.start()
        assert reader.first_content.wait(5) and reader.failure is None, reader.failure
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        proc.wait(timeout=5)
        exited = time.monotonic() - signalled
        within(exited, 0.9, 1.0 + 1.5)
        reader.join(3)
        assert not reader.is_alive()
        assert not reader.done  # cut short, and the client was not left hanging
        assert primary.answer.startswith(reader.content)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


async def _later(coro: Any, delay: float) -> Any:
    await asyncio.sleep(delay)
    return await coro
