"""One accumulator that turns stream events into a response.

Used by non-streaming calls served from a stream, by the cache (to store a stream as a
response) and by the usage ledger (to know what a cut stream produced).
"""

from __future__ import annotations

import time

from llm_gateway.core.events import (
    ErrorEvent,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from llm_gateway.core.types import ChatResponse, FinishReason, ToolCall, Usage


class _PartialToolCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class Accumulator:
    __slots__ = ("_reasoning", "_text", "_tools", "error", "finish_reason", "signature", "usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[int, _PartialToolCall] = {}
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.error: ErrorEvent | None = None
        self.signature: str | None = None

    def add(self, event: StreamEvent) -> None:
        kind = type(event)
        if kind is TextDelta:
            self._text.append(event.text)  # type: ignore[union-attr]
        elif kind is ToolCallDelta:
            assert isinstance(event, ToolCallDelta)
            call = self._tools.get(event.index)
            if call is None:
                call = self._tools[event.index] = _PartialToolCall()
            if event.id:
                call.id = event.id
            if event.name:
                call.name = event.name
            if event.arguments:
                call.arguments.append(event.arguments)
        elif kind is ReasoningDelta:
            assert isinstance(event, ReasoningDelta)
            if event.text:
                self._reasoning.append(event.text)
            if event.signature:
                self.signature = event.signature
        elif kind is UsageEvent:
            self.usage = event.usage  # type: ignore[union-attr]
        elif kind is FinishEvent:
            self.finish_reason = event.reason  # type: ignore[union-attr]
        elif kind is ErrorEvent:
            self.error = event  # type: ignore[assignment]

    @property
    def text(self) -> str:
        return "".join(self._text)

    def tool_calls(self) -> list[ToolCall] | None:
        if not self._tools:
            return None
        return [
            ToolCall(id=c.id, name=c.name, arguments="".join(c.arguments))
            for _, c in sorted(self._tools.items())
        ]

    def response(self, *, id: str, model: str, created: int | None = None) -> ChatResponse:
        tools = self.tool_calls()
        finish = self.finish_reason or ("tool_calls" if tools else "stop")
        return ChatResponse(
            id=id,
            model=model,
            created=int(time.time()) if created is None else created,
            content="".join(self._text) if self._text or not tools else None,
            reasoning="".join(self._reasoning) if self._reasoning else None,
            reasoning_signature=self.signature,
            tool_calls=tools,
            finish_reason=finish,
            usage=self.usage,
        )


def accumulate(
    events: list[StreamEvent], *, id: str = "resp", model: str = "model"
) -> ChatResponse:
    acc = Accumulator()
    for event in events:
        acc.add(event)
    return acc.response(id=id, model=model)
