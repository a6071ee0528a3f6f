"""Typed stream events: what a provider's stream yields and a dialect encoder consumes.

Providers emit only deltas. A tool call arrives as one or more ``ToolCallDelta`` with the
same ``index``: the first carries ``id`` and ``name``, every one may carry an argument
fragment. Concatenating fragments in order gives the complete JSON arguments.
"""

from __future__ import annotations

import msgspec

from llm_gateway.core.errors import GatewayError
from llm_gateway.core.types import FinishReason, Usage


class TextDelta(msgspec.Struct):
    text: str


class ReasoningDelta(msgspec.Struct):
    text: str
    # A provider's proof of the reasoning (Anthropic's signature_delta); it usually comes
    # alone, with empty text, at the end of a thinking block.
    signature: str | None = None


class ToolCallDelta(msgspec.Struct):
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class UsageEvent(msgspec.Struct):
    usage: Usage


class FinishEvent(msgspec.Struct):
    reason: FinishReason


class ErrorEvent(msgspec.Struct):
    """A failure after the stream started; encoders turn it into the dialect's error frame."""

    error: GatewayError


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | UsageEvent | FinishEvent | ErrorEvent
