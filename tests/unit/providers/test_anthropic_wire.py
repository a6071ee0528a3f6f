"""anthropic_wire and AnthropicProvider: request/response conversion, the stream state
machine, usage and error mapping, auth headers, and a few exchanges on a real socket."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes.anthropic_upstream import (
    SIGNATURE,
    AnthropicUpstream,
    StreamFailure,
    read_request,
)
from tests.fakes.scenarios import ErrorSpec, Scenario, ToolCallSpec, UsageSpec
from tests.fakes.server import RunningServer, run_server

from llm_gateway.config.schema import AnthropicProviderConfig
from llm_gateway.core.accumulate import accumulate
from llm_gateway.core.errors import (
    ContextWindowExceededError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
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
from llm_gateway.http.client import HttpClient
from llm_gateway.providers.anthropic import AnthropicProvider, auth_headers, build_anthropic
from llm_gateway.providers.anthropic_wire import (
    JSON_OBJECT_INSTRUCTION,
    StreamState,
    end_events,
    error_from_payload,
    error_from_wire,
    event_to_events,
    finish_reason_from_wire,
    models_from_wire,
    request_to_wire,
    response_from_wire,
    tool_use_id,
    usage_from_wire,
)
from llm_gateway.providers.registry import BUILDERS
from llm_gateway.providers.sse import SSEParser


def wire(request: ChatRequest, *, stream: bool = False, max_tokens: int = 4096) -> Any:
    return request_to_wire(request, "claude-x", max_tokens, stream)


def ask(*messages: Message, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), **kwargs)


# --- strategies: canonical requests Anthropic's wire can carry one-to-one ---------------

_text = st.text(min_size=1, max_size=10).filter(lambda s: s.strip() != "")
_ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=12)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ident, inner, max_size=3),
    max_leaves=6,
)
_arguments = st.dictionaries(_ident, _json_value, max_size=3).map(
    lambda d: json.dumps(d, ensure_ascii=False)
)
_image = st.one_of(
    st.builds(
        lambda t, b: ImagePart(f"data:{t};base64,{b}"),
        st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
        st.text(alphabet="ABCDEFabcdef0123456789+/=", min_size=1, max_size=12),
    ),
    _ident.map(lambda s: ImagePart(f"https://img.example/{s}.png")),
)
# A part list reads back as a list unless it is exactly one text part (== a string).
_parts = st.lists(st.one_of(st.builds(TextPart, _text), _image), min_size=1, max_size=3).filter(
    lambda ps: not (len(ps) == 1 and isinstance(ps[0], TextPart))
)
_user = st.builds(Message, st.just("user"), _text | _parts)


@st.composite
def _assistant_turn(draw: st.DrawFn, turn: int) -> list[Message]:
    """An assistant message, and the tool results answering its calls."""
    if not draw(st.booleans()):
        return [Message("assistant", draw(_text))]
    count = draw(st.integers(1, 3))
    calls = [
        ToolCall(f"toolu_{turn}_{i}{draw(_ident)}", draw(_ident), draw(_arguments))
        for i in range(count)
    ]
    signed = draw(st.booleans())
    assistant = Message(
        "assistant",
        draw(st.none() | _text),
        tool_calls=calls,
        reasoning=draw(_text) if signed else None,
        reasoning_signature=draw(_ident) if signed else None,
    )
    results = [Message("tool", draw(_text), tool_call_id=c.id) for c in calls]
    return [assistant, *results]


@st.composite
def _conversation(draw: st.DrawFn) -> list[Message]:
    messages = [Message("system", draw(_text)) for _ in range(draw(st.integers(0, 2)))]
    messages.append(draw(_user))
    for turn in range(draw(st.integers(0, 3))):
        messages.extend(draw(_assistant_turn(turn)))
        messages.append(draw(_user))
    return messages


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
    messages=_conversation(),
    temperature=st.none() | st.floats(0, 1),
    top_p=st.none() | st.floats(0, 1),
    max_tokens=st.none() | st.integers(1, 10_000),
    stop=st.none() | st.lists(_text, min_size=1, max_size=3),
    user=st.none() | _ident,
    tools=st.none() | st.lists(_tool, min_size=1, max_size=3),
    tool_choice=st.none()
    | st.sampled_from(["auto", "none", "required"])
    | st.builds(NamedToolChoice, _ident),
    parallel_tool_calls=st.none() | st.booleans(),
    extra=st.none().map(lambda _: {}) | st.builds(dict, top_k=st.integers(1, 50)),
)


def _expected(request: ChatRequest, stream: bool) -> ChatRequest:
    """What a faithful adapter puts on the wire, in canonical terms."""
    tools = request.tools
    choice, parallel = request.tool_choice, request.parallel_tool_calls
    if not tools:
        choice = parallel = None  # tool_choice without tools is not sent
    elif choice == "none":
        parallel = None  # {"type": "none"} has no parallel flag
    elif choice is None and parallel is not None:
        choice = "auto"  # the flag travels on an explicit auto choice
    if tools:
        tools = [
            t
            if t.parameters is not None
            else dataclasses_replace(t, parameters={"type": "object", "properties": {}})
            for t in tools
        ]
    return msgspec.structs.replace(
        request,
        model="claude-x",
        max_tokens=request.max_tokens or 4096,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        stream=stream,
    )


def dataclasses_replace(tool: Tool, **changes: Any) -> Tool:
    return msgspec.structs.replace(tool, **changes)


@settings(max_examples=80, deadline=None)
@given(request=_request, stream=st.booleans())
def test_request_round_trips_through_the_wire(request: ChatRequest, stream: bool) -> None:
    body = msgspec.json.decode(msgspec.json.encode(wire(request, stream=stream)))
    assert read_request(body) == _expected(request, stream)


_any_message = st.one_of(
    st.builds(Message, st.just("system"), _text),
    st.builds(Message, st.just("user"), _text | _parts),
    st.builds(Message, st.just("assistant"), _text),
)


@settings(max_examples=80, deadline=None)
@given(messages=st.lists(_any_message, min_size=1, max_size=8))
def test_any_role_sequence_becomes_alternating_turns_keeping_every_text(
    messages: list[Message],
) -> None:
    body = wire(ask(*messages))
    roles = [m["role"] for m in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))
    read = read_request(body)

    def texts(ms: list[Message], role: str) -> str:
        # Merged assistant text blocks read back joined, so compare the joined text.
        return "".join(m.text() for m in ms if m.role == role)

    for role in ("system", "user", "assistant"):
        assert texts(read.messages, role) == texts(messages, role)


# --- requests: the cases worth spelling out ------------------------------------------------


def test_consecutive_roles_merge_and_tool_results_lead_the_user_turn() -> None:
    request = ask(
        Message("system", "Be brief."),
        Message("user", "one"),
        Message("user", [TextPart("two"), ImagePart("https://x.test/a.png")]),
        Message("assistant", "thinking aloud"),
        Message(
            "assistant",
            None,
            tool_calls=[ToolCall("call:1", "f", '{"a": 1}'), ToolCall("call_2", "g", "")],
        ),
        Message("system", "Late rule."),
        Message("user", "by the way"),
        Message("tool", "r1", tool_call_id="call:1"),
        Message("tool", [TextPart("r2")], tool_call_id="call_2"),
    )
    body = wire(request)
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Late rule."},
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "thinking aloud"},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "r1"},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "r2"}],
                },
                {"type": "text", "text": "by the way"},
            ],
        },
    ]


def test_images() -> None:
    parts: list[TextPart | ImagePart] = [
        ImagePart("data:image/jpg;base64,/9j/4AAQ", detail="high"),
        ImagePart("data:image/webp;charset=x;base64,UklGRg=="),
        ImagePart("http://example.com/cat.gif"),
    ]
    (message,) = wire(ask(Message("user", parts)))["messages"]
    assert message["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGRg=="}},
        {"type": "image", "source": {"type": "url", "url": "http://example.com/cat.gif"}},
    ]  # fmt: skip
    for url, why in [
        ("data:image/png,rawbytes", "base64"),
        ("data:image/bmp;base64,Qk0=", "image/bmp"),
        ("ftp://example.com/x.png", "http"),
    ]:
        with pytest.raises(InvalidRequestError, match=why) as caught:
            wire(ask(Message("user", [TextPart("x"), ImagePart(url)])))
        assert caught.value.param == "messages[0].content[1]"


def test_invalid_tool_arguments_are_a_clear_invalid_request() -> None:
    for arguments, match in [('{"city": ', "not valid JSON"), ("[1, 2]", "JSON object")]:
        call = ToolCall("c1", "f", arguments)
        request = ask(Message("user", "q"), Message("assistant", None, tool_calls=[call]))
        with pytest.raises(InvalidRequestError, match=match) as caught:
            wire(request)
        assert caught.value.param == "messages[1].tool_calls[0].function.arguments"
        assert caught.value.status == 400 and not caught.value.retryable


def test_tool_choice_and_parallel_flag() -> None:
    tools = [Tool("f", parameters={"type": "object"})]
    cases: list[tuple[Any, bool | None, dict[str, Any] | None]] = [
        ("auto", None, {"type": "auto"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (NamedToolChoice("f"), True, {"type": "tool", "name": "f", "disable_parallel_tool_use": False}),
        ("none", False, {"type": "none"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ]  # fmt: skip
    for choice, parallel, expected in cases:
        body = wire(
            ask(Message("user", "q"), tools=tools, tool_choice=choice, parallel_tool_calls=parallel)
        )
        assert body.get("tool_choice") == expected
        assert body["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]
    no_tools = wire(ask(Message("user", "q"), tool_choice="required", parallel_tool_calls=False))
    assert "tool_choice" not in no_tools and "tools" not in no_tools


def test_parameters_defaults_and_pass_through() -> None:
    request = ask(
        Message("user", "q"),
        temperature=0.3,
        top_p=0.9,
        seed=5,
        stop=["END", "\n", "  "],
        user="u-1",
        extra={"top_k": 40, "presence_penalty": 1.0, "logprobs": True, "service_tier": "auto"},
    )
    body = wire(request, stream=True, max_tokens=1000)
    assert body == {
        "model": "claude-x",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "q"}],
        "temperature": 0.3,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "stream": True,
        "top_k": 40,
        "service_tier": "auto",
    }
    thinking = {"type": "enabled", "budget_tokens": 2048}
    body = wire(ask(Message("user", "q"), extra={"thinking": thinking}), max_tokens=1024)
    assert body["thinking"] == thinking and body["max_tokens"] == 2048 + 1024
    body = wire(ask(Message("user", "q"), max_tokens=9000, extra={"thinking": thinking}))
    assert body["max_tokens"] == 9000  # the caller's own value is never changed


def test_response_format_best_effort() -> None:
    body = wire(
        ask(
            Message("system", "sys"),
            Message("user", "q"),
            response_format=ResponseFormat("json_object"),
        )
    )
    assert body["system"] == [
        {"type": "text", "text": "sys"},
        {"type": "text", "text": JSON_OBJECT_INSTRUCTION},
    ]
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = ResponseFormat("json_schema", {"name": "x", "schema": schema, "strict": True})
    body = wire(
        ask(Message("user", "q"), response_format=fmt, extra={"output_config": {"effort": "low"}})
    )
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": schema},
        "effort": "low",
    }
    assert "system" not in body


def test_reasoning_is_echoed_first_only_with_its_signature() -> None:
    call = ToolCall("toolu_1", "f", "{}")
    signed = Message(
        "assistant", "ok", tool_calls=[call], reasoning="hmm", reasoning_signature="sig"
    )
    unsigned = Message("assistant", "ok", reasoning="from another provider")
    body = wire(ask(Message("user", "q"), signed, Message("tool", "r", tool_call_id="toolu_1")))
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "hmm",
        "signature": "sig",
    }
    assert [b["type"] for b in body["messages"][1]["content"]] == ["thinking", "text", "tool_use"]
    assert wire(ask(Message("user", "q"), unsigned))["messages"][1] == {
        "role": "assistant",
        "content": "ok",
    }


def test_tool_use_ids_are_made_acceptable_and_stay_paired() -> None:
    assert tool_use_id("toolu_01A-b") == "toolu_01A-b"
    assert tool_use_id("call.1:x") == "call_1_x"


# --- responses, usage, finish -------------------------------------------------------------


def test_response_blocks_usage_and_finish() -> None:
    data = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Let me see.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "EnCrYpTeD"},
            {"type": "text", "text": "Calling "},
            {"type": "text", "text": "tools."},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "é", "n": [1, 2]}},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 5,
            "output_tokens": 20,
            "output_tokens_details": {"thinking_tokens": 8},
        },
    }
    response = response_from_wire(data)
    assert (response.content, response.reasoning, response.reasoning_signature) == (
        "Calling tools.",
        "Let me see.",
        "sig-1",
    )
    assert response.tool_calls == [ToolCall("toolu_1", "f", '{"q": "é", "n": [1, 2]}')]
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(
        45, 20, 65, cached_tokens=30, reasoning_tokens=8, cache_write_tokens=5
    )
    assert usage_from_wire({"input_tokens": 3, "output_tokens": 4}) == Usage(3, 4, 7)


def test_stop_reasons() -> None:
    assert {
        r: finish_reason_from_wire(r)
        for r in ["end_turn", "stop_sequence", "pause_turn", "max_tokens",
                  "model_context_window_exceeded", "tool_use", "refusal", "something_new"]
    } == {
        "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
        "model_context_window_exceeded": "length", "tool_use": "tool_calls",
        "refusal": "content_filter", "something_new": "stop",
    }  # fmt: skip
    assert finish_reason_from_wire(None) is None


def test_models_from_wire() -> None:
    data = {
        "data": [
            {"type": "model", "id": "claude-a", "display_name": "A", "created_at": "2025-02-19T00:00:00Z"},
            {"type": "model", "id": "claude-b", "display_name": "B", "created_at": "not a date"},
        ],
        "has_more": False,
    }  # fmt: skip
    models = models_from_wire(data, "claude")
    assert [(m.id, m.owned_by, m.created) for m in models] == [
        ("claude-a", "claude", 1739923200),
        ("claude-b", "claude", 0),
    ]
    with pytest.raises(UpstreamError):
        models_from_wire([], "claude")


# --- errors -------------------------------------------------------------------------------


def _error(type_: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": type_, "message": message}}).encode()


def test_errors_map_by_status_then_message() -> None:
    cases: list[tuple[int, str, str, type[Exception]]] = [
        (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum", ContextWindowExceededError),
        (400, "invalid_request_error", "input length and `max_tokens` exceed context limit: 197626 + 8192 > 200000", ContextWindowExceededError),
        (400, "invalid_request_error", "temperature: range", InvalidRequestError),
        (401, "authentication_error", "invalid x-api-key", UpstreamAuthenticationError),
        (403, "permission_error", "no access", PermissionDeniedError),
        (404, "not_found_error", "model: claude-x", NotFoundError),
        (413, "request_too_large", "too big", PayloadTooLargeError),
        (429, "rate_limit_error", "slow down", RateLimitError),
        (500, "api_error", "boom", UpstreamError),
        (529, "overloaded_error", "Overloaded", ProviderOverloadedError),
    ]  # fmt: skip
    for status, type_, message, cls in cases:
        error = error_from_wire(status, {"retry-after": "3"}, _error(type_, message), "claude")
        assert type(error) is cls, (status, message)
        assert message in error.message and type_ in error.message
        assert (error.provider, error.upstream_status, error.retry_after) == ("claude", status, 3.0)
    plain = error_from_wire(502, {}, b"<html>Bad Gateway</html>", None)
    assert type(plain) is UpstreamError and "Bad Gateway" in plain.message
    # In-stream errors come on a 200: the error type decides.
    for type_, cls in [("overloaded_error", ProviderOverloadedError), ("api_error", UpstreamError),
                       ("rate_limit_error", RateLimitError)]:  # fmt: skip
        payload = {"type": "error", "error": {"type": type_, "message": "m"}}
        assert type(error_from_payload(payload, None, {}, None)) is cls


# --- streaming equals non-streaming -------------------------------------------------------

_pieces = st.lists(st.text(min_size=1, max_size=8), max_size=5)
_tool_specs = st.lists(
    st.builds(ToolCallSpec, st.just(""), _ident, _arguments, st.integers(1, 5)),
    max_size=3,
).map(lambda calls: tuple(dataclasses.replace(c, id=f"toolu_{i:03d}") for i, c in enumerate(calls)))
_scenario = st.builds(
    Scenario,
    text=_pieces.map(tuple),
    reasoning=_pieces.map(tuple),
    tool_calls=_tool_specs,
    usage=st.none()
    | st.builds(
        lambda p, c, cached, r: UsageSpec(p + cached, c + r, cached, r),
        st.integers(0, 999),
        st.integers(0, 999),
        st.integers(0, 99),
        st.integers(0, 99),
    ),
    finish=st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
)


def _stream(raw: bytes, cuts: list[int]) -> list[StreamEvent]:
    parser = SSEParser()
    state = StreamState()
    events: list[StreamEvent] = []
    for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        for event in parser.feed(raw[a:b]):
            events.extend(event_to_events(msgspec.json.decode(event.data), state))
    assert state.done
    return events + end_events(state)


@settings(max_examples=100, deadline=None)
@given(scenario=_scenario, data=st.data())
def test_streamed_events_accumulate_to_the_non_streamed_response(
    scenario: Scenario, data: st.DataObject
) -> None:
    fake = AnthropicUpstream()
    raw = b"".join(payload for _, payload in fake._events(scenario, "m"))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    events = _stream(raw, cuts)
    streamed = accumulate(events)
    whole = response_from_wire(fake.message(scenario, "m"))
    assert (streamed.content or None) == (whole.content or None)
    assert (streamed.reasoning, streamed.reasoning_signature) == (
        whole.reasoning,
        whole.reasoning_signature,
    )
    assert streamed.tool_calls == whole.tool_calls
    assert streamed.finish_reason == whole.finish_reason
    assert streamed.usage == whole.usage
    # Shape: each call opens with id and name; one finish, then one usage, last.
    seen: set[int] = set()
    for event in events:
        if isinstance(event, ToolCallDelta) and event.index not in seen:
            seen.add(event.index)
            assert event.id and event.name
    assert seen == set(range(len(scenario.tool_calls)))
    assert [type(e) for e in events[-2:]] == [FinishEvent, UsageEvent]
    assert sum(isinstance(e, FinishEvent | UsageEvent) for e in events) == 2


def test_stream_edge_cases() -> None:
    state = StreamState()
    events: list[StreamEvent] = []
    for event in [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "x"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "citations_delta", "citation": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t1", "name": "now", "input": {}}},
        {"type": "content_block_stop", "index": 2},
        {"type": "some_future_event"},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
         "usage": {"output_tokens": 9, "input_tokens": 6, "cache_read_input_tokens": 2}},
        {"type": "message_stop"},
    ]:  # fmt: skip
        events.extend(event_to_events(event, state))
    events += end_events(state)
    assert events == [
        TextDelta("Hi"),
        ToolCallDelta(0, "t1", "now", ""),
        ToolCallDelta(0, None, None, "{}"),  # a call with no input fragments: "{}"
        FinishEvent("tool_calls"),
        UsageEvent(Usage(8, 9, 17, cached_tokens=2)),  # message_delta's cumulative counts win
    ]
    with pytest.raises(ProviderOverloadedError, match="Overloaded"):
        event_to_events(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, state
        )
    with pytest.raises(UpstreamError, match="not a tool_use"):
        event_to_events(
            {
                "type": "content_block_delta",
                "index": 7,
                "delta": {"type": "input_json_delta", "partial_json": "{"},
            },
            state,
        )
    thinking = StreamState()
    out = event_to_events(
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        thinking,
    )
    out += event_to_events(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "s"},
        },
        thinking,
    )
    assert out == [ReasoningDelta("", signature="s")]


# --- headers, builder, registry -------------------------------------------------------------


def test_auth_headers() -> None:
    assert auth_headers("sk-ant-api03-abc", None) == {"x-api-key": "sk-ant-api03-abc"}
    assert auth_headers("sk-ant-oat01-xyz", {"Anthropic-Beta": "prompt-caching-2024-07-31"}) == {
        "authorization": "Bearer sk-ant-oat01-xyz",
        "anthropic-beta": "prompt-caching-2024-07-31,oauth-2025-04-20",
    }
    assert auth_headers(None, None) == {}


async def test_builder_and_registry() -> None:
    assert BUILDERS["anthropic"] is build_anthropic
    cfg = AnthropicProviderConfig.model_validate(
        {
            "type": "anthropic",
            "api_key": "k",
            "base_url": "http://127.0.0.1:9/v1/",
            "max_tokens": 77,
        }
    )
    provider = build_anthropic("claude", cfg)
    try:
        assert isinstance(provider, AnthropicProvider)
        assert (provider.name, provider.type) == ("claude", "anthropic")
    finally:
        await provider.aclose()


# --- the provider on a real socket ----------------------------------------------------------

OAUTH = "sk-ant-oat01-test-token"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AnthropicUpstream, RunningServer]]:
    fake = AnthropicUpstream(api_key=OAUTH)
    with run_server(fake) as server:
        yield fake, server


def _provider(url: str, **kwargs: Any) -> AnthropicProvider:
    client = HttpClient(url, connect_timeout=2.0, read_timeout=5.0)
    return AnthropicProvider("claude", client, api_key=OAUTH, **kwargs)


async def test_in_stream_error_is_raised_after_the_events_before_it(
    served: tuple[AnthropicUpstream, RunningServer],
) -> None:
    fake, server = served
    fake.reset()
    fake.queue_stream_failure(
        Scenario.reply("a", "b", "c"), StreamFailure(3, ErrorSpec("overloaded", "Overloaded"))
    )
    provider = _provider(server.url, headers={"anthropic-beta": "files-api-2025-04-14"})
    events: list[StreamEvent] = []
    try:
        with pytest.raises(ProviderOverloadedError, match="Overloaded") as caught:
            async for batch in provider.stream(ask(Message("user", "hi")), "claude-x"):
                events.extend(batch)
    finally:
        await provider.aclose()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", "b"]
    assert caught.value.provider == "claude" and caught.value.retryable
    headers = fake.requests[-1].headers
    assert headers["authorization"] == f"Bearer {OAUTH}" and "x-api-key" not in headers
    assert headers["anthropic-beta"] == "files-api-2025-04-14,oauth-2025-04-20"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["accept"] == "text/event-stream"


async def test_max_tokens_default_reasoning_signature_and_models(
    served: tuple[AnthropicUpstream, RunningServer],
) -> None:
    fake, server = served
    fake.reset()
    fake.queue(Scenario(reasoning=("Hm", "m."), text=("42",)))
    provider = _provider(server.url, max_tokens=321, api_version="2099-01-01", models=["cfg-model"])
    try:
        response = await provider.complete(ask(Message("user", "q")), "claude-x")
        assert (response.reasoning, response.reasoning_signature, response.content) == (
            "Hmm.",
            SIGNATURE,
            "42",
        )
        assert fake.last_body["max_tokens"] == 321
        assert fake.requests[-1].headers["anthropic-version"] == "2099-01-01"
        assert [m.id for m in await provider.list_models()] == [
            "fake-model-small",
            "fake-model-large",
        ]
        assert fake.requests[-1].path == "/v1/models"
    finally:
        await provider.aclose()
    # A rejected key: the configured models are still listed.
    stranger = AnthropicProvider(
        "claude",
        HttpClient(server.url, connect_timeout=2.0, read_timeout=5.0),
        api_key="sk-ant-api03-wrong",
        models=["cfg-model"],
    )
    try:
        assert [m.id for m in await stranger.list_models()] == ["cfg-model"]
        with pytest.raises(UpstreamAuthenticationError, match="invalid x-api-key"):
            await stranger.complete(ask(Message("user", "q")), "claude-x")
    finally:
        await stranger.aclose()


async def test_the_fake_rejects_what_anthropic_rejects(
    served: tuple[AnthropicUpstream, RunningServer],
) -> None:
    _, server = served
    provider = _provider(server.url)
    try:
        # An answer for a call that the previous turn did not make.
        orphan = ask(
            Message("user", "q"),
            Message("assistant", "no calls here"),
            Message("tool", "r", tool_call_id="toolu_ghost"),
        )
        with pytest.raises(InvalidRequestError, match="unexpected `tool_use_id`"):
            await provider.complete(orphan, "claude-x")
        bad_json = ask(
            Message("user", "q"), Message("assistant", None, tool_calls=[ToolCall("t", "f", "{")])
        )
        with pytest.raises(InvalidRequestError, match="not valid JSON") as caught:
            await provider.complete(bad_json, "claude-x")
        assert caught.value.provider == "claude"
    finally:
        await provider.aclose()
