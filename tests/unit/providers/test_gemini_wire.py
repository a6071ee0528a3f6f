"""gemini_wire: request/response conversion, chunk parsing, schema sanitising, call ids,
usage and error mapping. Round trips go through the fake's independent reader."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes.gemini_upstream import (
    SIGNATURE,
    _check_schema,
    _validate,
    read_request,
    render_chunks,
    render_error,
    render_response,
)
from tests.fakes.scenarios import ErrorSpec, Scenario, ToolCallSpec, UsageSpec

from llm_gateway.core.accumulate import accumulate
from llm_gateway.core.errors import (
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderOverloadedError,
    RateLimitError,
    UpstreamAuthenticationError,
    UpstreamError,
)
from llm_gateway.core.events import FinishEvent, ReasoningDelta, StreamEvent, ToolCallDelta
from llm_gateway.core.types import (
    ChatRequest,
    ImagePart,
    Message,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
)
from llm_gateway.providers.gemini import api_root
from llm_gateway.providers.gemini_wire import (
    StreamState,
    chunk_to_events,
    end_events,
    error_from_wire,
    finish_reason_from_wire,
    models_from_wire,
    request_to_wire,
    response_from_wire,
    sanitize_schema,
    synthesize_call_id,
    usage_from_wire,
)
from llm_gateway.providers.sse import SSEParser

PATH = "/v1beta/models/gemini-2.5-flash:generateContent"

# --- strategies --------------------------------------------------------------------------

_text = st.text(min_size=1, max_size=12)
_ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ident, inner, max_size=3),
    max_leaves=6,
)
_args = st.dictionaries(_ident, _json_value, max_size=3).map(json.dumps)
_image = st.builds(
    ImagePart,
    st.sampled_from(
        [
            "data:image/png;base64,iVBORw0KGgo=",
            "data:image/jpeg;base64,/9j/4AAQ",
            "https://example.com/cat.png",
            "gs://bucket/dog.webp",
        ]
    ),
    st.sampled_from([None, "low", "high"]),
)
_user_content = st.one_of(
    _text,
    st.lists(st.one_of(st.builds(TextPart, _text), _image), min_size=1, max_size=3),
)
# Tool output: JSON objects go over as objects, anything else wrapped as {"result": text}.
_tool_output = st.one_of(
    _text.filter(lambda s: not s.lstrip().startswith("{")),
    st.dictionaries(_ident.filter(lambda s: s != "result"), _json_value, max_size=3).map(
        json.dumps
    ),
)


@st.composite
def _conversation(draw: st.DrawFn) -> list[Message]:
    """system*, then rounds of user -> assistant (text, or calls -> tool results)."""
    messages = [Message("system", draw(_text)) for _ in range(draw(st.integers(0, 2)))]
    for round_ in range(draw(st.integers(1, 3))):
        messages.append(Message("user", draw(_user_content)))
        names = draw(st.lists(_ident, max_size=3))
        if not names:
            messages.append(Message("assistant", draw(_text)))
            continue
        calls = [ToolCall(f"id_{round_}_{i}", name, draw(_args)) for i, name in enumerate(names)]
        messages.append(
            Message(
                "assistant",
                draw(st.none() | _text),
                tool_calls=calls,
                reasoning_signature=draw(st.none() | st.just(SIGNATURE)),
            )
        )
        for call in draw(st.permutations(calls)):
            messages.append(Message("tool", draw(_tool_output), tool_call_id=call.id))
    return messages


def _norm(message: Message) -> Any:
    """What survives the Gemini wire: ids re-paired, JSON re-spaced, one-text lists flat."""
    content: Any = message.content
    if isinstance(content, list) and len(content) == 1 and isinstance(content[0], TextPart):
        content = content[0].text
    if message.role == "tool" and message.text().lstrip().startswith("{"):
        content = json.loads(message.text())
    calls = [(c.name, json.loads(c.arguments)) for c in message.tool_calls or ()]
    return (message.role, content, calls, message.reasoning_signature)


def _pairs(messages: list[Message]) -> list[tuple[str, str]]:
    """(call name, tool output) for each tool result, found through the ids."""
    names = {c.id: c.name for m in messages for c in m.tool_calls or ()}
    return [(names[m.tool_call_id or ""], m.text()) for m in messages if m.role == "tool"]


# --- request round trip ----------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    messages=_conversation(),
    temperature=st.none() | st.floats(0, 2),
    max_tokens=st.none() | st.integers(1, 4096),
    stop=st.none() | st.lists(_text, min_size=1, max_size=3),
    choice=st.sampled_from([None, "auto", "none", "required", NamedToolChoice("get_x")]),
)
def test_request_round_trips_through_the_wire(
    messages: list[Message],
    temperature: float | None,
    max_tokens: int | None,
    stop: list[str] | None,
    choice: Any,
) -> None:
    tools = [
        Tool("get_x", "x", {"type": "object", "properties": {"a": {"type": "string"}}}),
        Tool("noop"),
    ]
    request = ChatRequest(
        model="m",
        messages=messages,
        temperature=temperature,
        max_tokens=max_tokens,
        stop=stop,
        tools=tools,
        tool_choice=choice,
    )
    body = json.loads(msgspec.json.encode(request_to_wire(request)))
    _validate(body)  # what the real API would reject, the fake rejects
    back = read_request(PATH, body)
    assert [_norm(m) for m in back.messages] == [_norm(m) for m in messages]
    # Each tool result still answers the call it answered before, whatever the ids.
    assert sorted(_pairs(back.messages)) == sorted(_pairs(messages))
    assert back.tools == tools
    assert back.tool_choice == choice
    assert (back.temperature, back.max_tokens, back.stop) == (temperature, max_tokens, stop)
    assert back.model == "gemini-2.5-flash" and not back.stream


def test_request_body_shape() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message("system", "Be brief."),
            Message("user", "Hi"),
            Message("user", [TextPart("and this"), ImagePart("https://x.test/a.png?s=1")]),
        ],
        top_p=0.5,
        seed=7,
        response_format=ResponseFormat(
            "json_schema",
            {"name": "r", "schema": {"type": "object", "additionalProperties": False}},
        ),
        extra={"top_k": 40, "reasoning_effort": "low", "presence_penalty": 0.1},
    )
    body = request_to_wire(request)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    # Consecutive user messages become one turn.
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Hi"},
                {"text": "and this"},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a.png?s=1"}},
            ],
        }
    ]
    assert body["generationConfig"] == {
        "candidateCount": 1,
        "topP": 0.5,
        "seed": 7,
        "topK": 40,
        "presencePenalty": 0.1,
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
        "responseMimeType": "application/json",
        "responseSchema": {"type": "object"},
    }
    assert "tools" not in body and "toolConfig" not in body


def test_images_inline_and_percent_encoded_data_urls() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(
                "user",
                [
                    ImagePart("data:image/png;base64,AAAA", detail="high"),
                    ImagePart("data:text/plain,hi%20there"),
                ],
            )
        ],
    )
    parts = request_to_wire(request)["contents"][0]["parts"]
    assert parts == [
        {
            "inlineData": {"mimeType": "image/png", "data": "AAAA"},
            "mediaResolution": {"level": "MEDIA_RESOLUTION_HIGH"},
        },
        {"inlineData": {"mimeType": "text/plain", "data": "aGkgdGhlcmU="}},
    ]


def test_tool_results_resolve_names_wrap_text_and_merge_into_one_turn() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message("user", "go"),
            Message(
                "assistant",
                None,
                tool_calls=[ToolCall("a", "f", '{"x": 1}'), ToolCall("b", "g", "not json")],
                reasoning_signature="sig",
            ),
            Message("tool", "plain text", tool_call_id="a"),
            Message("tool", '{"ok": true}', tool_call_id="b"),
            Message("user", "thanks"),
        ],
    )
    contents = request_to_wire(request)["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": "sig"},
            {"functionCall": {"name": "g", "args": {"arguments": "not json"}}},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "f", "response": {"result": "plain text"}}},
            {"functionResponse": {"name": "g", "response": {"ok": True}}},
            {"text": "thanks"},
        ],
    }


def test_tool_result_for_an_unknown_call_is_the_callers_error() -> None:
    request = ChatRequest(
        model="m", messages=[Message("user", "x"), Message("tool", "r", tool_call_id="nope")]
    )
    with pytest.raises(InvalidRequestError) as caught:
        request_to_wire(request)
    assert caught.value.param == "messages[1].tool_call_id"


def test_named_tool_choice_and_signature_on_text_turn() -> None:
    request = ChatRequest(
        model="m",
        messages=[Message("user", "x"), Message("assistant", "ok", reasoning_signature="s")],
        tools=[Tool("f", parameters={"type": "object", "properties": {}})],
        tool_choice=NamedToolChoice("f"),
    )
    body = request_to_wire(request)
    assert body["contents"][1]["parts"] == [{"text": "ok", "thoughtSignature": "s"}]
    # An object without properties is rejected by Gemini: no parameters at all instead.
    assert body["tools"] == [{"functionDeclarations": [{"name": "f"}]}]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }


# --- schema sanitising -----------------------------------------------------------------------


def test_sanitize_schema_strips_and_converts() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "format": "uri"}},
        "properties": {
            "city": {"type": "string", "minLength": 1, "format": "date-time"},
            "unit": {"$ref": "#/$defs/Unit"},
            "count": {"type": ["integer", "null"], "exclusiveMinimum": 0, "multipleOf": 2},
            "kind": {"const": "fixed"},
            "mode": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "nested": {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}},
                    {"required": ["a"]},
                ],
                "patternProperties": {"^x": {}},
            },
            "level": {"type": "integer", "enum": [1, 2]},
        },
        "required": ["city", "ghost", "city"],
    }
    assert sanitize_schema(schema) == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1, "format": "date-time"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "count": {"type": "integer", "nullable": True, "minimum": 0},
            "kind": {"enum": ["fixed"]},
            "mode": {"anyOf": [{"type": "string"}, {"type": "number"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "nested": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "required": ["a"],
            },
            "level": {"type": "integer"},
        },
        "required": ["city"],
    }


def test_sanitize_schema_survives_recursive_refs() -> None:
    schema = {
        "type": "object",
        "properties": {"node": {"$ref": "#/definitions/Node"}},
        "definitions": {
            "Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}
        },
    }
    clean = sanitize_schema(schema)
    _check_schema(clean, "parameters")
    assert clean["properties"]["node"]["properties"]["next"]["type"] == "object"


_schema_keys = st.sampled_from(
    ["type", "additionalProperties", "$schema", "format", "const", "enum", "minimum",
     "exclusiveMaximum", "examples", "uniqueItems", "title", "default", "$id", "not"]
)  # fmt: skip
_schemas = st.recursive(
    st.dictionaries(
        _schema_keys,
        st.one_of(
            st.sampled_from(["string", "object", "integer", "null", "uri", "int64"]),
            st.lists(st.sampled_from(["string", "null", "number"]), max_size=3),
            st.booleans(),
            st.integers(-3, 3),
        ),
        max_size=4,
    ),
    lambda inner: st.fixed_dictionaries(
        {"type": st.just("object"), "properties": st.dictionaries(_ident, inner, max_size=3)},
        optional={
            "required": st.lists(_ident, max_size=3),
            "anyOf": st.lists(inner, max_size=2),
            "oneOf": st.lists(inner, max_size=2),
            "items": inner,
            "additionalProperties": inner | st.booleans(),
        },
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(_schemas)
def test_sanitized_schemas_use_only_keywords_gemini_knows(schema: dict[str, Any]) -> None:
    clean = sanitize_schema(schema)
    if clean.get("type") == "object" and "properties" in clean and not clean["properties"]:
        clean.pop("properties")  # _parameters drops these; nested ones are checked below
    try:
        _check_schema(clean, "parameters")
    except Exception as exc:
        assert "non-empty for OBJECT" in str(exc), exc


# --- responses and streams -----------------------------------------------------------------


_scenarios = st.builds(
    Scenario,
    text=st.lists(_text, max_size=4).map(tuple),
    reasoning=st.lists(_text, max_size=3).map(tuple),
    tool_calls=st.lists(
        st.builds(ToolCallSpec, st.uuids().map(lambda u: f"fc_{u.hex[:8]}"), _ident, _args),
        max_size=3,
    ).map(tuple),
    usage=st.none()
    | st.builds(
        lambda p, c, cached, reasoning: UsageSpec(p, c + reasoning, min(cached, p), reasoning),
        st.integers(0, 500),
        st.integers(0, 500),
        st.integers(0, 500),
        st.integers(0, 100),
    ),
    finish=st.sampled_from([None, "stop", "length", "content_filter"]),
)


def _stream(chunks: list[dict[str, Any]], cuts: list[int]) -> list[StreamEvent]:
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    parser, state = SSEParser(), StreamState()
    events: list[StreamEvent] = []
    for piece in pieces:
        for event in parser.feed(piece):
            events.extend(chunk_to_events(json.loads(event.data), state))
    for event in parser.close():
        events.extend(chunk_to_events(json.loads(event.data), state))
    return events + end_events(state)


@settings(max_examples=150, deadline=None)
@given(_scenarios, st.lists(st.integers(0, 10_000), max_size=12), st.booleans())
def test_streamed_and_whole_responses_agree(
    scenario: Scenario, cuts: list[int], call_ids: bool
) -> None:
    whole = response_from_wire(render_response(scenario, "m", "r1", call_ids), model="m")
    events = _stream(render_chunks(scenario, "m", "r1", call_ids), cuts)
    streamed = accumulate(events, id="r1", model="m")
    assert [e for e in events if isinstance(e, FinishEvent)] == [FinishEvent(whole.finish_reason)]
    whole.created = streamed.created = 0
    assert streamed == whole
    assert whole.content == (
        scenario.full_text if scenario.full_text or not scenario.tool_calls else None
    )
    assert whole.reasoning == ("".join(scenario.reasoning) or None)
    assert whole.reasoning_signature == (SIGNATURE if scenario.reasoning else None)
    calls = whole.tool_calls or []
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        (s.name, json.loads(s.arguments)) for s in scenario.tool_calls
    ]
    assert len({c.id for c in calls}) == len(calls)
    if call_ids:
        assert [c.id for c in calls] == [s.id for s in scenario.tool_calls]
    if scenario.usage is not None:
        u = whole.usage
        assert u is not None
        assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (
            scenario.usage.prompt_tokens,
            scenario.usage.completion_tokens,
            scenario.usage.total_tokens,
        )
        assert (u.cached_tokens, u.reasoning_tokens) == (
            scenario.usage.cached_tokens,
            scenario.usage.reasoning_tokens,
        )


def test_synthesised_ids_are_deterministic_and_distinct() -> None:
    a = synthesize_call_id("resp", 0, "f", "{}")
    assert a == synthesize_call_id("resp", 0, "f", "{}")
    assert a.startswith("call_0_")
    others = {
        synthesize_call_id("resp", 1, "f", "{}"),
        synthesize_call_id("resp2", 0, "f", "{}"),
        synthesize_call_id("resp", 0, "g", "{}"),
        synthesize_call_id("resp", 0, "f", '{"a": 1}'),
    }
    assert a not in others and len(others) == 4


def test_same_call_twice_in_one_response_gets_two_ids() -> None:
    call = {"functionCall": {"name": "f", "args": {"x": 1}}}
    data = {
        "candidates": [
            {"content": {"role": "model", "parts": [call, call]}, "finishReason": "STOP"}
        ],
        "responseId": "abc",
    }
    response = response_from_wire(data)
    assert response.finish_reason == "tool_calls"
    ids = [c.id for c in response.tool_calls or []]
    assert len(set(ids)) == 2 and ids[0] == synthesize_call_id("abc", 0, "f", '{"x": 1}')


def test_thought_parts_and_signature_events() -> None:
    chunk = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "hmm", "thought": True},
                        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "S"},
                    ],
                }
            }
        ],
        "responseId": "r",
    }
    events = chunk_to_events(chunk, StreamState())
    assert events == [
        ReasoningDelta("hmm"),
        ToolCallDelta(0, synthesize_call_id("r", 0, "f", "{}"), "f", "{}"),
        ReasoningDelta("", signature="S"),
    ]


def test_blocked_prompt_is_content_filter_not_a_crash() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    response = response_from_wire(blocked, model="m")
    assert (response.content, response.finish_reason, response.tool_calls) == (
        "",
        "content_filter",
        None,
    )
    assert response.usage is not None and response.usage.prompt_tokens == 9
    state = StreamState()
    assert chunk_to_events(blocked, state) == [FinishEvent("content_filter")]


def test_response_without_candidates_or_feedback_is_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        response_from_wire({"usageMetadata": {}}, provider="g")
    with pytest.raises(UpstreamError):
        response_from_wire([1, 2])


@pytest.mark.parametrize(
    ("wire", "calls", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("IMAGE_SAFETY", False, "content_filter"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("OTHER", False, "stop"),
        (None, False, None),
    ],
)
def test_finish_reasons(wire: str | None, calls: bool, expected: str | None) -> None:
    assert finish_reason_from_wire(wire, calls) == expected


def test_usage_counts_thoughts_inside_completion() -> None:
    usage = usage_from_wire(
        {
            "promptTokenCount": 100,
            "candidatesTokenCount": 30,
            "thoughtsTokenCount": 20,
            "toolUsePromptTokenCount": 5,
            "cachedContentTokenCount": 40,
            "totalTokenCount": 155,
        }
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (105, 50, 155)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (40, 20)
    assert usage_from_wire({"promptTokenCount": 3}).total_tokens == 3


def test_models_listing_drops_prefix_and_non_generative_models() -> None:
    data = {
        "models": [
            {"name": "models/gemini-2.5-pro", "supportedGenerationMethods": ["generateContent"]},
            {"name": "models/embedding-001", "supportedGenerationMethods": ["embedContent"]},
            {"name": "models/bare"},
            {"oops": 1},
        ]
    }
    assert [m.id for m in models_from_wire(data, "g")] == ["gemini-2.5-pro", "bare"]
    with pytest.raises(UpstreamError):
        models_from_wire({"models": None}, "g")


def test_api_root() -> None:
    assert api_root(None) == "https://generativelanguage.googleapis.com/v1beta"
    assert api_root("http://127.0.0.1:9/") == "http://127.0.0.1:9/v1beta"
    assert api_root("https://proxy.test/google/v1alpha") == "https://proxy.test/google/v1alpha"


# --- errors ------------------------------------------------------------------------------------


def _error(spec: ErrorSpec, headers: dict[str, str] | None = None) -> Exception:
    status, payload, _ = render_error(spec)
    return error_from_wire(status, headers or {}, json.dumps(payload).encode(), "g")


def test_bad_key_400_is_upstream_authentication_error() -> None:
    error = _error(ErrorSpec("auth", "API key not valid. Please pass a valid API key."))
    assert isinstance(error, UpstreamAuthenticationError)
    assert error.status == 401 and error.upstream_status == 400
    assert error.message == "API key not valid. Please pass a valid API key. (INVALID_ARGUMENT)"


def test_rate_limit_reads_retry_info_and_prefers_retry_after_header() -> None:
    error = _error(ErrorSpec("rate_limit", "Quota exceeded", retry_after=17))
    assert isinstance(error, RateLimitError) and error.retry_after == 17.0
    error = _error(ErrorSpec("rate_limit", retry_after=1.5))
    assert error.retry_after == 1.5  # type: ignore[attr-defined]
    error = _error(ErrorSpec("rate_limit", retry_after=17), {"retry-after": "3"})
    assert error.retry_after == 3.0  # type: ignore[attr-defined]
    assert _error(ErrorSpec("rate_limit")).retry_after is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("server", UpstreamError),
        ("overloaded", ProviderOverloadedError),
        ("context_length", ContextWindowExceededError),
        ("not_found", ModelNotFoundError),
        ("bad_request", InvalidRequestError),
    ],
)
def test_error_kinds(kind: Any, cls: type[Exception]) -> None:
    error = _error(ErrorSpec(kind, "scripted"))
    assert type(error) is cls


def test_other_error_shapes() -> None:
    denied = error_from_wire(
        403,
        {},
        b'{"error": {"code": 403, "message": "no", "status": "PERMISSION_DENIED"}}',
        "g",
    )
    assert isinstance(denied, PermissionDeniedError) and denied.message == "no (PERMISSION_DENIED)"
    listed = error_from_wire(
        503, {}, b'[{"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}]', None
    )
    assert isinstance(listed, ProviderOverloadedError) and "busy" in listed.message
    html = error_from_wire(502, {}, b"<html>Bad Gateway</html>", None)
    assert isinstance(html, UpstreamError) and "Bad Gateway" in html.message
    empty = error_from_wire(500, {}, b"", None)
    assert empty.message == "upstream returned HTTP 500"


def test_in_stream_error_object_raises_mapped_error() -> None:
    chunk = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(ProviderOverloadedError):
        chunk_to_events(chunk, StreamState())
    with pytest.raises(UpstreamError):
        chunk_to_events(["not", "an", "object"], StreamState())
