"""Inbound Anthropic Messages parsing and outbound message JSON.

Valid requests convert exactly (and back, through a test-side inverse), bad ones name the
field; responses validate as the official SDK's ``Message`` with the same content.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from anthropic.types import Message as SDKMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_gateway.api.anthropic.convert import (
    approx_input_tokens,
    error_payload,
    parse_count_tokens,
    parse_request,
    response_to_wire,
    stop_reason,
    tool_input,
)
from llm_gateway.core.errors import InvalidRequestError, ModelNotFoundError, RateLimitError
from llm_gateway.core.types import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    ToolCall,
    Usage,
)

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def body(**fields: object) -> bytes:
    base: dict[str, object] = {
        "model": "m",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    base.update(fields)
    return msgspec.json.encode({k: v for k, v in base.items() if v is not None})


def test_full_request_converts_every_field() -> None:
    request = parse_request(
        body(
            system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig-1"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "is_error": True,
                            "content": [{"type": "text", "text": "boom"}],
                        },
                        {"type": "text", "text": "thanks"},
                    ],
                },
            ],
            max_tokens=100,
            stop_sequences=["END"],
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            thinking={"type": "enabled", "budget_tokens": 2048},
            metadata={"user_id": "u-1"},
            stream=True,
            service_tier="auto",
        )
    )
    assert request.model == "m" and request.max_tokens == 100 and request.stream is True
    assert (request.temperature, request.top_p, request.stop, request.user) == (
        0.5,
        0.9,
        ["END"],
        "u-1",
    )
    assert request.extra == {
        "service_tier": "auto",
        "top_k": 40,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    assert request.tool_choice == NamedToolChoice("get_weather")
    assert request.parallel_tool_calls is False
    assert request.tools is not None and request.tools[0].parameters == WEATHER["input_schema"]
    assert request.tools[0].description == "Weather for a city"
    system, user, assistant, result1, result2, thanks = request.messages
    assert system == Message(role="system", content="be brief")
    assert user.content == [
        TextPart("what is this?"),
        ImagePart("data:image/png;base64,AA=="),
        ImagePart("https://x/y.jpg"),
    ]
    assert assistant == Message(
        role="assistant",
        content="Let me check.",
        tool_calls=[ToolCall("toolu_1", "get_weather", '{"city":"Oslo"}')],
        reasoning="hmm",
        reasoning_signature="sig-1",
    )
    assert result1 == Message(role="tool", content="sunny", tool_call_id="toolu_1")
    assert result2 == Message(role="tool", content="boom", tool_call_id="toolu_2")
    assert thanks == Message(role="user", content="thanks")


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "get_weather"}, NamedToolChoice("get_weather"), None),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: object, parallel: bool | None) -> None:
    request = parse_request(body(tools=[WEATHER], tool_choice=choice))
    assert request.tool_choice == expected and request.parallel_tool_calls is parallel


def _with_message(content: object, role: str = "user") -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content}]}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"model": None}, "model"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"temperature": 1.5}, "temperature"),
        ({"top_k": "many"}, "top_k"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        (_with_message([{"type": "document", "source": {}}]), "messages.0.content.0.type"),
        (_with_message([{"type": "text"}]), "messages.0.content.0.text"),
        (
            _with_message([{"type": "image", "source": {"type": "file", "file_id": "f"}}]),
            "messages.0.content.0.source.type",
        ),
        (_with_message([{"type": "tool_result"}]), "messages.0.content.0.tool_use_id"),
        (
            _with_message([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
            "messages.0.content.0.type",
        ),
        (
            _with_message([{"type": "tool_result", "tool_use_id": "t"}], role="assistant"),
            "messages.0.content.0.type",
        ),
        (
            _with_message(
                [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}], "assistant"
            ),
            "messages.0.content.0.input",
        ),
        ({"system": [{"type": "image", "source": {"type": "url", "url": "u"}}]}, "system"),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        ({"tool_choice": {"type": "tool", "name": "nope"}, "tools": [WEATHER]}, "tool_choice.name"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"thinking": {"type": "enabled", "budget_tokens": 0}}, "thinking.budget_tokens"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id"),
    ],
)
def test_bad_input_names_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_request(body(**fields))
    error = info.value
    assert error.status == 400 and error.anthropic_type == "invalid_request_error"
    assert error.param is not None and error.param.startswith(param), error.message
    assert param in error.message


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'"text"', b""])
def test_body_that_is_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(InvalidRequestError, match="JSON"):
        parse_request(raw)


def test_count_tokens_needs_no_max_tokens_and_estimates_like_the_mock() -> None:
    request = parse_count_tokens(
        msgspec.json.encode(
            {"model": "m", "system": "sys", "messages": [{"role": "user", "content": "x" * 40}]}
        )
    )
    # mock: ceil(len/4) per message text + 3 per message
    assert approx_input_tokens(request) == (1 + 3) + (10 + 3)


# --- round trip: wire → canonical → wire ------------------------------------------------


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def _image_source(url: str) -> dict[str, str]:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        return {"type": "base64", "media_type": head[5:].split(";")[0], "data": data}
    return {"type": "url", "url": url}


def _parts_to_blocks(content: str | list[Any] | None) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return _blocks(content or "")
    return [
        {"type": "text", "text": p.text}
        if isinstance(p, TextPart)
        else {"type": "image", "source": _image_source(p.url)}
        for p in content
    ]


def to_anthropic(request: ChatRequest) -> dict[str, Any]:
    """A test-side inverse: canonical back to a normalised Messages request."""
    out: dict[str, Any] = {"model": request.model, "max_tokens": request.max_tokens}
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "system":
            out["system"] = [b["text"] for b in _parts_to_blocks(m.content)]
            continue
        if m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.reasoning is not None:
                blocks.append(
                    {
                        "type": "thinking",
                        "thinking": m.reasoning,
                        "signature": m.reasoning_signature,
                    }
                )
            blocks += _parts_to_blocks(m.content)
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)}
                for c in m.tool_calls or ()
            ]
            messages.append({"role": "assistant", "content": blocks})
            continue
        if m.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": _parts_to_blocks(m.content),
            }
            blocks = [block]
        else:
            blocks = _parts_to_blocks(m.content)
        # Canonical tool results and the user text after them are one Anthropic user turn.
        if messages and messages[-1]["role"] == "user":
            messages[-1]["content"] += blocks
        else:
            messages.append({"role": "user", "content": blocks})
    out["messages"] = messages
    for key, value in [
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("stop_sequences", request.stop),
    ]:
        if value is not None:
            out[key] = value
    if request.tools:
        out["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    if request.user is not None:
        out["metadata"] = {"user_id": request.user}
    out.update(request.extra)
    return out


def normalise(wire: dict[str, Any]) -> dict[str, Any]:
    """What conversion keeps: block lists, one thinking/text/tool_use sequence per
    assistant turn (the order Claude produces), tool results as block lists."""
    out = dict(wire)
    system = out.pop("system", None)
    if system:
        out["system"] = [b["text"] for b in _blocks(system)]
    messages = []
    for m in wire["messages"]:
        blocks = _blocks(m["content"])
        if m["role"] == "assistant":
            thinking = [b for b in blocks if b["type"] == "thinking"]
            text = "".join(b["text"] for b in blocks if b["type"] == "text")
            blocks = (
                [
                    {
                        "type": "thinking",
                        "thinking": "".join(b["thinking"] for b in thinking),
                        "signature": thinking[-1]["signature"],
                    }
                ]
                if thinking
                else []
            )
            blocks += [{"type": "text", "text": text}] if text else []
            blocks += [b for b in _blocks(m["content"]) if b["type"] == "tool_use"]
        else:
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": b["tool_use_id"],
                    "content": _blocks(b.get("content") or ""),
                }
                if b["type"] == "tool_result"
                else b
                for b in blocks
            ]
        messages.append({"role": m["role"], "content": blocks})
    out["messages"] = messages
    out.pop("tool_choice", None)  # checked separately: it maps onto two canonical fields
    out.pop("stream", None)
    return out


_text = st.text(min_size=1, max_size=12)
_json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_image = st.one_of(
    st.builds(
        lambda mt, data: {
            "type": "image",
            "source": {"type": "base64", "media_type": mt, "data": data},
        },
        st.sampled_from(["image/png", "image/jpeg", "image/webp"]),
        st.text("ABCabc0123+/", min_size=1, max_size=12),
    ),
    st.builds(
        lambda path: {
            "type": "image",
            "source": {"type": "url", "url": f"https://img.example/{path}"},
        },
        st.text("abc123", min_size=1, max_size=8),
    ),
)
_text_block = st.builds(lambda t: {"type": "text", "text": t}, _text)
_user_blocks = st.lists(_text_block | _image, min_size=1, max_size=3)
_tool_result = st.builds(
    lambda i, content: {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": content},
    st.integers(0, 99),
    st.none() | _text | st.lists(_text_block | _image, max_size=2),
)
_user_turn = st.builds(
    lambda results, rest: {"role": "user", "content": results + rest},
    st.lists(_tool_result, max_size=2),
    st.lists(_text_block | _image, max_size=2),
).filter(lambda m: bool(m["content"])) | st.builds(lambda t: {"role": "user", "content": t}, _text)
_tool_use = st.builds(
    lambda i, name, args: {"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args},
    st.integers(0, 99),
    st.sampled_from(["get_weather", "search", "calc"]),
    st.dictionaries(st.text(max_size=6), _json_value, max_size=3),
)
_thinking = st.builds(
    lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, _text, _text
)
_assistant_turn = st.builds(
    lambda thinking, texts, calls: {"role": "assistant", "content": thinking + texts + calls},
    st.lists(_thinking, max_size=1),
    st.lists(_text_block, max_size=2),
    st.lists(_tool_use, max_size=2),
).filter(lambda m: any(b["type"] != "thinking" for b in m["content"]))


@st.composite
def messages_requests(draw: st.DrawFn) -> dict[str, Any]:
    turns = draw(st.integers(1, 4))
    messages = []
    for i in range(turns):
        messages.append(draw(_user_turn if i % 2 == 0 else _assistant_turn))
    request: dict[str, Any] = {
        "model": draw(st.sampled_from(["claude", "openai/gpt-x", "mock"])),
        "max_tokens": draw(st.integers(1, 10_000)),
        "messages": messages,
    }
    optional = {
        "system": _text | st.lists(_text_block, min_size=1, max_size=2),
        "temperature": st.floats(0, 1),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(0, 500),
        "stop_sequences": st.lists(_text, min_size=1, max_size=3),
        "tools": st.lists(
            st.builds(
                lambda n, d: {"name": n, "description": d, "input_schema": {"type": "object"}},
                st.sampled_from(["get_weather", "search", "calc"]),
                _text,
            ),
            min_size=1,
            max_size=2,
        ),
        "metadata": st.builds(lambda u: {"user_id": u}, _text),
        "thinking": st.just({"type": "enabled", "budget_tokens": 1024}),
        "stream": st.booleans(),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            request[key] = draw(strategy)
    return request


@settings(max_examples=150, deadline=None)
@given(messages_requests())
def test_any_valid_request_converts_and_back(wire: dict[str, Any]) -> None:
    request = parse_request(msgspec.json.encode(wire))
    assert request.stream is wire.get("stream", False)
    assert to_anthropic(request) == normalise(wire)


# --- responses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "tools", "stop_sequence", "expected"),
    [
        ("stop", False, None, "end_turn"),
        ("stop", False, "END", "stop_sequence"),
        ("stop", True, None, "tool_use"),  # Gemini says STOP with function calls
        ("length", False, None, "max_tokens"),
        ("tool_calls", True, None, "tool_use"),
        ("content_filter", False, None, "refusal"),
    ],
)
def test_stop_reasons(finish: Any, tools: bool, stop_sequence: str | None, expected: str) -> None:
    assert stop_reason(finish, tools, stop_sequence) == expected


def test_usage_counts_input_without_cache_reads_and_writes() -> None:
    response = ChatResponse(
        id="x",
        model="m",
        created=0,
        content="hi",
        usage=Usage(
            prompt_tokens=100,
            completion_tokens=7,
            total_tokens=107,
            cached_tokens=60,
            cache_write_tokens=30,
        ),
    )
    wire = response_to_wire(response, id="msg_1", model="claude")
    assert wire["usage"] == {
        "input_tokens": 10,
        "output_tokens": 7,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 30,
    }


def test_tool_input_keeps_what_is_not_an_object() -> None:
    assert tool_input("") == {} and tool_input(' {"a": [1]} ') == {"a": [1]}
    assert tool_input("[1]") == {"_raw_arguments": "[1]"}
    assert tool_input('{"a":') == {"_raw_arguments": '{"a":'}


_responses = st.builds(
    ChatResponse,
    id=st.just("chatcmpl-1"),
    model=st.just("upstream-model"),
    created=st.just(0),
    content=st.none() | st.text(max_size=20),
    reasoning=st.none() | st.text(max_size=10),
    reasoning_signature=st.none() | st.text(min_size=1, max_size=10),
    tool_calls=st.none()
    | st.lists(
        st.builds(
            lambda i, args: ToolCall(f"call_{i}", "f", json.dumps(args)),
            st.integers(0, 9),
            st.dictionaries(st.text(max_size=5), _json_value, max_size=3),
        ),
        max_size=3,
    ),
    finish_reason=st.sampled_from(["stop", "length", "tool_calls", "content_filter", "error"]),
    usage=st.none()
    | st.builds(
        lambda p, c, cached: Usage(p + cached, c, p + cached + c, cached_tokens=cached),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
    ),
)


@settings(max_examples=150, deadline=None)
@given(_responses)
def test_any_response_is_an_sdk_message_with_the_same_content(response: ChatResponse) -> None:
    wire = response_to_wire(response, id="msg_abc", model="claude-x")
    message = SDKMessage.model_validate_json(msgspec.json.encode(wire))
    assert (message.id, message.type, message.role, message.model) == (
        "msg_abc",
        "message",
        "assistant",
        "claude-x",
    )
    kinds = [b.type for b in message.content]
    # Thinking first, then text, then tool calls: the order Claude produces.
    assert kinds == sorted(kinds, key=["thinking", "text", "tool_use"].index)
    text = "".join(b.text for b in message.content if b.type == "text")
    assert text == (response.content or "")
    thinking = [b for b in message.content if b.type == "thinking"]
    if response.reasoning is None and response.reasoning_signature is None:
        assert thinking == []
    else:
        assert thinking[0].thinking == (response.reasoning or "")
        assert thinking[0].signature == (response.reasoning_signature or "")
    calls = [b for b in message.content if b.type == "tool_use"]
    assert [(c.id, c.name, c.input) for c in calls] == [
        (c.id, c.name, json.loads(c.arguments)) for c in response.tool_calls or ()
    ]
    assert message.stop_reason == stop_reason(response.finish_reason, bool(calls), None)
    usage = response.usage or Usage()
    assert message.usage.output_tokens == usage.completion_tokens
    assert message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0) == (
        usage.prompt_tokens
    )


def test_error_payload_is_anthropics_shape() -> None:
    assert error_payload(RateLimitError("slow down"), "req-1") == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
        "request_id": "req-1",
    }
    assert error_payload(ModelNotFoundError("no such model"))["error"]["type"] == "not_found_error"
