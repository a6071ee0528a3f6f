"""The provider conformance kit: every adapter, against a fake speaking its exact wire
format on a real socket, must behave the same in canonical terms."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from llm_gateway.core.accumulate import accumulate
from llm_gateway.core.errors import (
    ContextWindowExceededError,
    GatewayError,
    ProviderOverloadedError,
    ProviderUnavailableError,
    RateLimitError,
    TotalTimeoutError,
    UpstreamAuthenticationError,
    UpstreamError,
)
from llm_gateway.core.events import (
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from llm_gateway.core.types import (
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
)
from tests.conformance.conftest import Harness
from tests.fakes.scenarios import ErrorSpec, Scenario, ToolCallSpec, UsageSpec

WEATHER = Tool(
    name="get_weather",
    description="Current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
)
TIME = Tool(
    name="get_time", parameters={"type": "object", "properties": {"tz": {"type": "string"}}}
)
PARIS = ToolCallSpec(
    "callAAA01", "get_weather", '{"city": "Paris", "unit": "celsius"}', fragments=4
)
TOKYO = ToolCallSpec("callBBB02", "get_time", '{"tz": "Asia/Tokyo"}', fragments=3)


def ask(text: str = "Hi there", **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="client-model", messages=[Message("user", text)], **kwargs)


async def collect(harness: Harness, request: ChatRequest) -> list[StreamEvent]:
    batches = [batch async for batch in harness.provider.stream(request, harness.model)]
    assert all(batches), "batches are never empty"
    return [event for batch in batches for event in batch]


async def collect_until_error(
    harness: Harness, request: ChatRequest
) -> tuple[list[StreamEvent], GatewayError]:
    events: list[StreamEvent] = []
    with pytest.raises(GatewayError) as caught:
        async for batch in harness.provider.stream(request, harness.model):
            assert batch, "batches are never empty"
            events.extend(batch)
    return events, caught.value


def tool_deltas(events: list[StreamEvent]) -> dict[int, list[ToolCallDelta]]:
    out: dict[int, list[ToolCallDelta]] = {}
    for event in events:
        if isinstance(event, ToolCallDelta):
            out.setdefault(event.index, []).append(event)
    return out


# --- text --------------------------------------------------------------------------------


async def test_text(harness: Harness) -> None:
    harness.fake.queue(Scenario.reply("Hello", ", ", "world"))
    response = await harness.provider.complete(ask("Say hello"), harness.model)
    assert response.content == "Hello, world"
    assert response.finish_reason == "stop"
    assert response.tool_calls is None
    assert response.usage is not None and response.usage.prompt_tokens == 11
    sent = harness.fake.read()
    assert sent.model == harness.model
    assert [(m.role, m.text()) for m in sent.messages] == [("user", "Say hello")]
    assert not sent.stream


async def test_stream(harness: Harness) -> None:
    harness.fake.queue(Scenario.reply("Once", " upon", " a", " time"))
    events = await collect(harness, ask("Tell a story"))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Once", " upon", " a", " time"]
    finishes = [e for e in events if isinstance(e, FinishEvent)]
    assert [f.reason for f in finishes] == ["stop"]
    usages = [e for e in events if isinstance(e, UsageEvent)]
    assert len(usages) == 1 and usages[0].usage.completion_tokens == 7
    assert harness.fake.read().stream


async def test_system_prompt_and_images_reach_the_wire(harness: Harness) -> None:
    harness.fake.queue(Scenario.reply("A cat."))
    parts: list[TextPart | ImagePart] = [
        TextPart("What is this?"),
        ImagePart("data:image/png;base64,iVBORw0KGgo=", detail="low"),
    ]
    request = ChatRequest(
        model="m", messages=[Message("system", "Be brief."), Message("user", parts)]
    )
    response = await harness.provider.complete(request, harness.model)
    assert response.content == "A cat."
    sent = harness.fake.read()
    assert sent.messages[0] == Message("system", "Be brief.")
    if "image_detail" in harness.spec.unsupported:
        parts = [ImagePart(p.url) if isinstance(p, ImagePart) else p for p in parts]
    assert sent.messages[1].content == parts


async def test_reasoning(harness: Harness) -> None:
    harness.require("reasoning")
    harness.fake.queue(Scenario(reasoning=("Let me ", "think."), text=("42",)))
    events = await collect(harness, ask("Meaning of life?"))
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Let me think."
    harness.fake.queue(Scenario(reasoning=("Let me ", "think."), text=("42",)))
    response = await harness.provider.complete(ask("Meaning of life?"), harness.model)
    assert (response.reasoning, response.content) == ("Let me think.", "42")


# --- tools -------------------------------------------------------------------------------


async def test_tool_call(harness: Harness) -> None:
    harness.fake.queue(Scenario(tool_calls=(PARIS,)))
    response = await harness.provider.complete(
        ask("Weather in Paris?", tools=[WEATHER], tool_choice="auto"), harness.model
    )
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [ToolCall(PARIS.id, PARIS.name, PARIS.arguments)]
    sent = harness.fake.read()
    assert sent.tools == [WEATHER]
    assert sent.tool_choice == "auto"


async def test_streamed_tool_call(harness: Harness) -> None:
    harness.fake.queue(Scenario(tool_calls=(PARIS,)))
    events = await collect(harness, ask("Weather in Paris?", tools=[WEATHER]))
    calls = tool_deltas(events)
    assert list(calls) == [0]
    first = calls[0][0]
    assert (first.id, first.name) == (PARIS.id, PARIS.name)
    arguments = "".join(d.arguments for d in calls[0])
    assert arguments == PARIS.arguments
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert [e.reason for e in events if isinstance(e, FinishEvent)] == ["tool_calls"]
    # Every tool delta precedes the finish.
    finish_at = next(i for i, e in enumerate(events) if isinstance(e, FinishEvent))
    assert all(i < finish_at for i, e in enumerate(events) if isinstance(e, ToolCallDelta))


async def test_parallel_tool_calls(harness: Harness) -> None:
    harness.fake.queue(Scenario(tool_calls=(PARIS, TOKYO)))
    request = ask("Paris weather and Tokyo time", tools=[WEATHER, TIME], parallel_tool_calls=True)
    events = await collect(harness, request)
    response = accumulate(events)
    assert response.tool_calls == [
        ToolCall(PARIS.id, PARIS.name, PARIS.arguments),
        ToolCall(TOKYO.id, TOKYO.name, TOKYO.arguments),
    ]
    if "parallel_tool_calls" not in harness.spec.unsupported:
        # The calls above are checked for every adapter; only the switch may be missing.
        assert harness.fake.read().parallel_tool_calls is True


async def test_multi_turn_with_tool_results(harness: Harness) -> None:
    harness.fake.queue(Scenario.reply("It is 18°C in Paris."))
    # Ids as another provider (Anthropic) would have minted them.
    history = [
        Message("system", "You are helpful."),
        Message("user", "Weather in Paris and Tokyo time?"),
        Message(
            "assistant",
            None,
            tool_calls=[
                ToolCall("toolu_01A-paris", "get_weather", '{"city": "Paris"}'),
                ToolCall("toolu_02B-tokyo", "get_time", '{"tz": "Asia/Tokyo"}'),
            ],
        ),
        Message("tool", '{"temp": 18}', tool_call_id="toolu_01A-paris"),
        Message("tool", '"09:00"', tool_call_id="toolu_02B-tokyo"),
        Message("user", "Thanks, and summarise."),
    ]
    response = await harness.provider.complete(
        ChatRequest(model="m", messages=history, tools=[WEATHER, TIME]), harness.model
    )
    assert response.content == "It is 18°C in Paris."
    sent = harness.fake.read().messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "tool", "tool", "user"]
    calls = sent[2].tool_calls
    assert calls is not None
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "Asia/Tokyo"}),
    ]
    # Whatever ids the wire needs, each tool result still points at its own call.
    assert [sent[3].tool_call_id, sent[4].tool_call_id] == [calls[0].id, calls[1].id]
    assert calls[0].id != calls[1].id
    assert [sent[3].text(), sent[4].text()] == ['{"temp": 18}', '"09:00"']


# --- usage, finish, parameters ------------------------------------------------------------


async def test_usage_normalised(harness: Harness) -> None:
    usage = UsageSpec(100, 50, cached_tokens=40, reasoning_tokens=20, cost=0.0123)
    harness.fake.queue(Scenario(text=("ok",), usage=usage), Scenario(text=("ok",), usage=usage))
    streamed = [e for e in await collect(harness, ask()) if isinstance(e, UsageEvent)]
    completed = (await harness.provider.complete(ask(), harness.model)).usage
    for got in (streamed[0].usage, completed):
        assert got is not None
        assert (got.prompt_tokens, got.completion_tokens, got.total_tokens) == (100, 50, 150)
        # Some wires (Bedrock's Converse) report no reasoning-token count at all.
        reasoning = 0 if "reasoning_tokens" in harness.spec.unsupported else 20
        assert (got.cached_tokens, got.reasoning_tokens) == (40, reasoning)
    if "cost" not in harness.spec.unsupported:
        assert streamed[0].usage.cost == pytest.approx(0.0123)


async def test_usage_cost(harness: Harness) -> None:
    harness.require("cost")
    harness.fake.queue(Scenario(text=("ok",), usage=UsageSpec(cost=0.5)))
    response = await harness.provider.complete(ask(), harness.model)
    assert response.usage is not None and response.usage.cost == pytest.approx(0.5)


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "content_filter"])
async def test_finish_reasons(harness: Harness, reason: str) -> None:
    calls = (PARIS,) if reason == "tool_calls" else ()
    scenario = Scenario(text=("partial",), tool_calls=calls, finish=reason)  # type: ignore[arg-type]
    harness.fake.queue(scenario, scenario)
    response = await harness.provider.complete(ask(), harness.model)
    assert response.finish_reason == reason
    events = await collect(harness, ask())
    assert [e.reason for e in events if isinstance(e, FinishEvent)] == [reason]


async def test_stop_sequences_and_sampling_parameters_sent(harness: Harness) -> None:
    harness.fake.queue(Scenario.reply("ok"))
    request = ask(stop=["END", "\n\n"], temperature=0.25, top_p=0.5, max_tokens=64, seed=7)
    await harness.provider.complete(request, harness.model)
    sent = harness.fake.read()
    unsupported = harness.spec.unsupported
    assert sent.stop == (["END"] if "whitespace_stop" in unsupported else ["END", "\n\n"])
    seed = None if "seed" in unsupported else 7
    assert (sent.temperature, sent.top_p, sent.max_tokens, sent.seed) == (0.25, 0.5, 64, seed)


async def test_list_models(harness: Harness) -> None:
    models = await harness.provider.list_models()
    assert [m.id for m in models] == list(harness.spec.models)


# --- errors ------------------------------------------------------------------------------


async def _both_raise(harness: Harness, scenario: Scenario) -> list[GatewayError]:
    harness.fake.queue(scenario, scenario)
    errors = []
    with pytest.raises(GatewayError) as caught:
        await harness.provider.complete(ask(), harness.model)
    errors.append(caught.value)
    events, error = await collect_until_error(harness, ask())
    assert events == []
    errors.append(error)
    return errors


async def test_401_is_upstream_authentication_error(harness: Harness) -> None:
    for error in await _both_raise(harness, Scenario.failure("auth", "Incorrect API key")):
        assert isinstance(error, UpstreamAuthenticationError)
        assert error.status == 401 and not error.retryable
        assert "Incorrect API key" in error.message
        assert error.provider == harness.provider.name


async def test_429_with_retry_after_is_rate_limit_error(harness: Harness) -> None:
    scenario = Scenario.failure("rate_limit", "Slow down", retry_after=7)
    for error in await _both_raise(harness, scenario):
        assert isinstance(error, RateLimitError)
        assert error.retry_after == 7.0 and error.retryable
        assert error.upstream_status == 429


async def test_500_is_retryable_upstream_error(harness: Harness) -> None:
    for error in await _both_raise(harness, Scenario.failure("server", "boom")):
        assert isinstance(error, UpstreamError) and error.retryable
        assert not isinstance(error, ProviderOverloadedError)
        assert "boom" in error.message


async def test_overloaded_is_provider_overloaded_error(harness: Harness) -> None:
    for error in await _both_raise(harness, Scenario.failure("overloaded", "Overloaded")):
        assert isinstance(error, ProviderOverloadedError) and error.retryable


async def test_context_length_is_context_window_error(harness: Harness) -> None:
    harness.require("context_length")
    for error in await _both_raise(harness, Scenario.failure("context_length", "too long")):
        assert isinstance(error, ContextWindowExceededError)
        assert not error.retryable


async def test_bad_request_is_not_retryable(harness: Harness) -> None:
    harness.fake.queue(Scenario(error=ErrorSpec("bad_request", "bad temperature")))
    with pytest.raises(GatewayError) as caught:
        await harness.provider.complete(ask(), harness.model)
    assert caught.value.status == 400 and not caught.value.retryable


async def test_malformed_chunk_is_upstream_error(harness: Harness) -> None:
    harness.fake.queue(Scenario(text=("a", "b", "c"), malformed_chunk_after=2))
    events, error = await collect_until_error(harness, ask())
    assert isinstance(error, UpstreamError)
    assert "malformed" in error.message
    # Chunk 0 opens the stream, chunk 1 carries "a", chunk 2 is the broken one.
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a"]


async def test_mid_stream_disconnect_after_deltas(harness: Harness) -> None:
    # Chunk 0 opens the stream (role); the next three carry text; then the line drops.
    harness.fake.queue(Scenario(text=("one", " two", " three", " four"), disconnect_after=3))
    events, error = await collect_until_error(harness, ask())
    assert isinstance(error, UpstreamError) and error.retryable
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text and "one two three four".startswith(text)
    assert not any(isinstance(e, FinishEvent | UsageEvent) for e in events)


async def test_closing_the_stream_early_disconnects_upstream(harness: Harness) -> None:
    pieces = tuple(f"w{i} " for i in range(200))
    harness.fake.queue(Scenario(text=pieces, chunk_delay=0.01))
    stream = harness.provider.stream(ask(), harness.model)
    first = await anext(stream)
    assert isinstance(first[0], TextDelta)
    await stream.aclose()  # type: ignore[attr-defined]
    async with asyncio.timeout(5):
        seen = await harness.fake.await_disconnect()
    assert seen.chunks_sent < len(pieces)


async def test_connection_refused_is_provider_unavailable(harness: Harness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = harness.spec.make_provider(f"http://127.0.0.1:{port}", 1.0)
    try:
        with pytest.raises(ProviderUnavailableError):
            await provider.complete(ask(), harness.model)
        with pytest.raises(ProviderUnavailableError):
            await anext(provider.stream(ask(), harness.model))
    finally:
        await provider.aclose()


async def test_silent_upstream_times_out(harness: Harness) -> None:
    # No byte at all within the limit: the answer never started, which is the provider's
    # total timeout (the idle timeout only counts gaps once an answer has started).
    harness.fake.queue(Scenario(text=("late",), hang_before_headers=3.0))
    provider = harness.spec.make_provider(harness.url, 0.2)
    try:
        with pytest.raises(TotalTimeoutError):
            await anext(provider.stream(ask(), harness.model))
    finally:
        await provider.aclose()
