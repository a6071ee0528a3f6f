"""The mock provider is deterministic and its stream accumulates to its completion."""

from __future__ import annotations

import json

import pytest

from llm_gateway.core.accumulate import Accumulator
from llm_gateway.core.types import (
    ChatRequest,
    Message,
    NamedToolChoice,
    ResponseFormat,
    Tool,
    ToolCall,
)
from llm_gateway.providers.mock import MockProvider

WEATHER = Tool(
    name="get_weather",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "scale": {"type": "number"},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
        },
        "required": ["city", "days", "metric", "unit", "tags", "scale", "where"],
    },
)


def req(*messages: Message, **kw: object) -> ChatRequest:
    return ChatRequest(model="mock", messages=list(messages), **kw)  # type: ignore[arg-type]


async def both(provider: MockProvider, request: ChatRequest) -> tuple[object, object]:
    complete = await provider.complete(request, "mock-1")
    acc = Accumulator()
    async for batch in provider.stream(request, "mock-1"):
        assert batch, "batches are never empty"
        for event in batch:
            acc.add(event)
    streamed = acc.response(id=complete.id, model="mock-1", created=complete.created)
    return complete, streamed


async def test_text_answer_echoes_and_stream_equals_complete() -> None:
    mock = MockProvider(chunk_delay_ms=0)
    complete, streamed = await both(mock, req(Message(role="user", content="hello there")))
    assert complete.content == "This is a mock response to: hello there"  # type: ignore[attr-defined]
    assert streamed == complete
    assert complete.usage.completion_tokens == 8  # one token per streamed word  # type: ignore[attr-defined]


async def test_tool_call_then_tool_result() -> None:
    mock = MockProvider(chunk_delay_ms=0)
    first, streamed = await both(mock, req(Message(role="user", content="Paris"), tools=[WEATHER]))
    call = first.tool_calls[0]  # type: ignore[attr-defined]
    assert call.name == "get_weather" and first.finish_reason == "tool_calls"  # type: ignore[attr-defined]
    assert json.loads(call.arguments) == {
        "city": "Paris",
        "days": 1,
        "metric": True,
        "unit": "c",
        "tags": ["Paris"],
        "scale": 1.5,
        "where": {"lat": 1.5},
    }
    assert streamed == first
    again = await mock.complete(req(Message(role="user", content="Paris"), tools=[WEATHER]), "m")
    assert again.tool_calls == first.tool_calls  # type: ignore[attr-defined]
    followup = req(
        Message(role="user", content="Paris"),
        Message(role="assistant", tool_calls=[ToolCall(call.id, call.name, call.arguments)]),
        Message(role="tool", tool_call_id=call.id, content="sunny"),
        tools=[WEATHER],
    )
    answer = await mock.complete(followup, "m")
    assert answer.content == "The tool returned: sunny" and answer.finish_reason == "stop"


@pytest.mark.parametrize(
    ("kw", "content", "finish"),
    [
        ({"stop": ["response"]}, "This is a mock ", "stop"),
        ({"max_tokens": 3}, "This is a", "length"),
        ({"tool_choice": "none", "tools": [WEATHER]}, "This is a mock response to: x", "stop"),
        (
            {"response_format": ResponseFormat("json_object")},
            '{"answer":"mock","echo":"x"}',
            "stop",
        ),
    ],
)
async def test_parameters_are_honoured(kw: dict[str, object], content: str, finish: str) -> None:
    mock = MockProvider(chunk_delay_ms=0)
    complete, streamed = await both(mock, req(Message(role="user", content="x"), **kw))
    assert complete.content == content and complete.finish_reason == finish  # type: ignore[attr-defined]
    assert streamed == complete


async def test_named_tool_choice_and_models() -> None:
    other = Tool(
        name="other", parameters={"type": "object", "properties": {"q": {"type": "string"}}}
    )
    mock = MockProvider(models=["a", "b"], first_token_delay_ms=1)
    answer = await mock.complete(
        req(
            Message(role="user", content="q"),
            tools=[WEATHER, other],
            tool_choice=NamedToolChoice("other"),
        ),
        "m",
    )
    assert answer.tool_calls is not None and answer.tool_calls[0].name == "other"
    assert answer.tool_calls[0].arguments == '{"q":"q"}'
    assert [m.id for m in await mock.list_models()] == ["a", "b"]
    await mock.aclose()
