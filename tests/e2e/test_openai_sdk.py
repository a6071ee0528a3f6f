"""End to end over real sockets: the official openai SDK → gateway → fake OpenAI upstream."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import serve_gateway
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import ErrorSpec, Scenario, ToolCallSpec, UsageSpec
from tests.fakes.server import RunningServer, run_server

KEY = "sk-upstream-secret-123"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[OpenAIUpstream, RunningServer]]:
    upstream = OpenAIUpstream("openai", api_key=KEY)
    with run_server(upstream) as server:
        yield upstream, server


@pytest.fixture(scope="module")
def gateway(fake: tuple[OpenAIUpstream, RunningServer]) -> Iterator[RunningServer]:
    _, server = fake
    config: dict[str, Any] = {
        "server": {"heartbeat_seconds": 5},
        "providers": {
            "up": {"type": "openai", "api_key": KEY, "base_url": f"{server.url}/v1"},
            "down": {
                "type": "openai_compatible",
                "base_url": f"http://127.0.0.1:{closed_port()}/v1",
            },
        },
        "models": {
            "gpt": {"routes": [{"provider": "up", "model": "fake-model-small"}]},
            "resilient": {"routes": ["down/x", "up/fake-model-large"]},
        },
    }
    with serve_gateway(config) as gw:
        yield gw


@pytest.fixture
def upstream(fake: tuple[OpenAIUpstream, RunningServer]) -> OpenAIUpstream:
    fake[0].reset()
    return fake[0]


@pytest.fixture
def client(gateway: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=10
    )


@pytest.fixture
def aclient(gateway: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=10
    )


def test_sync_completion(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.queue(
        Scenario.reply("Bonjour", " le", " monde", usage=UsageSpec(12, 3, cached_tokens=4))
    )
    reply = client.chat.completions.create(
        model="gpt",
        messages=[{"role": "system", "content": "fr"}, {"role": "user", "content": "hi"}],
        temperature=0.1,
    )
    assert reply.choices[0].message.content == "Bonjour le monde"
    assert reply.model == "gpt"
    assert reply.usage is not None and (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    ) == (12, 3)
    assert (
        reply.usage.prompt_tokens_details is not None
        and reply.usage.prompt_tokens_details.cached_tokens == 4
    )
    sent = upstream.requests[-1]
    assert sent.body["model"] == "fake-model-small" and sent.body["temperature"] == 0.1
    assert sent.body["messages"] == [
        {"role": "system", "content": "fr"},
        {"role": "user", "content": "hi"},
    ]
    assert sent.headers["authorization"] == f"Bearer {KEY}"


def test_sync_stream_with_usage(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.queue(Scenario.reply("one", " two", " three", usage=UsageSpec(5, 3)))
    stream = client.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_async_streamed_parallel_tool_calls(
    aclient: openai.AsyncOpenAI, upstream: OpenAIUpstream
) -> None:
    upstream.queue(
        Scenario(
            tool_calls=(
                ToolCallSpec("call_1", "get_weather", '{"city": "Paris, France"}', fragments=4),
                ToolCallSpec("call_2", "get_weather", '{"city": "Tokyo"}', fragments=3),
            )
        )
    )
    stream = await aclient.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        stream=True,  # type: ignore[list-item]
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for tc in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            entry["id"] += tc.id or ""
            entry["name"] += (tc.function.name or "") if tc.function else ""
            entry["args"] += (tc.function.arguments or "") if tc.function else ""
    assert finish == "tool_calls"
    assert calls[0]["id"] == "call_1" and json.loads(calls[0]["args"]) == {"city": "Paris, France"}
    assert calls[1]["id"] == "call_2" and json.loads(calls[1]["args"]) == {"city": "Tokyo"}
    assert upstream.requests[-1].body["tools"] == [WEATHER]


async def test_async_multi_turn_tool_results(
    aclient: openai.AsyncOpenAI, upstream: OpenAIUpstream
) -> None:
    upstream.queue(
        Scenario(tool_calls=(ToolCallSpec("call_9", "get_weather", '{"city":"Oslo"}'),)),
        Scenario.reply("It is sunny in Oslo."),
    )
    messages: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    first = await aclient.chat.completions.create(model="gpt", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = await aclient.chat.completions.create(model="gpt", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert second.choices[0].message.content == "It is sunny in Oslo."
    sent = upstream.requests[-1].body["messages"]
    assert (
        sent[1]["tool_calls"][0]["id"] == "call_9"
        and sent[1]["tool_calls"][0]["function"]["arguments"] == '{"city":"Oslo"}'
    )
    assert sent[2] == {"role": "tool", "tool_call_id": "call_9", "content": "sunny"}


def test_images_pass_through(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    image = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
    }
    client.chat.completions.create(
        model="gpt",
        messages=[{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}],  # type: ignore[list-item]
    )
    assert upstream.requests[-1].body["messages"][0]["content"] == [
        {"type": "text", "text": "what?"},
        image,
    ]


def test_rate_limit_reaches_the_sdk_with_retry_after(
    client: openai.OpenAI, upstream: OpenAIUpstream
) -> None:
    upstream.queue(Scenario(error=ErrorSpec("rate_limit", "Rate limit reached", retry_after=7)))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert "Rate limit reached" in info.value.message


def test_upstream_auth_failure_is_an_authentication_error(
    client: openai.OpenAI, upstream: OpenAIUpstream
) -> None:
    upstream.queue(Scenario(error=ErrorSpec("auth", "Incorrect API key provided")))
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert KEY not in str(info.value.body)


def test_upstream_cut_mid_stream_ends_with_an_error_frame(
    client: openai.OpenAI, upstream: OpenAIUpstream
) -> None:
    upstream.queue(Scenario.reply("a", "b", "c", "d", disconnect_after=3))
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    # The fake counts its role chunk too: 3 chunks = role, "a", "b", then it resets the
    # socket, which may discard "b" still in flight. What arrived before the cut reaches the
    # client exactly once, in order; nothing after it is invented.
    assert received in (["a"], ["a", "b"])


def test_client_disconnect_mid_stream_closes_the_upstream(
    gateway: RunningServer, upstream: OpenAIUpstream
) -> None:
    upstream.queue(Scenario.reply(*[f"w{i} " for i in range(100)], chunk_delay=0.05))
    body = {"model": "gpt", "messages": [{"role": "user", "content": "long"}], "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=10) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and "w1" in line:
                break
        closed_at = time.monotonic()
    seen = upstream.wait_for_disconnect(timeout=2)
    assert seen.at - closed_at < 0.5
    assert seen.chunks_sent < 20


def test_client_disconnect_while_waiting_closes_the_upstream(
    gateway: RunningServer, upstream: OpenAIUpstream
) -> None:
    upstream.queue(Scenario(text=("late",), hang_before_headers=5))
    body = {"model": "gpt", "messages": [{"role": "user", "content": "x"}]}
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=0.3)
    upstream.wait_for_disconnect(timeout=2)
    assert time.monotonic() - started < 2


def test_fallback_to_the_next_route(client: openai.OpenAI, upstream: OpenAIUpstream) -> None:
    upstream.queue(Scenario.reply("served by the second route"))
    raw = client.chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": "x"}]
    )
    assert (
        raw.headers["x-gateway-provider"] == "up"
        and raw.headers["x-gateway-model"] == "fake-model-large"
    )
    assert raw.parse().choices[0].message.content == "served by the second route"


async def test_concurrent_streams_do_not_mix(
    aclient: openai.AsyncOpenAI, upstream: OpenAIUpstream
) -> None:
    async def one(i: int) -> str:
        stream = await aclient.chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": str(i)}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    answers = await asyncio.gather(*(one(i) for i in range(20)))
    assert answers == ["Hello from fake"] * 20


def test_models_include_upstream_listing(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["gpt", "resilient"]
    assert "up/fake-model-small" in ids and "up/fake-model-large" in ids
    assert client.models.retrieve("up/fake-model-large").id == "up/fake-model-large"
