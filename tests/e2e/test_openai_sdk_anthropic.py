"""End to end over real sockets: the official openai SDK → gateway → fake Anthropic upstream.

The client speaks OpenAI's chat completions; the gateway's ``anthropic`` provider speaks
the Messages API to ``AnthropicUpstream``, which checks the headers and rejects what
Anthropic would reject (unmerged roles, unpaired tool results, missing max_tokens).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from tests.conftest import serve_gateway
from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.scenarios import ErrorSpec, Scenario, ToolCallSpec, UsageSpec
from tests.fakes.server import RunningServer, run_server

KEY = "sk-ant-api03-upstream-secret"
PARAMETERS: dict[str, object] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": PARAMETERS,
    },
}


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[AnthropicUpstream, RunningServer]]:
    upstream = AnthropicUpstream(api_key=KEY)
    with run_server(upstream) as server:
        yield upstream, server


@pytest.fixture(scope="module")
def gateway(fake: tuple[AnthropicUpstream, RunningServer]) -> Iterator[RunningServer]:
    _, server = fake
    config: dict[str, Any] = {
        "providers": {
            "claude": {
                "type": "anthropic",
                "api_key": KEY,
                "base_url": server.url,
                "max_tokens": 1234,
                "headers": {"anthropic-beta": "prompt-caching-2024-07-31"},
            }
        },
        "models": {"sonnet": {"routes": [{"provider": "claude", "model": "claude-fake-4"}]}},
    }
    with serve_gateway(config) as gw:
        yield gw


@pytest.fixture
def upstream(fake: tuple[AnthropicUpstream, RunningServer]) -> AnthropicUpstream:
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


def test_text_completion(client: openai.OpenAI, upstream: AnthropicUpstream) -> None:
    upstream.queue(Scenario.reply("Bonjour", " le monde", usage=UsageSpec(40, 3, cached_tokens=30)))
    reply = client.chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "system", "content": "Réponds en français."},
            {"role": "user", "content": "hi"},
        ],
        temperature=0.2,
        stop=["\n\n", "FIN"],
    )
    assert reply.choices[0].message.content == "Bonjour le monde"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (40, 3)
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 30
    sent = upstream.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body == {
        "model": "claude-fake-4",
        "max_tokens": 1234,
        "messages": [{"role": "user", "content": "hi"}],
        "system": "Réponds en français.",
        "temperature": 0.2,
        "stop_sequences": ["FIN"],
    }
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"


def test_stream_with_usage(client: openai.OpenAI, upstream: AnthropicUpstream) -> None:
    upstream.queue(Scenario.reply("one", " two", " three", usage=UsageSpec(5, 3)))
    stream = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.total_tokens) == (5, 8)
    body = upstream.requests[-1].body
    assert body["stream"] is True and "stream_options" not in body


async def test_streamed_parallel_tool_calls(
    aclient: openai.AsyncOpenAI, upstream: AnthropicUpstream
) -> None:
    upstream.queue(
        Scenario(
            text=("Checking both.",),
            tool_calls=(
                ToolCallSpec("toolu_01P", "get_weather", '{"city": "Paris, France"}', fragments=4),
                ToolCallSpec("toolu_02T", "get_weather", '{"city": "Tokyo"}', fragments=3),
            ),
        )
    )
    stream = await aclient.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "weather in Paris and Tokyo?"}],
        tools=[WEATHER],
        parallel_tool_calls=True,
        stream=True,
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
    assert sorted(calls) == [0, 1]
    assert calls[0] == {
        "id": "toolu_01P",
        "name": "get_weather",
        "args": '{"city": "Paris, France"}',
    }
    assert calls[1]["id"] == "toolu_02T" and json.loads(calls[1]["args"]) == {"city": "Tokyo"}
    body = upstream.requests[-1].body
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": PARAMETERS,
            "description": "Current weather",
        }
    ]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": False}


async def test_multi_turn_tool_results(
    aclient: openai.AsyncOpenAI, upstream: AnthropicUpstream
) -> None:
    upstream.queue(
        Scenario(
            tool_calls=(
                ToolCallSpec("toolu_A", "get_weather", '{"city": "Oslo"}'),
                ToolCallSpec("toolu_B", "get_weather", '{"city": "Rome"}'),
            )
        ),
        Scenario.reply("Sunny in Oslo, rain in Rome."),
    )
    messages: list[Any] = [{"role": "user", "content": "weather in Oslo and Rome?"}]
    first = await aclient.chat.completions.create(
        model="sonnet",
        messages=messages,
        tools=[WEATHER],
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls is not None
    assert [c.id for c in choice.message.tool_calls] == ["toolu_A", "toolu_B"]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "toolu_A", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_B", "content": "rain"},
        {"role": "user", "content": "Summarise."},
    ]
    second = await aclient.chat.completions.create(
        model="sonnet",
        messages=messages,
        tools=[WEATHER],
    )
    assert second.choices[0].message.content == "Sunny in Oslo, rain in Rome."
    # The fake rejects unmerged roles and unpaired results, so getting here proves the
    # tool messages and the user's follow-up became one user turn answering both calls.
    sent = upstream.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [
        {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_A", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_B", "content": "rain"},
        {"type": "text", "text": "Summarise."},
    ]


def test_overloaded_is_a_503_for_the_sdk(
    client: openai.OpenAI, upstream: AnthropicUpstream
) -> None:
    # Overload is retryable: the gateway retries once (2 attempts by default), so the
    # upstream must be overloaded both times for the caller to see it.
    upstream.queue(*[Scenario(error=ErrorSpec("overloaded", "Overloaded"))] * 2)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
    assert "Overloaded" in info.value.message


def test_rate_limit_reaches_the_sdk_with_retry_after(
    client: openai.OpenAI, upstream: AnthropicUpstream
) -> None:
    upstream.queue(
        Scenario(error=ErrorSpec("rate_limit", "Number of requests exceeded", retry_after=9))
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "9"
    assert "Number of requests exceeded" in info.value.message
    assert KEY not in str(info.value.body)
