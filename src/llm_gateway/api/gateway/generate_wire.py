"""Wire shapes of /api/llm/generate, /api/llm/stream and /api/chat/stream.

Request and response bodies are pydantic models (they are the OpenAPI document's schemas
and examples). The SSE frames are encoded here too, with msgspec, since they are written
per chunk:

    event: chunk      data: {"text": "..."}              one per upstream batch of text
    event: reasoning  data: {"text": "..."}              reasoning text, where a model streams it
    event: stats      data: {request_id, model, provider, finish_reason, stats: {...}}
    event: error      data: {"error": {message, type, param, code}}
    event: done       data: {}                           always last

A successful stream is ``chunk``* then ``stats`` then ``done``; a failed one ends with
``error`` then ``done``. While the upstream is silent the stream carries SSE comments
(``: keep-alive``), which clients ignore.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from llm_gateway.api.gateway.generate import Result, Stats
from llm_gateway.api.openai.stream import error_payload
from llm_gateway.core.errors import GatewayError

_encode = msgspec.json.encode


class GenerateRequest(BaseModel):
    """A single prompt. Send ``model``, or ``provider`` (its first model is used), or both."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"prompt": "Say hello in French.", "model": "mock", "max_tokens": 64},
                {"prompt": "Write a haiku.", "provider": "openai", "stream": True},
            ]
        }
    )

    prompt: str = Field(min_length=1, description="The user's message.")
    model: str | None = Field(
        None, description="A configured model name, 'provider/model', or 'auto'."
    )
    provider: str | None = Field(
        None, description="A configured provider; with 'model', that model on this provider."
    )
    system: str | None = Field(None, description="A system prompt.")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)
    stream: bool = Field(False, description="Answer as server-sent events (see /api/llm/stream).")


class StreamRequest(GenerateRequest):
    """As for /api/llm/generate; the answer is always a stream (``stream`` is ignored)."""


class ChatMessageIn(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatStreamRequest(BaseModel):
    """A conversation, answered as a stream."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "mock",
                    "system": "Be brief.",
                    "messages": [
                        {"role": "user", "content": "Hi!"},
                        {"role": "assistant", "content": "Hello! How can I help?"},
                        {"role": "user", "content": "Name a colour."},
                    ],
                }
            ]
        }
    )

    messages: list[ChatMessageIn] = Field(min_length=1)
    model: str | None = None
    provider: str | None = None
    system: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)


class GenerateStats(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    tokens_estimated: bool = Field(
        description="True when the provider reported no usage and the gateway counted locally."
    )
    tokens_per_second: float = Field(description="Completion tokens over the elapsed time.")
    time_to_first_token_ms: float | None = Field(
        description="From the request's arrival to the first token (the whole answer, "
        "when not streamed)."
    )
    elapsed_ms: float


_STATS_EXAMPLE: dict[str, JsonValue] = {
    "prompt_tokens": 12,
    "completion_tokens": 9,
    "total_tokens": 21,
    "tokens_estimated": False,
    "tokens_per_second": 61.2,
    "time_to_first_token_ms": 41.7,
    "elapsed_ms": 147.0,
}


class GenerateResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "text": "Bonjour !",
                    "model": "mock-1",
                    "requested_model": "mock",
                    "provider": "mock",
                    "request_id": "4f1c0d6e9a8b7c6d5e4f3a2b1c0d9e8f",
                    "finish_reason": "stop",
                    "stats": _STATS_EXAMPLE,
                }
            ]
        }
    )

    text: str
    model: str = Field(description="The provider's model id that answered.")
    requested_model: str = Field(description="The name the request was routed by.")
    provider: str | None
    request_id: str
    finish_reason: str | None
    stats: GenerateStats


SSE_EXAMPLE = (
    'event: chunk\ndata: {"text":"Bonjour"}\n\n'
    'event: chunk\ndata: {"text":" !"}\n\n'
    'event: stats\ndata: {"request_id":"be64dd7c09de12260a65126d6b41f00d",'
    '"model":"gpt-4o-mini-2024-07-18","requested_model":"fast","provider":"openai",'
    '"finish_reason":"stop","stats":{"prompt_tokens":12,"completion_tokens":3,'
    '"total_tokens":15,"tokens_estimated":false,"tokens_per_second":41.2,'
    '"time_to_first_token_ms":212.5,"elapsed_ms":285.3}}\n\n'
    "event: done\ndata: {}\n\n"
)

SSE_DESCRIPTION = """Server-sent events (`text/event-stream`), one named event per frame:

| event | data |
|---|---|
| `chunk` | `{"text": "..."}`: the next piece of the answer |
| `reasoning` | `{"text": "..."}`: reasoning text, for models that stream it |
| `stats` | `{"request_id", "model", "requested_model", "provider", "finish_reason", "stats": {prompt_tokens, completion_tokens, total_tokens, tokens_estimated, tokens_per_second, time_to_first_token_ms, elapsed_ms}}` |
| `error` | `{"error": {"message", "type", "param", "code"}}`: the stream failed after it started |
| `done` | `{}`: always the last frame |

Success is `chunk`... `stats` `done`; a failure after the stream started is `error` `done`.
A failure before any frame (unknown model, rate limit, every route down) is an ordinary
JSON error with its HTTP status. `: keep-alive` comments are sent while the upstream is
silent. Closing the connection cancels the upstream request at once.

Example:

```
event: chunk
data: {"text":"Bonjour"}

event: chunk
data: {"text":" !"}

event: stats
data: {"request_id":"4f1c...","model":"mock-1","requested_model":"mock","provider":"mock","finish_reason":"stop","stats":{"prompt_tokens":12,...}}

event: done
data: {}
```
"""


def sse_frame(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def chunk_frame(kind: str, text: str) -> bytes:
    name = b"chunk" if kind == "text" else kind.encode()
    return b"event: " + name + b'\ndata: {"text":' + _encode(text) + b"}\n\n"


def result_fields(result: Result) -> dict[str, Any]:
    """Everything of a result but its text: the stats frame / done frame payload."""
    return {
        "request_id": result.request_id,
        "model": result.model,
        "requested_model": result.requested_model,
        "provider": result.provider,
        "finish_reason": result.finish_reason,
        "stats": result.stats,
    }


def stats_frame(result: Result) -> bytes:
    return sse_frame("stats", result_fields(result))


DONE_FRAME = b"event: done\ndata: {}\n\n"


def error_frame(error: GatewayError) -> bytes:
    return sse_frame("error", error_payload(error))


def response_body(result: Result) -> bytes:
    """The JSON answer of a non-streamed /api/llm/generate."""
    return _encode({"text": result.text, **result_fields(result)})


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class GatewayErrorBody(BaseModel):
    """Every error of these endpoints, in OpenAI's shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "message": "Send 'model' (a configured model name, 'provider/model' "
                        "or 'auto') or 'provider' (its first model is used).",
                        "type": "invalid_request_error",
                        "param": "model",
                        "code": "missing_model",
                    }
                }
            ]
        }
    )

    error: ErrorDetail


__all__ = [
    "DONE_FRAME",
    "SSE_DESCRIPTION",
    "SSE_EXAMPLE",
    "ChatMessageIn",
    "ChatStreamRequest",
    "ErrorDetail",
    "GatewayErrorBody",
    "GenerateRequest",
    "GenerateResponse",
    "GenerateStats",
    "Stats",
    "StreamRequest",
    "chunk_frame",
    "error_frame",
    "response_body",
    "result_fields",
    "sse_frame",
    "stats_frame",
]
