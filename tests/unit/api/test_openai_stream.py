"""The OpenAI stream encoder: frames parse as the official SDK's chunk type, in OpenAI's order."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

from llm_gateway.api.openai.stream import DONE, OpenAIStreamEncoder
from llm_gateway.core.errors import RateLimitError
from llm_gateway.core.events import (
    ErrorEvent,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from llm_gateway.core.types import Usage


def frames(data: bytes) -> list[str]:
    assert data.endswith(b"\n\n")
    out = []
    for block in data.decode().split("\n\n")[:-1]:
        assert block.startswith("data: ")
        out.append(block[len("data: ") :])
    return out


def run(events: list[StreamEvent], include_usage: bool = True) -> list[str]:
    enc = OpenAIStreamEncoder(id="chatcmpl-x", created=1, model="m", include_usage=include_usage)
    data = enc.start()
    for e in events:
        frame = enc.encode(e)
        if frame:
            data += frame
    return frames(data + enc.end())


def test_text_stream_in_openai_order() -> None:
    out = run(
        [
            TextDelta("Hel"),
            ReasoningDelta("hmm"),
            TextDelta('lo "world"\n'),
            UsageEvent(Usage(3, 2, 5)),  # arrives before finish, as Anthropic sends it
            FinishEvent("stop"),
        ]
    )
    assert out[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(f) for f in out[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == 'Hello "world"\n'
    assert json.loads(out[2])["choices"][0]["delta"] == {"reasoning_content": "hmm"}
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


def test_usage_chunk_only_when_asked() -> None:
    out = run(
        [TextDelta("a"), UsageEvent(Usage(1, 1, 2)), FinishEvent("length")], include_usage=False
    )
    assert all("usage" not in json.loads(f) for f in out[:-1])
    assert json.loads(out[-2])["choices"][0]["finish_reason"] == "length"


def test_tool_call_deltas_carry_id_then_fragments() -> None:
    out = run(
        [
            ToolCallDelta(0, "call_a", "get_weather", ""),
            ToolCallDelta(0, arguments='{"city":'),
            ToolCallDelta(1, "call_b", "get_time", '{"tz"'),
            ToolCallDelta(0, arguments='"Paris"}'),
            ToolCallDelta(1, arguments=':"UTC"}'),
            FinishEvent("tool_calls"),
        ]
    )
    chunks = [ChatCompletionChunk.model_validate_json(f) for f in out[:-1]]
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            if tc.id:
                entry["id"] = tc.id
            if tc.function and tc.function.name:
                entry["name"] = tc.function.name
            if tc.function and tc.function.arguments:
                entry["args"] += tc.function.arguments
    assert calls[0] == {"id": "call_a", "name": "get_weather", "args": '{"city":"Paris"}'}
    assert calls[1] == {"id": "call_b", "name": "get_time", "args": '{"tz":"UTC"}'}


def test_error_frame_has_openai_error_shape() -> None:
    enc = OpenAIStreamEncoder(id="x", created=1, model="m", include_usage=False)
    frame = enc.encode(ErrorEvent(RateLimitError("slow down", retry_after=2)))
    assert frame is not None
    payload = json.loads(frames(frame)[0])
    assert payload == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert DONE == b"data: [DONE]\n\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), max_size=20))
def test_any_text_survives_encoding(pieces: list[str]) -> None:
    out = run([TextDelta(p) for p in pieces] + [FinishEvent("stop")], include_usage=False)
    chunks = [ChatCompletionChunk.model_validate_json(f) for f in out[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(pieces)
