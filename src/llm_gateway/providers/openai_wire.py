"""Pure conversions between ``core`` types and the OpenAI chat-completions wire format.

No I/O and no vendor branching: every vendor difference is read off the ``OpenAIFamily``
row. JSON is handled with msgspec (decoded chunks are plain dicts, which keeps the
vendor-specific fields, ``x_groq`` or ``reasoning_content``, reachable without a schema per
vendor).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from llm_gateway.core.errors import (
    AuthenticationError,
    ContextWindowExceededError,
    GatewayError,
    UpstreamError,
    error_for_status,
    parse_retry_after,
)
from llm_gateway.core.events import (
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from llm_gateway.core.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    ModelInfo,
    NamedToolChoice,
    TextPart,
    ToolCall,
    Usage,
)
from llm_gateway.providers.families import OpenAIFamily

__all__ = [
    "StreamState",
    "chunk_to_events",
    "encode_request",
    "end_events",
    "error_from_payload",
    "error_from_wire",
    "finish_reason_from_wire",
    "models_from_wire",
    "request_to_wire",
    "response_from_wire",
    "usage_from_wire",
]

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# --- request ---------------------------------------------------------------------------


def _content_to_wire(content: str | list[Any] | None) -> Any:
    if content is None or isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.url}
            if part.detail is not None:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
    return parts


def _message_to_wire(message: Message, family: OpenAIFamily) -> dict[str, Any]:
    role = message.role
    map_id = family.tool_call_id
    out: dict[str, Any] = {"role": role}
    if role == "tool":
        call_id = message.tool_call_id or ""
        out["tool_call_id"] = map_id(call_id) if map_id else call_id
        out["content"] = message.text()
        if message.name is not None:
            out["name"] = message.name
        return out
    if role == "assistant":
        # Assistant history is text only on the wire; images never come back from a model.
        out["content"] = (
            message.content
            if isinstance(message.content, str)
            else (message.text() if message.content else None)
        )
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": map_id(call.id) if map_id else call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
            # Reasoning goes back only on tool-call turns, and only where the vendor asks
            # for it (see families.DEEPSEEK); elsewhere it is a 400 or wasted tokens.
            if family.reasoning_echo_field and message.reasoning:
                out[family.reasoning_echo_field] = message.reasoning
    else:
        out["content"] = _content_to_wire(message.content)
    if message.name is not None and family.message_names:
        out["name"] = message.name
    return out


def request_to_wire(
    request: ChatRequest, model: str, family: OpenAIFamily, stream: bool
) -> dict[str, Any]:
    """The chat-completions body for ``request`` sent to ``model`` at a ``family`` vendor."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message_to_wire(m, family) for m in request.messages],
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body[family.max_tokens_field] = request.max_tokens
    if request.stop:
        body["stop"] = request.stop
    if request.seed is not None:
        body[family.seed_field] = request.seed
    if request.user is not None:
        body["user"] = request.user
    if request.tools:
        tools = []
        for tool in request.tools:
            function: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                function["description"] = tool.description
            if tool.parameters is not None:
                function["parameters"] = tool.parameters
            if tool.strict is not None:
                function["strict"] = tool.strict
            tools.append({"type": "function", "function": function})
        body["tools"] = tools
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if isinstance(choice, NamedToolChoice)
            else choice
        )
    if request.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    fmt = request.response_format
    if fmt is not None:
        wire_format: dict[str, Any] = {"type": fmt.type}
        if fmt.type == "json_schema" and fmt.json_schema is not None:
            wire_format["json_schema"] = fmt.json_schema
        body["response_format"] = wire_format
    if stream:
        body["stream"] = True
        if family.stream_usage_option:
            body["stream_options"] = {"include_usage": True}
    if family.extra_body:
        for key, value in family.extra_body.items():
            body.setdefault(key, value)
    if request.extra and request.extra_dialect == "openai":
        # Verbatim pass-through of OpenAI-dialect parameters: the caller's choices win.
        # Other dialects' extras (Anthropic's thinking, top_k) have no OpenAI meaning.
        body.update(request.extra)
    allowed = family.allowed_fields
    if allowed is not None:
        for key in [k for k in body if k not in allowed]:
            del body[key]
    return body


def encode_request(request: ChatRequest, model: str, family: OpenAIFamily, stream: bool) -> bytes:
    return _encode(request_to_wire(request, model, family, stream))


# --- response, usage, finish -----------------------------------------------------------

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",  # Mistral: the context window, not max_tokens, ran out
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}


def finish_reason_from_wire(reason: str | None) -> FinishReason | None:
    if not reason:
        return None
    return _FINISH.get(reason, "stop")


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def usage_from_wire(data: Mapping[str, Any]) -> Usage:
    """Usage normalised: cached from ``prompt_tokens_details.cached_tokens`` (or DeepSeek's
    ``prompt_cache_hit_tokens``), reasoning from ``completion_tokens_details``, cost from
    OpenRouter's ``cost``."""
    prompt = _int(data.get("prompt_tokens"))
    completion = _int(data.get("completion_tokens"))
    total = _int(data.get("total_tokens")) or prompt + completion
    cached = 0
    details = data.get("prompt_tokens_details")
    if isinstance(details, dict):
        cached = _int(details.get("cached_tokens"))
    if not cached:
        cached = _int(data.get("prompt_cache_hit_tokens"))
    reasoning = 0
    details = data.get("completion_tokens_details")
    if isinstance(details, dict):
        reasoning = _int(details.get("reasoning_tokens"))
    cost = data.get("cost")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    # Some OpenAI-compatible servers (Ollama) send arguments as an object.
    return _encode(value).decode()


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _reasoning(source: Mapping[str, Any], family: OpenAIFamily) -> str | None:
    for name in family.reasoning_fields:
        value = source.get(name)
        if value and isinstance(value, str):
            return value
    return None


def response_from_wire(
    data: Any, family: OpenAIFamily, *, model: str = "", provider: str | None = None
) -> ChatResponse:
    """A non-streaming chat completion. A body without choices is an UpstreamError."""
    if not isinstance(data, dict):
        raise UpstreamError("upstream response is not a JSON object", provider=provider)
    if data.get("error") is not None:
        raise error_from_payload(data, 502, {}, provider)
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise UpstreamError("upstream response has no choices", provider=provider)
    choice = choices[0]
    message = choice.get("message") or {}
    calls = None
    raw_calls = message.get("tool_calls")
    if raw_calls:
        calls = []
        for raw in raw_calls:
            function = raw.get("function") or {}
            calls.append(
                ToolCall(
                    id=raw.get("id") or "",
                    name=function.get("name") or "",
                    arguments=_arguments(function.get("arguments")),
                )
            )
    finish = finish_reason_from_wire(choice.get("finish_reason")) or (
        "tool_calls" if calls else "stop"
    )
    if calls and finish == "stop":
        # OpenAI says "stop" when tool_choice named the function; clients key on tool_calls.
        finish = "tool_calls"
    usage = data.get("usage")
    created = data.get("created")
    return ChatResponse(
        id=data.get("id") or "",
        model=data.get("model") or model,
        created=created if isinstance(created, int) else int(time.time()),
        content=_text(message.get("content")),
        reasoning=_reasoning(message, family),
        tool_calls=calls,
        finish_reason=finish,
        usage=usage_from_wire(usage) if isinstance(usage, dict) else None,
        system_fingerprint=data.get("system_fingerprint"),
    )


def models_from_wire(data: Any, owned_by: str) -> list[ModelInfo]:
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise UpstreamError("model list is not a list")
    models = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            created = item.get("created")
            models.append(
                ModelInfo(
                    id=item["id"],
                    owned_by=item.get("owned_by") or owned_by,
                    created=created if isinstance(created, int) else 0,
                )
            )
    return models


# --- streaming -------------------------------------------------------------------------


class StreamState:
    """What one stream remembers between chunks.

    Upstream tool-call indices are remapped to dense ones, and a new id under an index
    already bound to another id starts a new call: some compatible servers send every call
    whole, all at index 0. Usage is held and emitted once at the end, because Groq may
    report it twice (``x_groq.usage`` and the ``stream_options`` chunk).
    """

    __slots__ = ("_calls", "family", "finish", "saw_tool_calls", "usage")

    def __init__(self, family: OpenAIFamily) -> None:
        self.family = family
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.saw_tool_calls = False
        self._calls: dict[Any, tuple[int, str]] = {}  # upstream index -> (dense index, id)

    def tool_index(self, upstream: Any, call_id: str | None) -> int:
        key = upstream if upstream is not None else call_id
        bound = self._calls.get(key)
        if bound is None or (call_id and bound[1] and call_id != bound[1]):
            dense = len(self._calls) if bound is None else self._next_dense()
            self._calls[key] = (dense, call_id or "")
            return dense
        if call_id and not bound[1]:
            self._calls[key] = (bound[0], call_id)
        return bound[0]

    def _next_dense(self) -> int:
        return max(dense for dense, _ in self._calls.values()) + 1


def _usage_at(chunk: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = chunk
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def chunk_to_events(chunk: Any, state: StreamState) -> list[StreamEvent]:
    """The events in one decoded ``chat.completion.chunk``.

    Raises a GatewayError for an in-stream error object (OpenAI, OpenRouter and vLLM send
    ``{"error": {...}}`` as a data event; Groq sets ``x_groq.error``) and an UpstreamError
    for a chunk that is not an object.
    """
    if not isinstance(chunk, dict):
        raise UpstreamError("malformed stream chunk: not a JSON object")
    if "error" in chunk and chunk["error"] is not None:
        raise error_from_payload(chunk, 502, {}, None)
    family = state.family
    events: list[StreamEvent] = []
    choices = chunk.get("choices")
    if choices:
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            if family.reasoning_fields:
                reasoning = _reasoning(delta, family)
                if reasoning:
                    events.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if content:
                events.append(
                    TextDelta(content if isinstance(content, str) else _text(content) or "")
                )
            calls = delta.get("tool_calls")
            if calls:
                state.saw_tool_calls = True
                for call in calls:
                    call_id = call.get("id") or None
                    function = call.get("function") or {}
                    events.append(
                        ToolCallDelta(
                            index=state.tool_index(call.get("index"), call_id),
                            id=call_id,
                            name=function.get("name") or None,
                            arguments=_arguments(function.get("arguments")),
                        )
                    )
        reason = choice.get("finish_reason")
        if reason and state.finish is None:
            finish: FinishReason = _FINISH.get(reason, "stop")
            if finish == "stop" and state.saw_tool_calls:
                finish = "tool_calls"
            state.finish = finish
            events.append(FinishEvent(finish))
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        state.usage = usage_from_wire(usage)
    path = family.extra_usage_path
    if path is not None:
        extra = _usage_at(chunk, path)
        if isinstance(extra, dict):
            state.usage = usage_from_wire(extra)
        groq_error = _usage_at(chunk, (path[0], "error"))
        if isinstance(groq_error, str) and groq_error:
            raise UpstreamError(f"stream stopped by upstream: {groq_error}")
    return events


def end_events(state: StreamState) -> list[StreamEvent]:
    """Events held until the stream ended cleanly: the usage, reported once."""
    return [UsageEvent(state.usage)] if state.usage is not None else []


# --- errors ----------------------------------------------------------------------------


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _encode(value).decode()


def error_from_payload(
    payload: Any, status: int, headers: Mapping[str, str], provider: str | None
) -> GatewayError:
    """Map a decoded error body. Understands OpenAI's ``{"error": {message, type, param,
    code}}``, OpenRouter's numeric ``error.code``, Mistral/vLLM's top-level ``{"object":
    "error", "message", "type", "code"}``, FastAPI's ``{"detail": ...}`` and a bare string.
    """
    message = type_ = code = param = None
    if isinstance(payload, dict):
        error = payload.get("error")
        source = error if isinstance(error, dict) else payload
        if isinstance(error, str):
            message = error
        else:
            message = _as_text(source.get("message")) or _as_text(source.get("detail"))
        type_ = source.get("type")
        code = source.get("code")
        param = source.get("param")
        # OpenRouter puts the HTTP status in error.code; mid-stream it is the only status.
        if isinstance(code, int) and not isinstance(code, bool) and status in (200, 502):
            status = code if 400 <= code <= 599 else status
    elif isinstance(payload, str) and payload:
        message = payload
    code_text = code if isinstance(code, str) and code else None
    cls = error_for_status(status)
    if issubclass(cls, AuthenticationError):
        # The upstream's "invalid_api_key" is about the gateway's key, not the caller's.
        code_text = None
    if code_text == "context_length_exceeded" or type_ == "context_length_exceeded":
        cls = ContextWindowExceededError
    text = message or f"upstream returned HTTP {status}"
    if type_ and isinstance(type_, str) and message:
        text = f"{message} ({type_})"
    return cls(
        text,
        param=param if isinstance(param, str) else None,
        code=code_text,
        retry_after=parse_retry_after(headers),
        provider=provider,
        upstream_status=status,
    )


def error_from_wire(
    status: int, headers: Mapping[str, str], body: bytes, provider: str | None
) -> GatewayError:
    """Map an upstream error response, by status first, then the body's code.

    ``headers`` must have lower-case keys (Retry-After / retry-after-ms are honoured).
    """
    payload: Any
    try:
        payload = _decode(body) if body else None
    except msgspec.DecodeError:
        payload = body[:500].decode("utf-8", "replace").strip()
    return error_from_payload(payload, status, headers, provider)
