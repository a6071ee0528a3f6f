"""openai_wire: request/response conversion, chunk parsing, usage and error mapping."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes.openai_upstream import OpenAIUpstream, read_request
from tests.fakes.scenarios import Scenario, ToolCallSpec, UsageSpec

from llm_gateway.core.accumulate import accumulate
from llm_gateway.core.errors import (
    ContextWindowExceededError,
    InvalidRequestError,
    ProviderOverloadedError,
    RateLimitError,
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
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from llm_gateway.providers.families import (
    DEEPSEEK,
    FAMILIES,
    GROQ,
    MISTRAL,
    OPENAI,
    OPENAI_COMPATIBLE,
    OPENROUTER,
    family_for,
    mistral_tool_call_id,
)
from llm_gateway.providers.openai_wire import (
    StreamState,
    chunk_to_events,
    encode_request,
    end_events,
    error_from_wire,
    finish_reason_from_wire,
    models_from_wire,
    request_to_wire,
    response_from_wire,
    usage_from_wire,
)
from llm_gateway.providers.sse import SSEParser

# --- strategies --------------------------------------------------------------------------

_text = st.text(max_size=12)
_ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=14)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ident, inner, max_size=3),
    max_leaves=6,
)
_parts = st.lists(
    st.one_of(
        st.builds(TextPart, _text),
        st.builds(
            ImagePart, _text.map(lambda s: "https://x/" + s), st.sampled_from([None, "low", "high"])
        ),
    ),
    min_size=1,
    max_size=3,
)
_calls = st.lists(st.builds(ToolCall, _ident, _ident, _text), min_size=1, max_size=3)
_message = st.one_of(
    st.builds(Message, st.just("system"), _text, name=st.none() | _ident),
    st.builds(Message, st.just("user"), _text | _parts, name=st.none() | _ident),
    st.builds(Message, st.just("assistant"), _text),
    st.builds(Message, st.just("assistant"), st.none() | _text, tool_calls=_calls),
    st.builds(Message, st.just("tool"), _text, tool_call_id=_ident),
)
_tool = st.builds(
    Tool,
    _ident,
    st.none() | _text,
    st.none() | st.dictionaries(_ident, _json_value, max_size=3),
    st.none() | st.booleans(),
)
_request = st.builds(
    ChatRequest,
    model=st.just("client-model"),
    messages=st.lists(_message, min_size=1, max_size=5),
    temperature=st.none() | st.floats(0, 2),
    top_p=st.none() | st.floats(0, 1),
    max_tokens=st.none() | st.integers(1, 10_000),
    stop=st.none() | st.lists(_text, min_size=1, max_size=3),
    seed=st.none() | st.integers(0, 2**31),
    user=st.none() | _ident,
    tools=st.none() | st.lists(_tool, min_size=1, max_size=3),
    tool_choice=st.none()
    | st.sampled_from(["auto", "none", "required"])
    | st.builds(NamedToolChoice, _ident),
    parallel_tool_calls=st.none() | st.booleans(),
    response_format=st.none()
    | st.builds(ResponseFormat, st.just("json_object"))
    | st.builds(ResponseFormat, st.just("json_schema"), st.just({"name": "x", "schema": {}})),
)


def _expected(request: ChatRequest, family_name: str, stream: bool) -> ChatRequest:
    """What a faithful adapter for ``family_name`` puts on the wire, in canonical terms."""
    family = FAMILIES[family_name]
    messages = []
    for m in request.messages:
        changes: dict[str, Any] = {}
        if m.tool_calls and family.tool_call_id:
            changes["tool_calls"] = [
                ToolCall(family.tool_call_id(c.id), c.name, c.arguments) for c in m.tool_calls
            ]
        if m.tool_call_id and family.tool_call_id:
            changes["tool_call_id"] = family.tool_call_id(m.tool_call_id)
        if m.name is not None and m.role != "tool" and not family.message_names:
            changes["name"] = None
        messages.append(msgspec.structs.replace(m, **changes))
    user = request.user if family.allowed_fields is None else None
    return msgspec.structs.replace(
        request,
        model="wire-model",
        messages=messages,
        stream=stream,
        user=user,
        stop=request.stop or None,
    )


@pytest.mark.parametrize("family_name", sorted(FAMILIES))
@settings(max_examples=60, deadline=None)
@given(request=_request, stream=st.booleans())
def test_request_round_trips_through_the_wire(
    family_name: str, request: ChatRequest, stream: bool
) -> None:
    body = msgspec.json.decode(encode_request(request, "wire-model", FAMILIES[family_name], stream))
    extra = dict(FAMILIES[family_name].extra_body)
    read = read_request(body)
    assert read.extra == extra
    assert msgspec.structs.replace(read, extra={}) == _expected(request, family_name, stream)


def test_max_tokens_field_stream_options_and_extra_pass_through() -> None:
    request = ChatRequest(
        model="m",
        messages=[Message("user", "hi")],
        max_tokens=5,
        seed=3,
        user="u1",
        extra={"logprobs": True, "usage": {"include": False}},
    )
    openai = request_to_wire(request, "gpt", OPENAI, True)
    assert openai["max_completion_tokens"] == 5 and "max_tokens" not in openai
    assert openai["stream_options"] == {"include_usage": True}
    assert openai["logprobs"] is True
    router = request_to_wire(request, "r", OPENROUTER, False)
    assert router["usage"] == {"include": False}  # the caller's extra wins over the row
    assert "stream_options" not in router
    mistral = request_to_wire(request, "mistral-small", MISTRAL, True)
    assert mistral["max_tokens"] == 5 and mistral["random_seed"] == 3
    for dropped in ("stream_options", "user", "logprobs", "usage", "seed"):
        assert dropped not in mistral


def test_reasoning_is_echoed_only_on_deepseek_tool_turns() -> None:
    messages = [
        Message("user", "q"),
        Message("assistant", "a", reasoning="thought 1"),
        Message("user", "q2"),
        Message("assistant", None, tool_calls=[ToolCall("c1", "f", "{}")], reasoning="thought 2"),
        Message("tool", "r", tool_call_id="c1"),
    ]
    request = ChatRequest(model="m", messages=messages)
    deepseek = request_to_wire(request, "deepseek-reasoner", DEEPSEEK, False)["messages"]
    assert "reasoning_content" not in deepseek[1]
    assert deepseek[3]["reasoning_content"] == "thought 2"
    for family in (OPENAI, GROQ, OPENROUTER, MISTRAL, OPENAI_COMPATIBLE):
        wire = request_to_wire(request, "m", family, False)["messages"]
        assert all("reasoning_content" not in m and "reasoning" not in m for m in wire)


def test_mistral_ids_are_nine_alphanumerics_and_deterministic() -> None:
    for foreign in ("call_abc123", "toolu_01A09q90qw90lq917835lq9", "x", "abcDEF123"):
        mapped = mistral_tool_call_id(foreign)
        assert len(mapped) == 9 and mapped.isalnum() and mapped.isascii()
        assert mistral_tool_call_id(foreign) == mapped
    assert mistral_tool_call_id("abcDEF123") == "abcDEF123"
    assert mistral_tool_call_id("call_1") != mistral_tool_call_id("call_2")


def test_family_rows() -> None:
    assert family_for("groq") is GROQ
    with pytest.raises(KeyError, match="known"):
        family_for("nope")
    assert OPENAI_COMPATIBLE.requires_base_url and not OPENAI_COMPATIBLE.requires_key
    assert not OPENAI.requires_base_url


# --- streaming equals non-streaming -----------------------------------------------------

_pieces = st.lists(st.text(min_size=1, max_size=8), max_size=5)
_tool_specs = st.lists(
    st.builds(
        ToolCallSpec,
        st.just(""),
        _ident,
        st.dictionaries(_ident, _json_value, max_size=3).map(
            lambda d: msgspec.json.encode(d).decode()
        ),
        st.integers(1, 5),
    ),
    max_size=3,
).map(lambda calls: tuple(dataclasses.replace(c, id=f"call{i:05d}x") for i, c in enumerate(calls)))
_scenario = st.builds(
    Scenario,
    text=_pieces.map(tuple),
    reasoning=_pieces.map(tuple),
    tool_calls=_tool_specs,
    usage=st.none()
    | st.builds(
        UsageSpec, st.integers(0, 999), st.integers(0, 999), st.integers(0, 9), st.integers(0, 9)
    ),
    finish=st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
)


def _stream(raw: bytes, cuts: list[int], family_name: str) -> list[StreamEvent]:
    parser = SSEParser()
    state = StreamState(FAMILIES[family_name])
    events: list[StreamEvent] = []
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    for piece in pieces:
        for event in parser.feed(piece):
            if event.data != "[DONE]":
                events.extend(chunk_to_events(msgspec.json.decode(event.data), state))
    return events + end_events(state)


@pytest.mark.parametrize("family_name", sorted(FAMILIES))
@settings(max_examples=60, deadline=None)
@given(scenario=_scenario, data=st.data())
def test_streamed_chunks_accumulate_to_the_non_streamed_response(
    family_name: str, scenario: Scenario, data: st.DataObject
) -> None:
    fake = OpenAIUpstream(family_name)
    raw = b"".join(fake._chunks(scenario, "m", include_usage=True)) + b"data: [DONE]\n\n"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    streamed = accumulate(_stream(raw, cuts, family_name))
    whole = response_from_wire(fake._completion(scenario, "m"), FAMILIES[family_name])
    assert (streamed.content or None) == whole.content
    assert streamed.reasoning == whole.reasoning
    assert streamed.tool_calls == whole.tool_calls
    assert streamed.finish_reason == whole.finish_reason
    assert streamed.usage == whole.usage


# --- chunk edge cases ---------------------------------------------------------------------


def _chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c", "choices": choices, **extra}


def test_tool_calls_without_index_or_reusing_an_index_get_dense_indices() -> None:
    state = StreamState(OPENAI_COMPATIBLE)
    events = chunk_to_events(
        _chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": {"x": 1}}}]}),
        state,
    )
    events += chunk_to_events(
        _chunk(
            {"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}
        ),
        state,
    )
    events += chunk_to_events(
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": " "}}]}), state
    )
    events += chunk_to_events(
        _chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "h"}}]}), state
    )
    assert [
        (e.index, e.id, e.name, e.arguments) for e in events if isinstance(e, ToolCallDelta)
    ] == [
        (0, "a", "f", '{"x":1}'),
        (1, "b", "g", "{}"),
        (1, None, None, " "),
        (2, "c", "h", ""),
    ]


def test_late_id_binds_to_the_index() -> None:
    state = StreamState(OPENAI)
    chunk_to_events(_chunk({"tool_calls": [{"index": 0, "function": {"name": "f"}}]}), state)
    (event,) = chunk_to_events(_chunk({"tool_calls": [{"index": 0, "id": "x"}]}), state)
    assert isinstance(event, ToolCallDelta) and event.index == 0


def test_finish_is_reported_once_and_stop_with_tool_calls_means_tool_calls() -> None:
    state = StreamState(OPENAI)
    chunk_to_events(
        _chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}), state
    )
    assert chunk_to_events(_chunk({}, "stop"), state) == [FinishEvent("tool_calls")]
    assert chunk_to_events(_chunk({}, "stop"), state) == []


def test_groq_usage_in_x_groq_and_error() -> None:
    state = StreamState(GROQ)
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "queue_time": 0.1}
    chunk_to_events(_chunk({}, "stop", x_groq={"id": "req", "usage": usage}), state)
    assert end_events(state) == [UsageEvent(Usage(3, 2, 5))]
    with pytest.raises(UpstreamError, match="overloaded"):
        chunk_to_events(_chunk({}, None, x_groq={"error": "overloaded"}), StreamState(GROQ))
    # Other families ignore x_groq.
    other = StreamState(OPENAI)
    chunk_to_events(_chunk({}, "stop", x_groq={"usage": usage}), other)
    assert end_events(other) == []


def test_reasoning_fields_per_family() -> None:
    delta = {"reasoning": "r", "reasoning_content": "rc", "content": "c"}
    assert chunk_to_events(_chunk(delta), StreamState(DEEPSEEK))[:1] == [ReasoningDelta("rc")]
    assert chunk_to_events(_chunk(delta), StreamState(OPENROUTER))[:1] == [ReasoningDelta("r")]
    assert chunk_to_events(_chunk(delta), StreamState(OPENAI)) == [TextDelta("c")]


def test_in_stream_error_objects_raise_mapped_errors() -> None:
    with pytest.raises(UpstreamError, match="model crashed"):
        chunk_to_events(
            {"error": {"message": "model crashed", "type": "server_error"}}, StreamState(OPENAI)
        )
    with pytest.raises(RateLimitError):
        chunk_to_events(
            {"error": {"code": 429, "message": "slow"}, "choices": []}, StreamState(OPENROUTER)
        )
    with pytest.raises(UpstreamError, match="not a JSON object"):
        chunk_to_events([1, 2], StreamState(OPENAI))


def test_list_content_in_delta_and_message() -> None:
    events = chunk_to_events(
        _chunk({"content": [{"type": "text", "text": "hi"}]}), StreamState(OPENAI)
    )
    assert events == [TextDelta("hi")]


# --- responses, usage, finish, models ----------------------------------------------------


def test_response_from_wire_errors_and_shapes() -> None:
    with pytest.raises(UpstreamError, match="no choices"):
        response_from_wire({"id": "x", "choices": []}, OPENAI)
    with pytest.raises(UpstreamError, match="not a JSON object"):
        response_from_wire([], OPENAI)
    with pytest.raises(UpstreamError, match="credits"):
        response_from_wire({"error": {"message": "no credits", "code": 402}}, OPENROUTER)
    response = response_from_wire(
        {
            "choices": [
                {
                    "message": {
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                        "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": None}}],
                    },
                    "finish_reason": None,
                }
            ],
            "created": "bad",
        },
        OPENAI,
        model="fallback-model",
    )
    assert response.content == "ab" and response.model == "fallback-model"
    assert response.tool_calls == [ToolCall("t", "f", "")]
    assert response.finish_reason == "tool_calls" and response.usage is None


def test_usage_from_wire_variants() -> None:
    assert usage_from_wire({"prompt_tokens": 5, "completion_tokens": 2}) == Usage(5, 2, 7)
    deepseek = usage_from_wire(
        {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "total_tokens": 14,
            "prompt_cache_hit_tokens": 6,
        }
    )
    assert deepseek.cached_tokens == 6
    openrouter = usage_from_wire(
        {"prompt_tokens": 1, "cost": 2, "completion_tokens_details": {"reasoning_tokens": 1}}
    )
    assert openrouter.cost == 2.0 and openrouter.reasoning_tokens == 1
    assert usage_from_wire({"prompt_tokens": "x", "cost": True}) == Usage()


def test_finish_reason_mapping() -> None:
    assert finish_reason_from_wire(None) is None
    assert finish_reason_from_wire("model_length") == "length"
    assert finish_reason_from_wire("function_call") == "tool_calls"
    assert finish_reason_from_wire("error") == "error"
    assert finish_reason_from_wire("something_new") == "stop"


def test_models_from_wire() -> None:
    models = models_from_wire({"data": [{"id": "a", "created": 5}, {"id": 3}, "x"]}, "owner")
    assert [(m.id, m.owned_by, m.created) for m in models] == [("a", "owner", 5)]
    assert [m.id for m in models_from_wire([{"id": "b", "owned_by": "me"}], "o")] == ["b"]
    with pytest.raises(UpstreamError):
        models_from_wire({"data": None}, "o")


# --- errors ------------------------------------------------------------------------------


def _err(status: int, payload: Any, headers: dict[str, str] | None = None) -> Any:
    raw = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    return error_from_wire(status, headers or {}, raw, "prov")


def test_error_mapping_by_status_then_code() -> None:
    openai_body = {
        "error": {
            "message": "Bad key",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    auth = _err(401, openai_body)
    assert isinstance(auth, UpstreamAuthenticationError)
    assert auth.code == "upstream_authentication_failed" and auth.provider == "prov"
    assert "Bad key" in auth.message and auth.upstream_status == 401

    limited = _err(
        429, {"error": {"message": "slow", "code": "rate_limit_exceeded"}}, {"retry-after": "12"}
    )
    assert isinstance(limited, RateLimitError) and limited.retry_after == 12.0
    assert _err(429, {}, {"retry-after-ms": "1500"}).retry_after == 1.5

    ctx = _err(
        400,
        {"error": {"message": "too long", "code": "context_length_exceeded", "param": "messages"}},
    )
    assert isinstance(ctx, ContextWindowExceededError) and ctx.param == "messages"

    assert isinstance(_err(503, {"error": {"message": "overloaded"}}), ProviderOverloadedError)
    assert isinstance(_err(529, b""), ProviderOverloadedError)
    server = _err(500, b"<html>oops</html>")
    assert isinstance(server, UpstreamError) and server.retryable and "oops" in server.message
    assert "HTTP 502" in _err(502, b"").message


def test_error_bodies_of_other_vendors() -> None:
    mistral = _err(
        422,
        {
            "object": "error",
            "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", "seed"]}]},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )
    assert isinstance(mistral, InvalidRequestError) and "extra_forbidden" in mistral.message
    assert "Tool call id" in _err(400, {"object": "error", "message": "Tool call id was x"}).message
    assert "model not found" in _err(404, {"error": "model not found"}).message
    assert "field required" in _err(422, {"detail": "field required"}).message
    router = _err(402, {"error": {"code": 402, "message": "Insufficient credits"}})
    assert isinstance(router, UpstreamError) and "Insufficient credits" in router.message
    assert "bare" in _err(400, b'"bare message"').message


def test_extras_pass_through_only_in_their_own_dialect() -> None:
    messages = [Message("user", "hi")]
    openai_side = ChatRequest(model="m", messages=messages, extra={"logprobs": True})
    assert request_to_wire(openai_side, "gpt", OPENAI, False)["logprobs"] is True
    # From the Anthropic dialect: "thinking" and "top_k" mean nothing to OpenAI, which
    # answers unknown parameters with a 400, so they must not be forwarded.
    anthropic_side = ChatRequest(
        model="m",
        messages=messages,
        extra={"thinking": {"type": "enabled", "budget_tokens": 1024}, "top_k": 5},
        extra_dialect="anthropic",
    )
    body = request_to_wire(anthropic_side, "gpt", OPENAI, False)
    assert "thinking" not in body and "top_k" not in body
