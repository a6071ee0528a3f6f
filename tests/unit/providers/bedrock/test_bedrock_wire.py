"""Converse wire conversions: round trips through the fake's independent reader for
Claude, Nova, Llama and Mistral ids (plain, ``us.`` inference profiles, ARNs), model
traits as data, responses, stream events and error mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes.bedrock_upstream import _validate, read_converse

from llm_gateway.core.errors import (
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderOverloadedError,
    ProviderUnavailableError,
    RateLimitError,
    UpstreamAuthenticationError,
    UpstreamError,
    UpstreamTimeoutError,
)
from llm_gateway.core.events import FinishEvent, ReasoningDelta, ToolCallDelta, UsageEvent
from llm_gateway.core.types import (
    ChatRequest,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
)
from llm_gateway.providers.bedrock.errors import error_from_exception_type, error_from_wire
from llm_gateway.providers.bedrock.provider import BedrockProvider
from llm_gateway.providers.bedrock.wire import (
    StreamState,
    base_model_id,
    event_to_events,
    request_to_wire,
    response_from_wire,
    tool_use_id,
    traits_for,
    usage_from_wire,
)

CLAUDE = "anthropic.claude-3-5-sonnet-20241022-v2:0"
MODELS = [
    CLAUDE,
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
    "amazon.nova-pro-v1:0",
    "eu.amazon.nova-lite-v1:0",
    "meta.llama3-1-70b-instruct-v1:0",
    "us.meta.llama3-3-70b-instruct-v1:0",
    "mistral.mistral-large-2407-v1:0",
    "mistral.mistral-small-2402-v1:0",
]
WEATHER = Tool(
    "get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def wire_path(model: str) -> str:
    return BedrockProvider._path(model, "converse")


# --- round trips -------------------------------------------------------------------------

_TEXT = st.text(min_size=1, max_size=30).filter(str.strip)
_ARGS = st.dictionaries(
    st.text("abcxyz", min_size=1, max_size=5), st.integers() | st.text(max_size=8), max_size=3
)
_ID = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(Message("system", draw(_TEXT)))
    used: set[str] = set()
    for _ in range(draw(st.integers(1, 4))):
        messages.append(Message("user", draw(_TEXT)))
        ids = [i for i in draw(st.lists(_ID, max_size=3, unique=True)) if i not in used]
        used.update(ids)
        calls = [ToolCall(i, "get_weather", json.dumps(draw(_ARGS))) for i in ids]
        text = draw(st.none() | _TEXT) if calls else draw(_TEXT)
        messages.append(Message("assistant", text, tool_calls=calls or None))
        for call in calls:
            messages.append(Message("tool", draw(_TEXT), tool_call_id=call.id))
    messages.append(Message("user", draw(_TEXT)))
    return messages


def normalised(messages: list[Message]) -> list[tuple[Any, ...]]:
    out = []
    for m in messages:
        calls = [(c.id, c.name, json.loads(c.arguments)) for c in m.tool_calls or ()]
        out.append((m.role, m.text() or None, calls, m.tool_call_id))
    return out


@settings(max_examples=120, deadline=None)
@given(messages=conversations(), model=st.sampled_from(MODELS),
       temperature=st.none() | st.floats(0, 1), max_tokens=st.none() | st.integers(1, 4096),
       stop=st.none() | st.lists(_TEXT, min_size=1, max_size=3))  # fmt: skip
def test_round_trip(
    messages: list[Message],
    model: str,
    temperature: float | None,
    max_tokens: int | None,
    stop: list[str] | None,
) -> None:
    request = ChatRequest(
        model="client", messages=messages, temperature=temperature, max_tokens=max_tokens,
        stop=stop, tools=[WEATHER],
    )  # fmt: skip
    body = json.loads(json.dumps(request_to_wire(request, model)))
    _validate(body)  # the fake's service-side checks: alternation, ids, toolConfig...
    back = read_converse(wire_path(model), body)
    assert back.model == model
    assert normalised(back.messages) == normalised(messages)
    assert (back.temperature, back.max_tokens, back.stop) == (temperature, max_tokens, stop)
    assert back.tools == [WEATHER]


@pytest.mark.parametrize("model", MODELS)
def test_model_id_is_one_encoded_path_segment(model: str) -> None:
    path = wire_path(model)
    assert path.count("/") == 3 and ":" not in path
    assert read_converse(path, {"messages": []}).model == model


def test_base_model_ids() -> None:
    assert base_model_id("us.anthropic.claude-3-5-sonnet-20241022-v2:0") == CLAUDE
    assert base_model_id("global.anthropic.claude-sonnet-4-5-20250929-v1:0").startswith(
        "anthropic."
    )
    assert base_model_id("apac.amazon.nova-micro-v1:0") == "amazon.nova-micro-v1:0"
    assert base_model_id(MODELS[2]) == "anthropic.claude-sonnet-4-20250514-v1:0"
    assert base_model_id("meta.llama3-1-8b-instruct-v1:0") == "meta.llama3-1-8b-instruct-v1:0"


# --- traits as data ----------------------------------------------------------------------


def tool_choice_sent(model: str, choice: Any) -> Any:
    request = ChatRequest(
        model="m", messages=[Message("user", "hi")], tools=[WEATHER], tool_choice=choice
    )
    return request_to_wire(request, model).get("toolConfig", {}).get("toolChoice")


def test_tool_choice_by_family() -> None:
    named = NamedToolChoice("get_weather")
    assert tool_choice_sent(CLAUDE, "required") == {"any": {}}
    assert tool_choice_sent("us.anthropic.claude-3-haiku-20240307-v1:0", named) == {
        "tool": {"name": "get_weather"}
    }
    assert tool_choice_sent("amazon.nova-pro-v1:0", named) == {"tool": {"name": "get_weather"}}
    assert tool_choice_sent("mistral.mistral-large-2407-v1:0", named) == {"any": {}}
    # Llama takes tools and "auto" only: a forced choice is left out, not sent to fail.
    assert tool_choice_sent("us.meta.llama3-3-70b-instruct-v1:0", "required") is None
    assert tool_choice_sent("meta.llama3-1-70b-instruct-v1:0", "auto") == {"auto": {}}
    assert tool_choice_sent("some-custom-model", named) == {"tool": {"name": "get_weather"}}
    none = ChatRequest(
        model="m", messages=[Message("user", "hi")], tools=[WEATHER], tool_choice="none"
    )
    assert "toolConfig" not in request_to_wire(none, CLAUDE)


def test_system_prompt_folded_in_for_models_without_one() -> None:
    request = ChatRequest(
        model="m", messages=[Message("system", "Be brief."), Message("user", "Hi")]
    )
    mixtral = request_to_wire(request, "mistral.mixtral-8x7b-instruct-v0:1")
    assert "system" not in mixtral
    assert mixtral["messages"] == [
        {"role": "user", "content": [{"text": "Be brief."}, {"text": "Hi"}]}
    ]
    assert traits_for("mistral.mistral-7b-instruct-v0:2").system_prompt is False
    assert request_to_wire(request, "us.meta.llama3-2-3b-instruct-v1:0")["system"] == [
        {"text": "Be brief."}
    ]


def test_tool_history_without_tools_declares_them() -> None:
    messages = [
        Message("user", "Weather?"),
        Message("assistant", None, tool_calls=[ToolCall("call.1:x", "get_weather", "{}")]),
        Message("tool", "sunny", tool_call_id="call.1:x"),
        Message("user", "Summarise."),
    ]
    body = request_to_wire(ChatRequest(model="m", messages=messages), CLAUDE)
    _validate(body)
    assert [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]] == ["get_weather"]
    use = body["messages"][1]["content"][0]["toolUse"]
    result = body["messages"][2]["content"][0]["toolResult"]
    assert use["toolUseId"] == result["toolUseId"] == tool_use_id("call.1:x") == "call_1_x"
    assert body["messages"][2]["content"][1] == {"text": "Summarise."}


def test_images_extra_fields_and_reasoning_echo() -> None:
    parts: list[TextPart | ImagePart] = [
        TextPart("What?"),
        ImagePart("data:image/jpeg;base64,/9j/4A=="),
    ]
    request = ChatRequest(
        model="m",
        messages=[
            Message("user", parts),
            Message("assistant", "ok", reasoning="hmm", reasoning_signature="sig"),
            Message("user", "more"),
        ],
        extra={"top_k": 40, "presence_penalty": 0.5, "additionalModelRequestFields": {"thinking": {"type": "enabled"}}},
    )  # fmt: skip
    body = request_to_wire(request, CLAUDE)
    assert body["messages"][0]["content"][1] == {
        "image": {"format": "jpeg", "source": {"bytes": "/9j/4A=="}}
    }
    assert body["messages"][1]["content"][0] == {
        "reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}
    }
    assert body["additionalModelRequestFields"] == {"top_k": 40, "thinking": {"type": "enabled"}}


def test_http_image_url_is_a_clear_400() -> None:
    request = ChatRequest(model="m", messages=[Message("user", [ImagePart("https://x/cat.png")])])
    with pytest.raises(InvalidRequestError) as caught:
        request_to_wire(request, CLAUDE)
    assert caught.value.status == 400
    assert "data: URL" in caught.value.message and caught.value.param == "messages[0].content[0]"


# --- responses and streams --------------------------------------------------------------


def test_response_with_reasoning_tool_use_and_cache_usage() -> None:
    data = {
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "think", "signature": "s1"}}},
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15,
                  "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20},
        "metrics": {"latencyMs": 5},
    }  # fmt: skip
    response = response_from_wire(data, model=CLAUDE)
    assert (response.content, response.reasoning, response.reasoning_signature) == (
        "Checking.",
        "think",
        "s1",
    )
    assert response.tool_calls == [ToolCall("tooluse_1", "get_weather", '{"city": "Paris"}')]
    assert response.finish_reason == "tool_calls"
    usage = response.usage
    assert usage is not None
    assert (
        usage.prompt_tokens,
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.total_tokens,
    ) == (130, 100, 20, 135)


@pytest.mark.parametrize(
    ("wire", "canonical"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls"), ("guardrail_intervened", "content_filter"),
     ("content_filtered", "content_filter"), ("model_context_window_exceeded", "length")],
)  # fmt: skip
def test_stop_reasons(wire: str, canonical: str) -> None:
    assert event_to_events("messageStop", {"stopReason": wire}, StreamState()) == [
        FinishEvent(canonical)
    ]  # type: ignore[arg-type]


def test_stream_events() -> None:
    state = StreamState()
    assert event_to_events(
        "contentBlockDelta",
        {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "a"}}},
        state,
    ) == [ReasoningDelta("a")]
    assert event_to_events(
        "contentBlockDelta",
        {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "z"}}},
        state,
    ) == [ReasoningDelta("", signature="z")]
    start = event_to_events(
        "contentBlockStart",
        {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}},
        state,
    )
    assert start == [ToolCallDelta(0, id="t1", name="f")]
    assert event_to_events(
        "contentBlockDelta",
        {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"a"'}}},
        state,
    ) == [ToolCallDelta(0, arguments='{"a"')]
    assert event_to_events("messageStop", {"stopReason": "end_turn"}, state) == [
        FinishEvent("tool_calls")
    ]
    (usage,) = event_to_events(
        "metadata",
        {"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}, "metrics": {}},
        state,
    )
    assert isinstance(usage, UsageEvent) and usage.usage.total_tokens == 7
    assert usage_from_wire({}).total_tokens == 0  # fmt: skip


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "type_name", "cls"),
    [(400, "ValidationException", InvalidRequestError),
     (403, "AccessDeniedException", PermissionDeniedError),
     (403, "UnrecognizedClientException", UpstreamAuthenticationError),
     (403, "InvalidSignatureException", UpstreamAuthenticationError),
     (404, "ResourceNotFoundException", ModelNotFoundError),
     (408, "ModelTimeoutException", UpstreamTimeoutError),
     (429, "ThrottlingException", RateLimitError),
     (429, "ModelNotReadyException", ProviderUnavailableError),
     (503, "ServiceUnavailableException", ProviderOverloadedError),
     (500, "InternalServerException", UpstreamError),
     (424, "ModelErrorException", UpstreamError)],
)  # fmt: skip
def test_http_errors_by_type(status: int, type_name: str, cls: type) -> None:
    headers = {
        "x-amzn-errortype": f"{type_name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "retry-after": "3",
    }
    error = error_from_wire(status, headers, b'{"message": "nope"}', "aws")
    assert type(error) is cls
    assert error.message == f"nope ({type_name})" and error.upstream_status == status
    assert error.retry_after == 3.0 and error.provider == "aws"
    assert error.retryable == (
        cls
        in (
            RateLimitError,
            ProviderUnavailableError,
            ProviderOverloadedError,
            UpstreamError,
            UpstreamTimeoutError,
        )
    )


def test_context_overflow_and_fallbacks() -> None:
    error = error_from_wire(
        400,
        {"x-amzn-errortype": "ValidationException"},
        b'{"message": "Input is too long for requested model."}',
        None,
    )
    assert isinstance(error, ContextWindowExceededError) and not error.retryable
    assert isinstance(error_from_wire(502, {}, b"<html>bad gateway</html>", None), UpstreamError)
    assert isinstance(error_from_wire(429, {}, b"", None), RateLimitError)
    streamed = error_from_exception_type("throttlingException", "slow down", "aws")
    assert isinstance(streamed, RateLimitError) and streamed.upstream_status == 429
    assert isinstance(error_from_exception_type("modelStreamErrorException", "x"), UpstreamError)
    assert isinstance(error_from_exception_type("validationException", "prompt is too long: 300000 tokens"), ContextWindowExceededError)  # fmt: skip
