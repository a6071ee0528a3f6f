"""End to end over real sockets: the official openai SDK → gateway → fake Bedrock, whose
every request must carry a SigV4 signature that botocore's signer accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import serve_gateway
from tests.fakes.bedrock_upstream import ACCESS_KEY, REGION, SECRET_KEY, BedrockUpstream
from tests.fakes.scenarios import ErrorSpec, Scenario, ToolCallSpec, UsageSpec
from tests.fakes.server import RunningServer, run_server

MODEL_ID = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
WEATHER: Any = {
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


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[BedrockUpstream, RunningServer]]:
    upstream = BedrockUpstream(session_token="tok-123")
    with run_server(upstream) as server:
        yield upstream, server


@pytest.fixture(scope="module")
def gateway(fake: tuple[BedrockUpstream, RunningServer]) -> Iterator[RunningServer]:
    _, server = fake
    config: dict[str, Any] = {
        "providers": {
            "aws": {
                "type": "bedrock",
                "region": REGION,
                "base_url": server.url,
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
                "session_token": "tok-123",
                "models": [MODEL_ID],
            }
        },
        "models": {"claude": {"routes": [{"provider": "aws", "model": MODEL_ID}]}},
    }
    with serve_gateway(config) as gw:
        yield gw


@pytest.fixture
def upstream(fake: tuple[BedrockUpstream, RunningServer]) -> Iterator[BedrockUpstream]:
    fake[0].reset()
    yield fake[0]
    assert fake[0].signature_failures == []


@pytest.fixture
def client(gateway: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=10
    )


def test_text(client: openai.OpenAI, upstream: BedrockUpstream) -> None:
    upstream.queue(Scenario.reply("Bonjour", " le monde", usage=UsageSpec(12, 3, cached_tokens=4)))
    reply = client.chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "fr"}, {"role": "user", "content": "hi"}],
        max_tokens=50,
    )
    assert reply.choices[0].message.content == "Bonjour le monde"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.total_tokens) == (
        12,
        15,
    )
    sent = upstream.requests[-1]
    assert sent.path == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    assert sent.body["system"] == [{"text": "fr"}]
    assert sent.body["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert sent.body["inferenceConfig"] == {"maxTokens": 50}


def test_stream_with_usage(client: openai.OpenAI, upstream: BedrockUpstream) -> None:
    upstream.queue(Scenario.reply("one", " two", " three", usage=UsageSpec(5, 3)))
    stream = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8
    assert upstream.requests[-1].path.endswith("/converse-stream")


def test_streamed_tool_calls(client: openai.OpenAI, upstream: BedrockUpstream) -> None:
    upstream.queue(
        Scenario(
            tool_calls=(
                ToolCallSpec("tooluse_A1", "get_weather", '{"city": "Paris, France"}', fragments=4),
                ToolCallSpec("tooluse_B2", "get_weather", '{"city": "Tokyo"}', fragments=2),
            )
        )
    )
    stream = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for tc in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            entry["id"] += tc.id or ""
            entry["name"] += (tc.function.name or "") if tc.function else ""
            entry["args"] += (tc.function.arguments or "") if tc.function else ""
    assert finish == "tool_calls"
    assert calls[0] == {
        "id": "tooluse_A1",
        "name": "get_weather",
        "args": '{"city": "Paris, France"}',
    }
    assert json.loads(calls[1]["args"]) == {"city": "Tokyo"}
    config = upstream.requests[-1].body["toolConfig"]
    assert config["toolChoice"] == {"any": {}}
    assert (
        config["tools"][0]["toolSpec"]["inputSchema"]["json"] == WEATHER["function"]["parameters"]
    )


def test_multi_turn_tool_results(client: openai.OpenAI, upstream: BedrockUpstream) -> None:
    upstream.queue(
        Scenario(tool_calls=(ToolCallSpec("tooluse_9", "get_weather", '{"city":"Oslo"}'),)),
        Scenario.reply("It is sunny in Oslo."),
    )
    messages: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    first = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        {"role": "user", "content": "and so?"},
    ]
    second = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "It is sunny in Oslo."
    turns = upstream.requests[-1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"toolUse": {"toolUseId": "tooluse_9", "name": "get_weather", "input": {"city": "Oslo"}}}
    ]
    assert turns[2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_9", "content": [{"text": "sunny"}]}},
        {"text": "and so?"},
    ]


def test_throttling_is_a_rate_limit_error(client: openai.OpenAI, upstream: BedrockUpstream) -> None:
    upstream.queue(
        *[Scenario(error=ErrorSpec("rate_limit", "Too many requests, please wait", retry_after=7))]
        * 5
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429
    assert "Too many requests" in info.value.message
