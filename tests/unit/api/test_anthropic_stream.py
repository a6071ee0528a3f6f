"""The Anthropic stream encoder, checked against the official SDK's own accumulator.

For any sequence of core events (text, reasoning with a signature, tool-call fragments
interleaved across calls or whole calls at once, usage before or after the finish), the
encoded SSE is well formed (one block open at a time, indices in order, each event named
after its type) and ``anthropic.lib.streaming`` accumulates it into a ``Message`` equal to
what ``core.accumulate`` makes of the same events: tool_use input arrives complete.
"""

from __future__ import annotations

import json
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message as SDKMessage
from anthropic.types.shared.error_response import ErrorResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_gateway.api.anthropic.convert import stop_reason, tool_input, usage_to_wire
from llm_gateway.api.anthropic.stream import AnthropicStreamEncoder
from llm_gateway.core.accumulate import accumulate
from llm_gateway.core.errors import ProviderOverloadedError
from llm_gateway.core.events import (
    ErrorEvent,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from llm_gateway.core.types import ChatResponse, Usage


def sse_events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Parses SSE frames; every frame is ``event: <type>`` then ``data: {"type": <type>}``."""
    assert data.endswith(b"\n\n")
    out = []
    for frame in data.decode().split("\n\n")[:-1]:
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        payload = json.loads(data_line[len("data: ") :])
        assert payload["type"] == name_line[len("event: ") :]
        out.append((payload["type"], payload))
    return out


def encode(events: list[StreamEvent], first: int = 1) -> bytes:
    enc = AnthropicStreamEncoder(id="msg_test", model="claude-x")
    data = enc.start(events[:first])
    for event in events:
        frame = enc.encode(event)
        if frame:
            data += frame
    return data + enc.end()


def check_block_discipline(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Anthropic's order: message_start, blocks opened and closed one at a time with
    increasing indices, message_delta, message_stop."""
    kinds = [k for k, _ in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    open_index: int | None = None
    next_index = 0
    for kind, payload in events[1:-2]:
        if kind == "content_block_start":
            assert open_index is None and payload["index"] == next_index
            open_index = next_index
            next_index += 1
        elif kind == "content_block_delta":
            assert payload["index"] == open_index
        else:
            assert kind == "content_block_stop" and payload["index"] == open_index
            open_index = None
    assert open_index is None


def sdk_accumulate(data: bytes) -> SDKMessage:
    events = sse_events(data)
    check_block_discipline(events)
    snapshot = None
    bufs: dict[int, bytes] = {}
    for _, payload in events:
        snapshot = accumulate_event(event=payload, current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot is not None
    return SDKMessage.model_validate(snapshot.model_dump())


def assert_same(message: SDKMessage, expected: ChatResponse) -> None:
    text = "".join(b.text for b in message.content if b.type == "text")
    assert text == (expected.content or "")
    thinking = [b for b in message.content if b.type == "thinking"]
    assert "".join(b.thinking for b in thinking) == (expected.reasoning or "")
    signatures = [b.signature for b in thinking if b.signature]
    assert (signatures[-1] if signatures else None) == expected.reasoning_signature
    calls = sorted((b.id, b.name, b.input) for b in message.content if b.type == "tool_use")
    assert calls == sorted(
        (c.id, c.name, tool_input(c.arguments)) for c in expected.tool_calls or ()
    )
    assert message.stop_reason == stop_reason(expected.finish_reason, bool(calls), None)
    if expected.usage is not None:
        wire = usage_to_wire(expected.usage)
        assert message.usage.input_tokens == wire["input_tokens"]
        assert message.usage.output_tokens == wire["output_tokens"]
        assert message.usage.cache_read_input_tokens == wire["cache_read_input_tokens"]
    else:
        assert message.usage.output_tokens == 0


def test_text_thinking_and_sequential_tools_stream_live() -> None:
    enc = AnthropicStreamEncoder(id="msg_1", model="m")
    enc.start()
    # Each fragment of the open tool call is sent at once: nothing is held back.
    assert enc.encode(ReasoningDelta("hmm")) is not None
    assert enc.encode(ReasoningDelta("", signature="sig")) is not None
    assert enc.encode(TextDelta("Hi")) is not None
    assert b'"index":2' in (enc.encode(ToolCallDelta(0, id="call_a", name="f")) or b"")
    assert b'{\\"city\\"' in (enc.encode(ToolCallDelta(0, arguments='{"city"')) or b"")
    assert enc.encode(ToolCallDelta(0, arguments=': "Oslo"}')) is not None
    started = enc.encode(ToolCallDelta(1, id="call_b", name="g", arguments="{}"))
    assert started is not None and b'"content_block_stop","index":2' in started
    assert enc.encode(UsageEvent(Usage(5, 3, 8))) is None
    assert enc.encode(FinishEvent("tool_calls")) is None


def test_interleaved_fragments_wait_until_the_open_call_is_complete() -> None:
    enc = AnthropicStreamEncoder(id="msg_1", model="m")
    enc.start()
    enc.encode(ToolCallDelta(0, id="a", name="f", arguments='{"x":'))
    assert enc.encode(ToolCallDelta(1, id="b", name="g", arguments='{"y":')) is None
    assert enc.encode(TextDelta("later")) is None
    released = enc.encode(ToolCallDelta(0, arguments="1}")) or b""
    kinds = [k for k, _ in sse_events(released)]
    # a's last fragment, a closed, b opened with what it had, then b waits again (incomplete),
    # so the text stays held behind it.
    assert kinds == [
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
    ]
    tail = enc.encode(ToolCallDelta(1, arguments="2}")) or b""
    assert [k for k, _ in sse_events(tail)] == [
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
    ]


def test_usage_in_the_first_batch_reaches_message_start() -> None:
    enc = AnthropicStreamEncoder(id="msg_1", model="m")
    first: list[StreamEvent] = [UsageEvent(Usage(prompt_tokens=40, cached_tokens=30))]
    ((_, payload),) = sse_events(enc.start(first))
    assert payload["message"]["usage"]["input_tokens"] == 10
    assert payload["message"]["usage"]["cache_read_input_tokens"] == 30


def test_error_frame_is_anthropics_error_event() -> None:
    enc = AnthropicStreamEncoder(id="msg_1", model="m")
    enc.start()
    frame = enc.encode(ErrorEvent(ProviderOverloadedError("busy")))
    assert frame is not None and enc.failed
    ((kind, payload),) = sse_events(frame)
    error = ErrorResponse.model_validate(payload)
    assert kind == "error" and error.error.type == "overloaded_error"
    assert error.error.message == "busy"


def test_empty_stream_is_an_empty_message() -> None:
    message = sdk_accumulate(encode([FinishEvent("stop")]))
    assert message.content == [] and message.stop_reason == "end_turn"


# --- any event sequence -----------------------------------------------------------------

_json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def tool_stream(draw: st.DrawFn, index: int, ordinal: int) -> list[StreamEvent]:
    args = draw(st.dictionaries(st.text(max_size=6), _json_value, max_size=4))
    text = json.dumps(
        args, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))
    )
    if draw(st.booleans()) and not args:
        text = ""  # a call without arguments, as some upstreams send it
    call_id, name = f"call_{ordinal}", draw(st.sampled_from(["f", "get_weather", "x_y"]))
    style = draw(st.sampled_from(["fragments", "whole", "fragments_after_header"]))
    if style == "whole" or not text:  # Gemini: the whole call in one delta
        return [ToolCallDelta(index, id=call_id, name=name, arguments=text)]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=6)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True) if a < b]
    if style == "fragments":  # OpenAI: id and name with the first fragment
        return [
            ToolCallDelta(index, id=call_id, name=name, arguments=pieces[0]),
            *(ToolCallDelta(index, arguments=p) for p in pieces[1:]),
        ]
    # Anthropic: a header delta, then input_json fragments
    return [
        ToolCallDelta(index, id=call_id, name=name),
        *(ToolCallDelta(index, arguments=p) for p in pieces),
    ]


@st.composite
def event_sequences(draw: st.DrawFn) -> list[StreamEvent]:
    streams: list[list[StreamEvent]] = []
    texts = draw(st.lists(st.text(max_size=6), max_size=5))
    if texts:
        streams.append([TextDelta(t) for t in texts])
    reasoning: list[StreamEvent] = [
        ReasoningDelta(t) for t in draw(st.lists(st.text(max_size=6), max_size=4))
    ]
    if draw(st.booleans()):
        reasoning.append(ReasoningDelta("", signature=draw(st.text(min_size=1, max_size=12))))
    if reasoning:
        streams.append(reasoning)
    base = draw(st.sampled_from([0, 1, 5]))  # an Anthropic upstream counts its text block too
    for ordinal in range(draw(st.integers(0, 3))):
        streams.append(draw(tool_stream(base + ordinal, ordinal)))
    interleave = draw(st.booleans())
    events: list[StreamEvent] = []
    while any(streams):
        live = [s for s in streams if s]
        chosen = draw(st.sampled_from(live)) if interleave else live[0]
        events.append(chosen.pop(0))
    usage = UsageEvent(
        Usage(
            prompt_tokens=draw(st.integers(0, 1000)),
            completion_tokens=draw(st.integers(0, 1000)),
        )
    )
    finish = draw(st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))
    tail: list[StreamEvent] = [FinishEvent(finish)] if finish else []
    placement = draw(st.sampled_from(["before", "after", "start", "none"]))
    if placement == "before":
        tail.insert(0, usage)
    elif placement == "after":
        tail.append(usage)
    elif placement == "start":
        events.insert(0, usage)
    return events + tail


@settings(max_examples=400, deadline=None)
@given(event_sequences(), st.integers(0, 3))
def test_any_event_sequence_accumulates_in_the_sdk_like_in_core(
    events: list[StreamEvent], first: int
) -> None:
    message = sdk_accumulate(encode(events, first=first))
    assert_same(message, accumulate(events))
