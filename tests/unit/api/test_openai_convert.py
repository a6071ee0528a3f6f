"""Inbound OpenAI request parsing: valid shapes convert exactly, bad ones name the field."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion

from llm_gateway.api.openai.convert import parse_request, response_to_wire
from llm_gateway.core.errors import InvalidRequestError
from llm_gateway.core.types import (
    ChatResponse,
    ImagePart,
    NamedToolChoice,
    TextPart,
    ToolCall,
    Usage,
)


def body(**fields: object) -> bytes:
    base: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    base.update(fields)
    return msgspec.json.encode(base)


def test_full_request_converts_every_field() -> None:
    request, include_usage = parse_request(
        body(
            messages=[
                {"role": "developer", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            ],
            temperature=0.5,
            top_p=0.9,
            max_tokens=10,
            max_completion_tokens=20,
            stop="END",
            seed=7,
            user="u1",
            tools=[
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ],
            tool_choice={"type": "function", "function": {"name": "f"}},
            parallel_tool_calls=False,
            response_format={"type": "json_object"},
            stream=True,
            stream_options={"include_usage": True},
            presence_penalty=0.1,
            logprobs=True,
        )
    )
    assert include_usage is True
    assert request.stream is True
    system, user, assistant, tool = request.messages
    assert system.role == "system" and system.content == "be brief"
    assert user.content == [TextPart("what is this?"), ImagePart("data:image/png;base64,AA", "low")]
    assert user.has_images() and user.text() == "what is this?"
    assert assistant.tool_calls == [ToolCall("call_1", "f", '{"a":1}')]
    assert tool.tool_call_id == "call_1" and tool.content == "42"
    assert request.max_tokens == 20  # max_completion_tokens wins over the legacy field
    assert request.stop == ["END"]
    assert request.tool_choice == NamedToolChoice("f")
    assert request.tools is not None and request.tools[0].parameters == {"type": "object"}
    assert request.response_format is not None and request.response_format.type == "json_object"
    assert request.extra == {"presence_penalty": 0.1, "logprobs": True}
    assert (request.temperature, request.top_p, request.seed, request.user) == (0.5, 0.9, 7, "u1")


@pytest.mark.parametrize(
    ("raw", "param", "fragment"),
    [
        (b"{", None, "could not parse the JSON"),
        (b"[1]", None, "must be a JSON object"),
        (b'{"model":"m"}', "messages", "Missing required parameter"),
        (body(messages=[]), "messages", "length >= 1"),
        (body(messages="hi"), "messages", "Expected `array`"),
        (body(messages=[{"role": 5}]), "messages[0].role", "Expected `str`"),
        (body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role", "Invalid"),
        (body(messages=[{"role": "user"}]), "messages[0].content", "must have 'content'"),
        (
            body(messages=[{"role": "tool", "content": "x"}]),
            "messages[0].tool_call_id",
            "tool_call_id",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
            "messages[0].content[0].type",
            "input_audio",
        ),
        (body(temperature=3), "temperature", "<= 2.0"),
        (body(temperature="hot"), "temperature", "Expected"),
        (body(n=2), "n", "<= 1"),
        (body(model=""), "model", "length >= 1"),
        (body(tools=[{"type": "function", "function": {}}]), "tools[0].function.name", "Missing"),
        (body(tool_choice={"type": "function", "function": {"name": "g"}}), "tool_choice", "'g'"),
        (body(stream="yes"), "stream", "Expected `bool`"),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": "x",
                        "tool_calls": [{"id": "1", "function": {"name": "f"}}],
                    }
                ]
            ),
            "messages[0].tool_calls",
            "Only assistant",
        ),
    ],
)
def test_bad_input_names_the_field(raw: bytes, param: str | None, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_request(raw)
    assert info.value.param == param
    assert fragment in info.value.message
    assert info.value.status == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["model", "messages", "temperature", "tools", "stream", "stop", "x"]),
        json_values,
    )
)
def test_arbitrary_json_gives_a_request_or_a_400(raw: dict[str, object]) -> None:
    try:
        request, _ = parse_request(msgspec.json.encode(raw))
    except InvalidRequestError as error:
        assert error.status == 400 and error.message
    else:
        assert request.model and request.messages


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(min_size=1), min_size=1, max_size=5),
    temperature=st.none() | st.floats(0, 2),
    stop=st.none() | st.lists(st.text(min_size=1), min_size=1, max_size=4),
)
def test_messages_and_params_round_trip(
    texts: list[str], temperature: float | None, stop: list[str] | None
) -> None:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]
    fields: dict[str, object] = {"messages": messages}
    if temperature is not None:
        fields["temperature"] = temperature
    if stop is not None:
        fields["stop"] = stop
    request, _ = parse_request(body(**fields))
    assert [m.content for m in request.messages] == texts
    assert request.temperature == temperature
    assert request.stop == stop


def test_response_matches_openai_sdk_types() -> None:
    response = ChatResponse(
        id="chatcmpl-1",
        model="upstream",
        created=1700000000,
        content=None,
        tool_calls=[ToolCall("call_1", "f", '{"x":1}')],
        finish_reason="tool_calls",
        usage=Usage(
            prompt_tokens=10,
            completion_tokens=5,
            total_tokens=15,
            cached_tokens=4,
            reasoning_tokens=2,
        ),
    )
    wire = response_to_wire(response, "requested")
    parsed = ChatCompletion.model_validate(wire)
    assert parsed.model == "requested"
    assert parsed.choices[0].finish_reason == "tool_calls"
    call = parsed.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "f" and call.function.arguments == '{"x":1}'  # type: ignore[union-attr]
    assert parsed.usage is not None and parsed.usage.prompt_tokens_details is not None
    assert parsed.usage.prompt_tokens_details.cached_tokens == 4
    assert parsed.usage.completion_tokens_details is not None
    assert parsed.usage.completion_tokens_details.reasoning_tokens == 2


def test_echoed_reasoning_content_reaches_the_canonical_message() -> None:
    request, _ = parse_request(
        body(
            messages=[
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "reasoning_content": "because"},
                {"role": "user", "content": "and?"},
            ]
        )
    )
    assert request.messages[1].reasoning == "because"
    assert request.messages[0].reasoning is None
