"""Encodes core stream events as OpenAI ``chat.completion.chunk`` SSE frames.

Each stream precomputes the bytes every chunk shares (id, created, model), so a text
delta costs one small JSON string encode and a few concatenations: this runs for every
chunk of every stream, tens of thousands of times per second.

Order follows OpenAI: a first chunk with the assistant role, the deltas, a chunk with the
finish reason, then (when ``stream_options.include_usage``) a usage chunk with empty
choices, then ``data: [DONE]``. Providers may report usage before the finish (Anthropic
does), so usage is held until the end.
"""

from __future__ import annotations

import msgspec

from llm_gateway.api.openai.convert import usage_to_wire
from llm_gateway.core.errors import GatewayError
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

_encode = msgspec.json.encode
DONE = b"data: [DONE]\n\n"
HEARTBEAT = b": keep-alive\n\n"


def error_payload(error: GatewayError) -> dict[str, object]:
    return {
        "error": {
            "message": error.message,
            "type": error.openai_type,
            "param": error.param,
            "code": error.code,
        }
    }


class OpenAIStreamEncoder:
    __slots__ = ("_head", "_include_usage", "_tail", "_usage", "failed", "finished")

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._head = (
            b'data: {"id":'
            + _encode(id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + _encode(model)
            + b',"system_fingerprint":null,"choices":[{"index":0,"delta":'
        )
        # With include_usage every chunk carries "usage":null, as OpenAI sends it.
        self._tail = b"}]" + (b',"usage":null}\n\n' if include_usage else b"}\n\n")
        self._usage: Usage | None = None
        self.finished = False
        self.failed = False  # an error frame was written: nothing may follow it

    def start(self, first: object = ()) -> bytes:
        return (
            self._head
            + b'{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null'
            + self._tail
        )

    def _delta(self, delta: bytes) -> bytes:
        return self._head + delta + b',"logprobs":null,"finish_reason":null' + self._tail

    def encode(self, event: StreamEvent) -> bytes | None:
        """The frame for one event, or None when the event produces no frame (yet)."""
        kind = type(event)
        if kind is TextDelta:
            return self._delta(b'{"content":' + _encode(event.text) + b"}")  # type: ignore[union-attr]
        if kind is ToolCallDelta:
            assert isinstance(event, ToolCallDelta)
            call: dict[str, object] = {"index": event.index}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
                call["function"] = {"name": event.name or "", "arguments": event.arguments}
            else:
                call["function"] = {"arguments": event.arguments}
            return self._delta(_encode({"tool_calls": [call]}))
        if kind is ReasoningDelta:
            text = event.text  # type: ignore[union-attr]
            # A signature alone has no place in OpenAI's chunk shape.
            return self._delta(b'{"reasoning_content":' + _encode(text) + b"}") if text else None
        if kind is FinishEvent:
            self.finished = True
            return (
                self._head
                + b'{},"logprobs":null,"finish_reason":'
                + _encode(event.reason)  # type: ignore[union-attr]
                + self._tail
            )
        if kind is UsageEvent:
            self._usage = event.usage  # type: ignore[union-attr]
            return None
        if kind is ErrorEvent:
            return self.error(event.error)  # type: ignore[union-attr]
        return None

    def end(self) -> bytes:
        """The closing frames: the usage chunk if asked for, then [DONE]."""
        if self._include_usage and self._usage is not None:
            usage_chunk = (
                self._head[: self._head.index(b'"choices":')]
                + b'"choices":[],"usage":'
                + _encode(usage_to_wire(self._usage))
                + b"}\n\n"
            )
            return usage_chunk + DONE
        return DONE

    def error(self, error: GatewayError) -> bytes:
        """An in-stream error frame; the openai SDKs raise an APIError when they read it."""
        self.failed = True
        return b"data: " + _encode(error_payload(error)) + b"\n\n"
