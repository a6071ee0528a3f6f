"""End to end over real sockets: the official openai SDK → gateway → fake Gemini upstream.

The fake sends function calls without ids (as older Gemini models do), so these tests also
cover the ids the adapter synthesises and how tool results find their way back by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import serve_gateway
from tests.fakes.gemini_upstream import GeminiUpstream
from tests.fakes.scenarios import ErrorSpec, Scenario, ToolCallSpec, UsageSpec
from tests.fakes.server import RunningServer, run_server

KEY = "AIza-upstream-secret-123"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[GeminiUpstream, RunningServer]]:
    upstream = GeminiUpstream(api_key=KEY, call_ids=False)
    with run_server(upstream) as server:
        yield upstream, server


@pytest.fixture(scope="module")
def gateway(fake: tuple[GeminiUpstream, RunningServer]) -> Iterator[RunningServer]:
    _, server = fake
    config: dict[str, Any] = {
        "providers": {
            "gem": {"type": "gemini", "api_key": KEY, "base_url": server.url},
            "badkey": {"type": "gemini", "api_key": "AIza-wrong", "base_url": server.url},
        },
        "models": {
            "gemini": {"routes": [{"provider": "gem", "model": "gemini-2.5-flash"}]},
            "misconfigured": {"routes": [{"provider": "badkey", "model": "gemini-2.5-flash"}]},
        },
    }
    with serve_gateway(config) as gw:
        yield gw


@pytest.fixture
def upstream(fake: tuple[GeminiUpstream, RunningServer]) -> GeminiUpstream:
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


def test_text_completion(client: openai.OpenAI, upstream: GeminiUpstream) -> None:
    upstream.queue(
        Scenario.reply("Bonjour", " le", " monde", usage=UsageSpec(12, 5, cached_tokens=4))
    )
    reply = client.chat.completions.create(
        model="gemini",
        messages=[{"role": "system", "content": "fr"}, {"role": "user", "content": "hi"}],
        temperature=0.1,
        max_tokens=50,
    )
    assert reply.choices[0].message.content == "Bonjour le monde"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 5)
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 4
    sent = upstream.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"] == {"parts": [{"text": "fr"}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert sent.body["generationConfig"] == {
        "candidateCount": 1,
        "temperature": 0.1,
        "maxOutputTokens": 50,
    }


def test_stream_with_usage_and_thoughts(client: openai.OpenAI, upstream: GeminiUpstream) -> None:
    upstream.queue(
        Scenario(
            text=("one", " two", " three"),
            reasoning=("counting",),
            usage=UsageSpec(5, 9, reasoning_tokens=6),
        )
    )
    stream = client.chat.completions.create(
        model="gemini",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and (usage.completion_tokens, usage.total_tokens) == (9, 14)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 6
    assert upstream.requests[-1].path.endswith(":streamGenerateContent")


async def test_streamed_parallel_tool_calls_get_distinct_ids(
    aclient: openai.AsyncOpenAI, upstream: GeminiUpstream
) -> None:
    upstream.queue(
        Scenario(
            tool_calls=(
                ToolCallSpec("unused1", "get_weather", '{"city": "Paris, France"}'),
                ToolCallSpec("unused2", "get_weather", '{"city": "Tokyo"}'),
            )
        )
    )
    stream = await aclient.chat.completions.create(
        model="gemini",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
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
    assert [json.loads(calls[i]["args"]) for i in (0, 1)] == [
        {"city": "Paris, France"},
        {"city": "Tokyo"},
    ]
    assert calls[0]["id"].startswith("call_0_") and calls[1]["id"].startswith("call_1_")
    # The schema reached Gemini without the keyword it rejects.
    declaration = upstream.requests[-1].body["tools"][0]["functionDeclarations"][0]
    assert declaration["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }


async def test_multi_turn_tool_results_reach_gemini_by_name(
    aclient: openai.AsyncOpenAI, upstream: GeminiUpstream
) -> None:
    upstream.queue(
        Scenario(tool_calls=(ToolCallSpec("x", "get_weather", '{"city":"Oslo"}'),)),
        Scenario.reply("It is sunny in Oslo."),
    )
    messages: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
    first = await aclient.chat.completions.create(
        model="gemini",
        messages=messages,
        tools=[WEATHER],
        tool_choice="required",
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = await aclient.chat.completions.create(
        model="gemini",
        messages=messages,
        tools=[WEATHER],
    )
    assert second.choices[0].message.content == "It is sunny in Oslo."
    body = upstream.requests[-1].body
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}
            ],
        },
    ]
    assert upstream.requests[0].body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_bad_upstream_key_is_an_authentication_error(
    client: openai.OpenAI, upstream: GeminiUpstream
) -> None:
    # The fake checks x-goog-api-key and answers like Google: 400 INVALID_ARGUMENT with
    # reason API_KEY_INVALID. The client must see a 401, and never the key.
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(
            model="misconfigured", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert info.value.status_code == 401
    assert "API key not valid" in info.value.message
    assert "AIza-wrong" not in str(info.value.body) and KEY not in str(info.value.body)
    assert upstream.requests[-1].headers["x-goog-api-key"] == "AIza-wrong"


def test_rate_limit_reaches_the_sdk_with_retry_after(
    client: openai.OpenAI, upstream: GeminiUpstream
) -> None:
    upstream.queue(Scenario(error=ErrorSpec("rate_limit", "Quota exceeded", retry_after=7)))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert "Quota exceeded" in info.value.message
