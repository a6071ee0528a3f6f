"""A provider-neutral vocabulary of scripted upstream behaviours.

A ``Scenario`` says *what* an upstream does (stream these text pieces, call this tool in
three fragments, report this usage, fail with a rate limit, cut the connection after two
chunks); each fake upstream renders it in its own wire format. So one conformance case
drives every adapter, and a new wire format needs only a new renderer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ErrorKind", "ErrorSpec", "Scenario", "ToolCallSpec", "UsageSpec"]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
ErrorKind = Literal[
    "auth",  # the upstream rejects the gateway's credentials (401)
    "rate_limit",  # 429, usually with Retry-After
    "server",  # 500
    "overloaded",  # OpenAI 503, Anthropic 529, Bedrock ThrottlingException...
    "bad_request",  # 400, the caller's own mistake
    "context_length",  # 400 with the vendor's context-window code
    "not_found",  # 404, unknown model
]


@dataclass(frozen=True)
class ToolCallSpec:
    id: str
    name: str
    arguments: str  # complete JSON text
    fragments: int = 3  # how many pieces the arguments stream in (where the wire splits)

    def pieces(self) -> list[str]:
        """``arguments`` cut into ``fragments`` non-empty pieces (fewer if it is short)."""
        count = max(1, min(self.fragments, len(self.arguments)))
        size, extra = divmod(len(self.arguments), count)
        out, start = [], 0
        for i in range(count):
            end = start + size + (1 if i < extra else 0)
            out.append(self.arguments[start:end])
            start = end
        return out


@dataclass(frozen=True)
class UsageSpec:
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0  # a subset of prompt_tokens
    reasoning_tokens: int = 0  # a subset of completion_tokens
    cost: float | None = None  # only wires that report a charge render it

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ErrorSpec:
    kind: ErrorKind
    message: str = "scripted failure"
    retry_after: float | None = None  # rendered as a Retry-After header (seconds)
    status: int | None = None  # override the wire's usual status for ``kind``
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Scenario:
    text: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()  # streamed before the text, where the wire has it
    tool_calls: tuple[ToolCallSpec, ...] = ()
    usage: UsageSpec | None = field(default_factory=UsageSpec)
    finish: FinishReason | None = None  # None: tool_calls if any tool call, else stop
    error: ErrorSpec | None = None  # answer with this error instead of a completion
    # Streaming faults, counted in content chunks already sent:
    malformed_chunk_after: int | None = None  # then send one chunk that is not valid JSON
    disconnect_after: int | None = None  # then drop the connection mid-body
    chunk_delay: float = 0.0  # seconds between chunks
    hang_before_headers: float | None = None  # seconds to wait before answering at all
    model: str | None = None  # the model name the upstream reports (default: as asked)

    @property
    def finish_reason(self) -> FinishReason:
        if self.finish is not None:
            return self.finish
        return "tool_calls" if self.tool_calls else "stop"

    @property
    def full_text(self) -> str:
        return "".join(self.text)

    @classmethod
    def reply(cls, *pieces: str, **kwargs: object) -> Scenario:
        return cls(text=pieces, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def failure(
        cls, kind: ErrorKind, message: str = "scripted failure", **kwargs: object
    ) -> Scenario:
        return cls(error=ErrorSpec(kind, message, **kwargs))  # type: ignore[arg-type]
