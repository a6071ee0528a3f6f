"""End to end over real sockets: the official anthropic SDK → gateway → any backend.

Backends: the built-in ``mock`` provider and the fake upstreams of every wire format
(OpenAI, Anthropic, Gemini, Bedrock), each on its own socket. For a fake, each test queues
a scenario that answers exactly what the mock would, so one assertion holds for every
backend (the mock echoes the last user message, calls the first tool with arguments built
from its schema, and reports a tool's result back in text). What the upstream received is
read back in canonical terms (``upstream.read()``), so those checks are backend-neutral too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

import anthropic
import httpx
import pytest

from llm_gateway.core.types import ChatRequest, ImagePart, TextPart
from tests.conftest import serve_gateway
from tests.fakes.anthropic_upstream import SIGNATURE, AnthropicUpstream
from tests.fakes.bedrock_upstream import ACCESS_KEY, REGION, SECRET_KEY, BedrockUpstream
from tests.fakes.gemini_upstream import GeminiUpstream
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import ErrorSpec, Scenario, ToolCallSpec, UsageSpec
from tests.fakes.server import RunningServer, run_server

KEY = "sk-upstream-secret-123"
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
PNG = "iVBORw0KGgoAAAANSUhEUg=="


class Upstream(Protocol):
    def queue(self, *scenarios: Scenario) -> None: ...
    def reset(self) -> None: ...
    def read(self, index: int = -1) -> ChatRequest: ...


# provider type → (fake factory, gateway provider config for the fake's URL)
FAKES: dict[str, tuple[Callable[[], Any], Callable[[str], dict[str, Any]]]] = {
    "openai": (
        lambda: OpenAIUpstream("openai", api_key=KEY),
        lambda url: {"type": "openai", "api_key": KEY, "base_url": f"{url}/v1"},
    ),
    "anthropic": (
        lambda: AnthropicUpstream(api_key=KEY),
        lambda url: {"type": "anthropic", "api_key": KEY, "base_url": url},
    ),
    "gemini": (
        lambda: GeminiUpstream(api_key=KEY),
        lambda url: {"type": "gemini", "api_key": KEY, "base_url": url},
    ),
    "bedrock": (
        BedrockUpstream,
        lambda url: {
            "type": "bedrock",
            "region": REGION,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "base_url": url,
        },
    ),
}


@dataclass
class Backend:
    """One way to serve a model: its name in the gateway and, for fakes, the upstream."""

    name: str
    model: str
    upstream: Upstream | None = None

    def answers(self, text: str, **kwargs: Any) -> None:
        """Makes the backend answer ``text`` (the mock's answers are fixed)."""
        if self.upstream is not None:
            words = text.split(" ")
            self.upstream.queue(
                Scenario.reply(*[w if i == 0 else " " + w for i, w in enumerate(words)], **kwargs)
            )

    def calls(self, name: str, arguments: dict[str, Any]) -> None:
        if self.upstream is not None:
            self.upstream.queue(
                Scenario(
                    tool_calls=(ToolCallSpec("call_w1", name, json.dumps(arguments), fragments=5),)
                )
            )

    @property
    def streams_tool_fragments(self) -> bool:
        # Gemini sends every function call whole, in one chunk.
        return self.name != "gemini"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, tuple[Any, RunningServer]]]:
    with ExitStack() as stack:
        running = {}
        for kind, (make, _) in FAKES.items():
            upstream = make()
            running[kind] = (upstream, stack.enter_context(run_server(upstream)))
        yield running


@pytest.fixture(scope="module")
def gateway(fakes: dict[str, tuple[Any, RunningServer]]) -> Iterator[RunningServer]:
    providers: dict[str, Any] = {"mock": {"type": "mock", "chunk_delay_ms": 0}}
    models: dict[str, Any] = {"mock": {"routes": [{"provider": "mock", "model": "mock-1"}]}}
    for kind, (_, server) in fakes.items():
        providers[f"{kind}-fake"] = FAKES[kind][1](server.url)
        models[kind] = {"routes": [{"provider": f"{kind}-fake", "model": "fake-model-small"}]}
    config: dict[str, Any] = {
        # Short heartbeats, so slow streams in these tests carry keep-alive comments.
        "server": {"heartbeat_seconds": 0.1},
        "providers": providers,
        "models": models,
    }
    with serve_gateway(config) as gw:
        yield gw


def _fake(fakes: dict[str, tuple[Any, RunningServer]], kind: str) -> Any:
    upstream = fakes[kind][0]
    upstream.reset()
    return upstream


@pytest.fixture
def upstream(fakes: dict[str, tuple[Any, RunningServer]]) -> OpenAIUpstream:
    result: OpenAIUpstream = _fake(fakes, "openai")
    return result


@pytest.fixture(params=["mock", *FAKES])
def backend(request: pytest.FixtureRequest, fakes: dict[str, tuple[Any, RunningServer]]) -> Backend:
    if request.param == "mock":
        return Backend("mock", "mock")
    return Backend(request.param, request.param, _fake(fakes, request.param))


@pytest.fixture(params=list(FAKES))
def fake_backend(
    request: pytest.FixtureRequest, fakes: dict[str, tuple[Any, RunningServer]]
) -> Backend:
    return Backend(request.param, request.param, _fake(fakes, request.param))


@pytest.fixture
def client(gateway: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.url, api_key="client-key", max_retries=0, timeout=10
    )


@pytest.fixture
def aclient(gateway: RunningServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key="client-key", max_retries=0, timeout=10
    )


def mock_reply(prompt: str) -> str:
    return f"This is a mock response to: {prompt}"


def test_text_with_system(client: anthropic.Anthropic, backend: Backend) -> None:
    backend.answers(mock_reply("hello there"), usage=UsageSpec(21, 6))
    message = client.messages.create(
        model=backend.model,
        max_tokens=50,
        system="Answer briefly.",
        messages=[{"role": "user", "content": "hello there"}],
        metadata={"user_id": "u-42"},
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_") and message.model == backend.model
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == mock_reply("hello there")  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message._request_id  # the SDK reads our request-id header
    if backend.upstream is not None:
        assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 6)
        sent = backend.upstream.read()
        assert [(m.role, m.text()) for m in sent.messages] == [
            ("system", "Answer briefly."),
            ("user", "hello there"),
        ]
        assert sent.max_tokens == 50


def test_sync_stream_and_final_message(client: anthropic.Anthropic, backend: Backend) -> None:
    backend.answers(mock_reply("count to three"), usage=UsageSpec(9, 8))
    with client.messages.stream(
        model=backend.model,
        max_tokens=100,
        system=[{"type": "text", "text": "You count."}],
        messages=[{"role": "user", "content": "count to three"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == mock_reply("count to three")
    assert final.content[0].text == mock_reply("count to three")  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    # Usage known only at the end of an OpenAI-style stream still reaches the message.
    assert final.usage.input_tokens > 0
    if backend.upstream is not None:
        assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 8)
        assert backend.upstream.read().stream is True


async def test_async_streamed_tool_use_input(
    aclient: anthropic.AsyncAnthropic, backend: Backend
) -> None:
    backend.calls("get_weather", {"city": "weather in Paris?"})
    json_deltas: list[str] = []
    async with aclient.messages.stream(
        model=backend.model,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "auto"},
        messages=[{"role": "user", "content": "weather in Paris?"}],
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                json_deltas.append(event.delta.partial_json)
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (call,) = [b for b in final.content if b.type == "tool_use"]
    # The mock fills the schema's string fields with the last user message.
    assert call.name == "get_weather" and call.input == {"city": "weather in Paris?"}
    assert call.id
    assert json.loads("".join(json_deltas)) == call.input
    assert len(json_deltas) > 1 or not backend.streams_tool_fragments
    if backend.upstream is not None:
        sent = backend.upstream.read()
        assert sent.tools is not None and sent.tools[0].name == "get_weather"
        assert sent.tools[0].parameters == WEATHER["input_schema"]


async def test_async_multi_turn_tool_result(
    aclient: anthropic.AsyncAnthropic, backend: Backend
) -> None:
    backend.calls("get_weather", {"city": "Oslo"})
    backend.answers("The tool returned: sunny, 21C")
    messages: list[Any] = [{"role": "user", "content": "Oslo"}]
    first = await aclient.messages.create(
        model=backend.model, max_tokens=100, tools=[WEATHER], messages=messages
    )
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}],
        },
    ]
    second = await aclient.messages.create(
        model=backend.model, max_tokens=100, tools=[WEATHER], messages=messages
    )
    assert second.content[0].text == "The tool returned: sunny, 21C"  # type: ignore[union-attr]
    assert second.stop_reason == "end_turn"
    if backend.upstream is not None:
        user, assistant, result = backend.upstream.read().messages
        assert user.text() == "Oslo"
        assert assistant.tool_calls is not None and assistant.tool_calls[0].name == "get_weather"
        assert json.loads(assistant.tool_calls[0].arguments) == {"city": "Oslo"}
        assert (result.role, result.text()) == ("tool", "sunny, 21C")
        if backend.name != "gemini":  # Gemini pairs calls and results by name, not id
            assert assistant.tool_calls[0].id == result.tool_call_id == call.id


async def test_thinking_with_signature_streams_and_echoes_back(
    aclient: anthropic.AsyncAnthropic, fakes: dict[str, tuple[Any, RunningServer]]
) -> None:
    upstream = _fake(fakes, "anthropic")
    upstream.queue(
        Scenario(
            reasoning=("Let me", " think."),
            tool_calls=(ToolCallSpec("toolu_9", "get_weather", '{"city":"Rome"}'),),
        ),
        Scenario.reply("Sunny in Rome."),
    )
    thinking = {"type": "enabled", "budget_tokens": 1024}
    messages: list[Any] = [{"role": "user", "content": "Rome?"}]
    async with aclient.messages.stream(
        model="anthropic", max_tokens=2000, tools=[WEATHER], thinking=thinking, messages=messages
    ) as stream:
        kinds = [e.delta.type async for e in stream if e.type == "content_block_delta"]
        first = await stream.get_final_message()
    assert "thinking_delta" in kinds and "signature_delta" in kinds
    block, call = first.content
    assert block.type == "thinking" and block.thinking == "Let me think."
    assert block.signature == SIGNATURE and call.type == "tool_use"
    assert upstream.last_body["thinking"] == thinking  # passed through to the Anthropic route
    messages += [
        first.to_param(),
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
        },
    ]
    second = await aclient.messages.create(
        model="anthropic", max_tokens=2000, tools=[WEATHER], thinking=thinking, messages=messages
    )
    assert second.content[0].text == "Sunny in Rome."  # type: ignore[union-attr]
    echoed = upstream.read().messages[1]
    assert (echoed.reasoning, echoed.reasoning_signature) == ("Let me think.", SIGNATURE)


def test_images_reach_the_upstream(client: anthropic.Anthropic, fake_backend: Backend) -> None:
    fake_backend.answers("an image")
    client.messages.create(
        model=fake_backend.model,
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            }
        ],
    )
    assert fake_backend.upstream is not None
    (message,) = fake_backend.upstream.read().messages
    assert message.content == [TextPart("what is this?"), ImagePart(f"data:image/png;base64,{PNG}")]


def test_image_urls_reach_an_openai_upstream(
    client: anthropic.Anthropic, upstream: OpenAIUpstream
) -> None:
    client.messages.create(
        model="openai",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://img.test/a.jpg"}}
                ],
            }
        ],
    )
    assert upstream.last_body["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://img.test/a.jpg"}}
    ]


def test_unknown_model_is_not_found(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "no-such-model" in body["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_rate_limit_is_a_rate_limit_error_with_retry_after(
    client: anthropic.Anthropic, fake_backend: Backend, stream: bool
) -> None:
    assert fake_backend.upstream is not None
    fake_backend.upstream.queue(
        Scenario(error=ErrorSpec("rate_limit", "Rate limit reached", retry_after=7))
    )
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(
            model=fake_backend.model,
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            stream=stream,
        )
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "Rate limit reached" in body["error"]["message"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "url": "v"}]}]},
            "messages.0.content.0.type",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "extra_body": {"temperature": 3}},
            "temperature",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [WEATHER],
                "tool_choice": {"type": "tool", "name": "nope"},
            },
            "tool_choice.name",
        ),
    ],
)
def test_bad_input_is_a_bad_request_naming_the_field(
    client: anthropic.Anthropic, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="mock", max_tokens=5, **kwargs)
    body: Any = info.value.body
    assert body["error"]["type"] == "invalid_request_error"
    assert field in body["error"]["message"]


def test_raw_http_without_version_header_and_error_shapes(gateway: RunningServer) -> None:
    url = f"{gateway.url}/v1/messages"
    ok = httpx.post(
        url,
        json={"model": "mock", "max_tokens": 20, "messages": [{"role": "user", "content": "yo"}]},
        headers={"x-api-key": "anything"},  # accepted; no anthropic-version at all
        timeout=10,
    )
    assert ok.status_code == 200 and ok.json()["content"][0]["text"] == mock_reply("yo")
    missing = httpx.post(
        url, json={"model": "mock", "messages": [{"role": "user", "content": "x"}]}, timeout=10
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    too_big = httpx.post(url, content=b"{" + b" " * (11 * 1024 * 1024) + b"}", timeout=10)
    assert too_big.status_code == 413
    assert too_big.json()["error"]["type"] == "request_too_large"


def test_upstream_cut_mid_stream_is_an_error_event(
    client: anthropic.Anthropic, upstream: OpenAIUpstream
) -> None:
    upstream.queue(Scenario.reply("a", "b", "c", "d", disconnect_after=3))
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="openai", max_tokens=20, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        received.extend(stream.text_stream)
    assert received in (["a"], ["a", "b"])
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"


def test_client_disconnect_mid_stream_closes_the_upstream(
    client: anthropic.Anthropic, upstream: OpenAIUpstream
) -> None:
    upstream.queue(Scenario.reply(*[f"w{i} " for i in range(100)], chunk_delay=0.05))
    with client.messages.stream(
        model="openai", max_tokens=500, messages=[{"role": "user", "content": "long"}]
    ) as stream:
        for text in stream.text_stream:
            if "w1" in text:
                break
        closed_at = time.monotonic()
    seen = upstream.wait_for_disconnect(timeout=2)
    assert seen.at - closed_at < 0.5 and seen.chunks_sent < 20


def test_heartbeats_do_not_break_the_sdk(
    client: anthropic.Anthropic, gateway: RunningServer, upstream: OpenAIUpstream
) -> None:
    # Upstream silences of 0.25 s against a 0.1 s heartbeat: comments between events.
    slow = Scenario.reply("slow", " steady", chunk_delay=0.25, usage=None)
    upstream.queue(slow)
    body = {
        "model": "openai",
        "max_tokens": 20,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, timeout=10) as r:
        raw = b"".join(r.iter_bytes())
    assert b": keep-alive\n\n" in raw and raw.endswith(b'data: {"type":"message_stop"}\n\n')
    upstream.queue(slow)
    with client.messages.stream(
        model="openai", max_tokens=20, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        assert stream.get_final_text() == "slow steady"


def test_count_tokens_matches_the_mock_estimate(client: anthropic.Anthropic) -> None:
    messages: Any = [{"role": "user", "content": "how many tokens is this sentence?"}]
    counted = client.messages.count_tokens(model="mock", system="Be brief.", messages=messages)
    used = client.messages.create(
        model="mock", max_tokens=50, system="Be brief.", messages=messages
    )
    assert counted.input_tokens == used.usage.input_tokens > 0
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=messages)


async def test_concurrent_async_streams(aclient: anthropic.AsyncAnthropic) -> None:
    async def one(i: int) -> str:
        async with aclient.messages.stream(
            model="mock", max_tokens=50, messages=[{"role": "user", "content": f"n{i}"}]
        ) as stream:
            return await stream.get_final_text()

    texts = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(8))), 10)
    assert texts == [mock_reply(f"n{i}") for i in range(8)]
