"""Canonical request and response types.

They are msgspec Structs rather than pydantic models: construction costs ~100 ns, which
matters because several are built per request and per streamed chunk on the hot path.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class TextPart(msgspec.Struct, frozen=True, tag="text"):
    text: str


class ImagePart(msgspec.Struct, frozen=True, tag="image"):
    """An image by URL; ``data:`` URLs carry inline base64 images."""

    url: str
    detail: str | None = None


ContentPart = TextPart | ImagePart


class ToolCall(msgspec.Struct, frozen=True):
    """A function call requested by the model. ``arguments`` is JSON text, as produced."""

    id: str
    name: str
    arguments: str


class Message(msgspec.Struct, frozen=True):
    role: Role
    # A plain string is the common case and avoids building a part list per message.
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None  # set on role="tool" messages
    name: str | None = None
    reasoning: str | None = None  # assistant reasoning from an earlier turn, when known
    # Opaque proof of the reasoning some providers require echoed back (Anthropic's
    # thinking signature, Gemini's thought signature) on later turns.
    reasoning_signature: str | None = None

    def text(self) -> str:
        """The message's text content, with image parts left out."""
        content = self.content
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "".join(p.text for p in content if isinstance(p, TextPart))

    def has_images(self) -> bool:
        content = self.content
        return isinstance(content, list) and any(isinstance(p, ImagePart) for p in content)


class Tool(msgspec.Struct, frozen=True):
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedToolChoice(msgspec.Struct, frozen=True):
    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class ResponseFormat(msgspec.Struct, frozen=True):
    type: Literal["text", "json_object", "json_schema"]
    # For json_schema: {"name": ..., "schema": {...}, "strict": ...} as OpenAI defines it.
    json_schema: dict[str, Any] | None = None


class ChatRequest(msgspec.Struct, frozen=True):
    model: str
    messages: list[Message]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    # Dialect-specific parameters the canonical model does not name (presence_penalty,
    # logprobs, reasoning_effort, ...). Providers of the same wire family pass them through;
    # others ignore them.
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    # The wire dialect ``extra`` is spelled in ("openai", "anthropic"): a provider passes
    # extras through verbatim only when they are in its own dialect, because upstreams
    # reject parameters they do not know (OpenAI answers 400 to Anthropic's "thinking").
    extra_dialect: str = "openai"

    def needs_tools(self) -> bool:
        return bool(self.tools)

    def needs_images(self) -> bool:
        return any(m.has_images() for m in self.messages)


class Usage(msgspec.Struct):
    """Token usage normalised across providers.

    ``cached_tokens`` (read from a prompt cache), ``cache_write_tokens`` (written to it,
    Anthropic's cache creation) and ``reasoning_tokens`` are subsets of prompt and
    completion tokens respectively, as in OpenAI's accounting. ``cost`` is set only when
    the provider reports the charge itself (OpenRouter does).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float | None = None


class ChatResponse(msgspec.Struct):
    id: str
    model: str
    created: int
    content: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None
    tool_calls: list[ToolCall] | None = None
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelInfo(msgspec.Struct, frozen=True):
    """A model a provider can serve, as listed by /v1/models."""

    id: str
    owned_by: str
    created: int = 0
