"""Measures a stream as it passes: first-token time, text produced, usage reported.

The relay loops of every surface call ``observe`` per batch; at the end ``outcome`` says
what the stream cost, even when the client walked away half-way (the text produced so far
is counted locally when the provider never sent usage).
"""

from __future__ import annotations

import time

from llm_gateway.core.events import (
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from llm_gateway.core.types import Usage


class StreamMeter:
    __slots__ = ("chunks", "first_at", "parts", "started", "usage")

    def __init__(self, started: float | None = None) -> None:
        self.started = time.monotonic() if started is None else started
        self.first_at: float | None = None
        self.usage: Usage | None = None
        self.parts: list[str] = []  # produced text, only read when usage never arrives
        self.chunks = 0

    def observe(self, batch: list[StreamEvent]) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.chunks += 1
        for event in batch:
            if isinstance(event, TextDelta | ReasoningDelta):
                self.parts.append(event.text)
            elif isinstance(event, ToolCallDelta):
                if event.name:
                    self.parts.append(event.name)
                if event.arguments:
                    self.parts.append(event.arguments)
            elif isinstance(event, UsageEvent):
                self.usage = event.usage

    @property
    def ttft_ms(self) -> float | None:
        if self.first_at is None:
            return None
        return (self.first_at - self.started) * 1000.0

    def produced_text(self) -> str:
        return "".join(self.parts)
