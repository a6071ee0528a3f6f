"""Pure conversions between ``core`` types and Anthropic's Messages API wire format.

No I/O. Shapes follow Anthropic's API reference and the official SDK's types
(``anthropic.types``: ``MessageCreateParams``, ``Message``, ``RawMessageStreamEvent``,
``Usage``/``MessageDeltaUsage`` with ``output_tokens_details.thinking_tokens``).

What the canonical model cannot say one-to-one, and what this module does about it:

* System messages go to the top-level ``system``: one as a string, several as a list of
  text blocks (Anthropic joins them), wherever they stood in the conversation.
* Anthropic wants alternating user/assistant turns and tool results inside a *user*
  turn. Tool messages become ``tool_result`` blocks; consecutive turns of one role are
  merged into one block list, with ``tool_result`` blocks first (the API requires them
  to lead the turn that answers a ``tool_use``).
* Tool-call ids are restricted to ``[A-Za-z0-9_-]``; ids minted elsewhere are rewritten
  deterministically on both the ``tool_use`` and its ``tool_result`` so they still pair.
* ``seed`` and image ``detail`` have no Anthropic equivalent and are not sent.
  Whitespace-only stop sequences are dropped: the API rejects them with a 400
  ("each stop sequence must contain non-whitespace") and OpenAI clients often send
  ``"\\n"``; a stop that cannot be honoured is better than a request that cannot be served.
* ``response_format``: ``json_schema`` becomes native structured output
  (``output_config.format = {"type": "json_schema", "schema": ...}``); ``json_object``
  has no native switch, so an instruction to answer with one JSON object is appended to
  the system prompt (best effort; the answer is not validated).
* From ``request.extra`` only Anthropic's own knobs pass (``top_k``, ``thinking``,
  ``service_tier``, ``output_config``...): the API rejects unknown fields, so OpenAI-only
  extras (``presence_penalty``, ``logprobs``) are dropped rather than forwarded.
* Reasoning is echoed back as a ``thinking`` block only with its signature (the API
  verifies it); unsigned reasoning from another provider is not sent.
  ``redacted_thinking`` blocks carry no readable text and are skipped in responses.
* Stop reasons: ``end_turn``/``stop_sequence``/``pause_turn`` → stop (``pause_turn``
  marks a long server-tool turn paused by the API; the canonical model has no
  "continue" reason, so the caller sees what was produced so far),
  ``max_tokens``/``model_context_window_exceeded`` → length, ``tool_use`` → tool_calls,
  ``refusal`` → content_filter.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from llm_gateway.core.errors import (
    ContextWindowExceededError,
    GatewayError,
    InvalidRequestError,
    ProviderOverloadedError,
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

__all__ = [
    "JSON_OBJECT_INSTRUCTION",
    "PASSTHROUGH_FIELDS",
    "StreamState",
    "encode_request",
    "end_events",
    "error_from_payload",
    "error_from_wire",
    "event_to_events",
    "finish_reason_from_wire",
    "models_from_wire",
    "request_to_wire",
    "response_from_wire",
    "tool_use_id",
    "usage_from_wire",
]

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# Anthropic-native request fields a caller may set through ``request.extra``.
PASSTHROUGH_FIELDS = frozenset(
    {
        "top_k",
        "thinking",
        "service_tier",
        "output_config",
        "cache_control",
        "container",
        "inference_geo",
        "speed",
        "context_management",
        "mcp_servers",
    }
)
JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)
_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_ID_OK = re.compile(r"[A-Za-z0-9_-]+")
_ID_BAD_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_LEADING = frozenset({"tool_result", "thinking", "redacted_thinking"})


# --- request ---------------------------------------------------------------------------


def tool_use_id(call_id: str) -> str:
    """An id Anthropic accepts (``^[a-zA-Z0-9_-]+$``), unchanged when it already does."""
    if _ID_OK.fullmatch(call_id):
        return call_id
    return _ID_BAD_CHAR.sub("_", call_id) if call_id else call_id


def _image_block(part: ImagePart, where: str) -> dict[str, Any]:
    url = part.url
    if url.startswith("data:"):
        meta, sep, data = url[5:].partition(",")
        fields = meta.split(";")
        media_type = fields[0].strip().lower()
        if media_type == "image/jpg":  # a common misspelling the API would reject
            media_type = "image/jpeg"
        if not sep or "base64" not in fields[1:]:
            raise InvalidRequestError(
                f"{where}: only base64 data: URLs are supported for images", param=where
            )
        if media_type not in _MEDIA_TYPES:
            raise InvalidRequestError(
                f"{where}: image type {media_type or '(none)'!r} is not supported; "
                "use image/jpeg, image/png, image/gif or image/webp",
                param=where,
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError(
        f"{where}: an image must be a data: URL or an http(s) URL", param=where
    )


def _content_blocks(content: str | list[Any] | None, where: str) -> list[dict[str, Any]]:
    """User/tool content as blocks; empty text is left out (the API rejects it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part, f"{where}[{i}]"))
    return blocks


def _user_content(content: str | list[Any] | None, where: str) -> str | list[dict[str, Any]]:
    # A plain string stays a string: the cheapest body, and what a reader expects back.
    if isinstance(content, str):
        return content
    return _content_blocks(content, where)


def _tool_input(call: ToolCall, where: str) -> dict[str, Any]:
    raw = call.arguments
    if not raw or raw.isspace():
        return {}  # a call without arguments (OpenAI sends "" for those)
    try:
        value = _decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(
            f"{where}: tool call arguments are not valid JSON ({exc}): {raw[:200]!r}",
            param=where,
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"{where}: tool call arguments must be a JSON object, got {raw[:200]!r}",
            param=where,
        )
    return value


def _assistant_content(message: Message, index: int) -> str | list[dict[str, Any]]:
    calls = message.tool_calls
    signed = bool(message.reasoning_signature)
    content = message.content
    if not calls and not signed:
        return content if isinstance(content, str) else message.text()
    blocks: list[dict[str, Any]] = []
    if signed:
        # The thinking block must come first, exactly as it was received.
        blocks.append(
            {
                "type": "thinking",
                "thinking": message.reasoning or "",
                "signature": message.reasoning_signature,
            }
        )
    text = message.text()
    if text:
        blocks.append({"type": "text", "text": text})
    for j, call in enumerate(calls or ()):
        where = f"messages[{index}].tool_calls[{j}].function.arguments"
        blocks.append(
            {
                "type": "tool_use",
                "id": tool_use_id(call.id),
                "name": call.name,
                "input": _tool_input(call, where),
            }
        )
    return blocks


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content


def _messages(
    messages: Sequence[Message],
) -> tuple[list[str], list[dict[str, Any]]]:
    """System texts, and the alternating user/assistant turns."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.role
        content: str | list[dict[str, Any]]
        if role == "system":
            text = message.text()
            if text:
                system.append(text)
            continue
        if role == "tool":
            wire_role = "user"
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": tool_use_id(message.tool_call_id or ""),
            }
            body = message.content
            if isinstance(body, list):
                result["content"] = _content_blocks(body, f"messages[{i}].content")
            elif body:
                result["content"] = body
            content = [result]
        elif role == "assistant":
            wire_role = "assistant"
            content = _assistant_content(message, i)
            if not content:
                continue  # an empty turn says nothing, and the API rejects empty content
        else:
            wire_role = "user"
            content = _user_content(message.content, f"messages[{i}].content")
        last = turns[-1] if turns else None
        if last is None or last["role"] != wire_role:
            turns.append({"role": wire_role, "content": content})
            continue
        # Same role twice in a row: one turn, as the API wants.
        merged = _as_blocks(last["content"]) + _as_blocks(content)
        # The API wants tool_result blocks to lead a user turn and thinking blocks to
        # lead an assistant turn; a stable sort keeps everything else in order.
        merged.sort(key=lambda block: block["type"] not in _LEADING)
        last["content"] = merged
    return system, turns


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    parallel = request.parallel_tool_calls
    if choice is None and parallel is None:
        return None
    wire: dict[str, Any]
    if isinstance(choice, NamedToolChoice):
        wire = {"type": "tool", "name": choice.name}
    elif choice == "none":
        return {"type": "none"}  # nothing will be called, so parallelism is moot
    elif choice == "required":
        wire = {"type": "any"}
    else:
        wire = {"type": "auto"}
    if parallel is not None:
        wire["disable_parallel_tool_use"] = not parallel
    return wire


def request_to_wire(
    request: ChatRequest, model: str, default_max_tokens: int, stream: bool
) -> dict[str, Any]:
    """The Messages API body for ``request`` sent to ``model``."""
    system, turns = _messages(request.messages)
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        system.append(JSON_OBJECT_INSTRUCTION)
    extra = request.extra
    max_tokens = request.max_tokens
    if max_tokens is None:
        # Anthropic requires max_tokens. Extended thinking spends from the same budget
        # and must stay below it, so a caller's thinking budget raises the default.
        max_tokens = default_max_tokens
        thinking = extra.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(budget, int) and budget >= max_tokens:
            max_tokens = budget + default_max_tokens
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        body["system"] = (
            system[0] if len(system) == 1 else [{"type": "text", "text": s} for s in system]
        )
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        stops = [s for s in request.stop if s and not s.isspace()]
        if stops:
            body["stop_sequences"] = stops
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        tools = []
        for tool in request.tools:
            wire_tool: dict[str, Any] = {
                "name": tool.name,
                "input_schema": tool.parameters
                if tool.parameters is not None
                else {"type": "object", "properties": {}},
            }
            if tool.description is not None:
                wire_tool["description"] = tool.description
            if tool.strict is not None:
                wire_tool["strict"] = tool.strict
            tools.append(wire_tool)
        body["tools"] = tools
        # tool_choice without tools is a 400 upstream, and means nothing anyway.
        choice = _tool_choice(request)
        if choice is not None:
            body["tool_choice"] = choice
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        schema = fmt.json_schema.get("schema", {"type": "object"})
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if stream:
        body["stream"] = True
    if extra:
        for key, value in extra.items():
            if key in PASSTHROUGH_FIELDS:
                if key == "output_config" and "output_config" in body and isinstance(value, dict):
                    body["output_config"] = {**body["output_config"], **value}
                else:
                    body[key] = value
    return body


def encode_request(
    request: ChatRequest, model: str, default_max_tokens: int, stream: bool
) -> bytes:
    return _encode(request_to_wire(request, model, default_max_tokens, stream))


# --- response, usage, finish -----------------------------------------------------------

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason_from_wire(reason: Any) -> FinishReason | None:
    if not reason or not isinstance(reason, str):
        return None
    return _FINISH.get(reason, "stop")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_wire(data: Mapping[str, Any]) -> Usage:
    """Anthropic counts cache reads and writes *outside* ``input_tokens``; the canonical
    prompt count includes them, with the cached and written parts as subsets."""
    fresh = _int(data.get("input_tokens"))
    read = _int(data.get("cache_read_input_tokens"))
    written = _int(data.get("cache_creation_input_tokens"))
    completion = _int(data.get("output_tokens"))
    details = data.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    prompt = fresh + read + written
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=thinking,
    )


def _arguments(value: Any) -> str:
    # Formatted like Anthropic's own streamed input_json_delta fragments (", " and ": "
    # separators, UTF-8 kept), so a call's arguments read the same streamed or not.
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def response_from_wire(data: Any, *, model: str = "", provider: str | None = None) -> ChatResponse:
    """A non-streaming Message. A body that is not a message is an UpstreamError."""
    if not isinstance(data, dict):
        raise UpstreamError("upstream response is not a JSON object", provider=provider)
    if data.get("type") == "error":
        raise error_from_payload(data, 500, {}, provider)
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise UpstreamError("upstream response has no content", provider=provider)
    text: list[str] = []
    reasoning: list[str] = []
    signature: str | None = None
    calls: list[ToolCall] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    id=block.get("id") or "",
                    name=block.get("name") or "",
                    arguments=_arguments(block.get("input")),
                )
            )
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            signature = block.get("signature") or signature
        # redacted_thinking (encrypted) and server-tool blocks have no canonical place.
    finish = finish_reason_from_wire(data.get("stop_reason")) or ("tool_calls" if calls else "stop")
    usage = data.get("usage")
    return ChatResponse(
        id=data.get("id") or "",
        model=data.get("model") or model,
        created=int(time.time()),
        content="".join(text) if text or not calls else None,
        reasoning="".join(reasoning) if reasoning else None,
        reasoning_signature=signature,
        tool_calls=calls or None,
        finish_reason=finish,
        usage=usage_from_wire(usage) if isinstance(usage, dict) else None,
    )


def _created(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        return 0


def models_from_wire(data: Any, owned_by: str) -> list[ModelInfo]:
    """``GET /v1/models``: ``{"data": [{"id", "display_name", "created_at", "type"}],
    "has_more", "first_id", "last_id"}``."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UpstreamError("model list is not a list")
    return [
        ModelInfo(id=item["id"], owned_by=owned_by, created=_created(item.get("created_at")))
        for item in items
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    ]


# --- streaming -------------------------------------------------------------------------

_TEXT, _TOOL, _THINKING, _OTHER = 0, 1, 2, 3


class StreamState:
    """What one stream remembers between events.

    Content blocks are numbered across kinds (text 0, tool_use 1, ...); tool calls get
    dense indices counting only ``tool_use`` blocks. Usage comes in two halves (input in
    ``message_start``, output in ``message_delta``) and is emitted once, at the end.
    """

    __slots__ = ("blocks", "done", "finish", "tool_args", "tools", "usage_in", "usage_out")

    def __init__(self) -> None:
        self.blocks: dict[int, int] = {}  # content-block index -> kind
        self.tools: dict[int, int] = {}  # content-block index -> tool-call index
        self.tool_args: dict[int, bool] = {}  # tool-call index -> any argument text seen
        self.finish: FinishReason | None = None
        self.done = False
        self.usage_in: dict[str, Any] = {}
        self.usage_out: dict[str, Any] = {}

    def usage(self) -> Usage | None:
        if not self.usage_in and not self.usage_out:
            return None
        merged = dict(self.usage_in)
        # message_delta counts are cumulative: a value there supersedes message_start's.
        for key, value in self.usage_out.items():
            if value is not None:
                merged[key] = value
        return usage_from_wire(merged)


def _block_start(event: dict[str, Any], state: StreamState) -> list[StreamEvent]:
    index = event.get("index")
    block = event.get("content_block")
    if not isinstance(index, int) or not isinstance(block, dict):
        raise UpstreamError("malformed content_block_start event")
    kind = block.get("type")
    if kind == "tool_use":
        state.blocks[index] = _TOOL
        call_index = state.tools[index] = len(state.tools)
        given = block.get("input")
        arguments = _arguments(given) if given else ""
        state.tool_args[call_index] = bool(arguments)
        return [
            ToolCallDelta(
                index=call_index,
                id=block.get("id") or "",
                name=block.get("name") or "",
                arguments=arguments,
            )
        ]
    if kind == "text":
        state.blocks[index] = _TEXT
        text = block.get("text")
        return [TextDelta(text)] if text else []
    if kind == "thinking":
        state.blocks[index] = _THINKING
        thinking = block.get("thinking")
        signature = block.get("signature") or None
        if thinking or signature:
            return [ReasoningDelta(thinking or "", signature=signature)]
        return []
    state.blocks[index] = _OTHER  # redacted_thinking, server tools: nothing to relay
    return []


def _tool_index(event: dict[str, Any], state: StreamState) -> int | None:
    index = event.get("index")
    return state.tools.get(index) if isinstance(index, int) else None


def _block_delta(event: dict[str, Any], state: StreamState) -> list[StreamEvent]:
    delta = event.get("delta")
    if not isinstance(delta, dict):
        raise UpstreamError("malformed content_block_delta event")
    kind = delta.get("type")
    if kind == "text_delta":
        text = delta.get("text")
        return [TextDelta(text)] if text else []
    if kind == "input_json_delta":
        fragment = delta.get("partial_json")
        if not fragment:
            return []  # the API opens a tool's input with an empty fragment
        call_index = _tool_index(event, state)
        if call_index is None:
            raise UpstreamError("input_json_delta for a block that is not a tool_use")
        state.tool_args[call_index] = True
        return [ToolCallDelta(index=call_index, arguments=fragment)]
    if kind == "thinking_delta":
        thinking = delta.get("thinking")
        return [ReasoningDelta(thinking)] if thinking else []
    if kind == "signature_delta":
        signature = delta.get("signature")
        return [ReasoningDelta("", signature=signature)] if signature else []
    return []  # citations_delta and delta types added later


def event_to_events(event: Any, state: StreamState) -> list[StreamEvent]:
    """The core events in one decoded stream event (the ``data`` of one SSE event).

    Raises the mapped GatewayError for an ``error`` event and an UpstreamError for an
    event of the wrong shape. Unknown event types are ignored, as the API asks.
    """
    if not isinstance(event, dict):
        raise UpstreamError("malformed stream event: not a JSON object")
    kind = event.get("type")
    if kind == "content_block_delta":
        return _block_delta(event, state)
    if kind == "content_block_start":
        return _block_start(event, state)
    if kind == "content_block_stop":
        call_index = _tool_index(event, state)
        if call_index is not None and not state.tool_args.get(call_index):
            # A call with no input fragments at all: "{}", as the non-streamed input is.
            state.tool_args[call_index] = True
            return [ToolCallDelta(index=call_index, arguments="{}")]
        return []
    if kind == "message_start":
        message = event.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
        if isinstance(usage, dict):
            state.usage_in = usage
        return []
    if kind == "message_delta":
        usage = event.get("usage")
        if isinstance(usage, dict):
            state.usage_out = usage
        delta = event.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        finish = finish_reason_from_wire(reason)
        if finish is not None and state.finish is None:
            state.finish = finish
            return [FinishEvent(finish)]
        return []
    if kind == "message_stop":
        state.done = True
        return []
    if kind == "error":
        raise error_from_payload(event, None, {}, None)
    return []  # ping, and event types added later


def end_events(state: StreamState) -> list[StreamEvent]:
    """Events held until the stream ended cleanly: the usage, reported once."""
    usage = state.usage()
    return [UsageEvent(usage)] if usage is not None else []


# --- errors ----------------------------------------------------------------------------

# The status an error type stands for, for in-stream errors (which arrive on a 200).
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _is_context_overflow(message: str) -> bool:
    # Anthropic has no error code for it; these are its two documented messages:
    # "prompt is too long: 208310 tokens > 200000 maximum" and "input length and
    # `max_tokens` exceed context limit: 197626 + 8192 > 200000, ...".
    lowered = message.lower()
    return lowered.startswith("prompt is too long") or "exceed context limit" in lowered


def error_from_payload(
    payload: Any, status: int | None, headers: Mapping[str, str], provider: str | None
) -> GatewayError:
    """Map ``{"type": "error", "error": {"type", "message"}}``: by HTTP status when there
    is one, by the error type for an in-stream error (``status`` None)."""
    message: str | None = None
    type_: str | None = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            raw_type = error.get("type")
            type_ = raw_type if isinstance(raw_type, str) else None
            raw_message = error.get("message")
            message = raw_message if isinstance(raw_message, str) else None
        elif isinstance(error, str):
            message = error
        elif isinstance(payload.get("message"), str):
            message = payload["message"]
    elif isinstance(payload, str) and payload:
        message = payload
    if status is None:
        status = _TYPE_STATUS.get(type_ or "", 500)
    cls = error_for_status(status)
    if type_ == "overloaded_error" and not issubclass(cls, ProviderOverloadedError):
        cls = ProviderOverloadedError
    if cls is InvalidRequestError and message and _is_context_overflow(message):
        cls = ContextWindowExceededError
    text = message or f"upstream returned HTTP {status}"
    if type_ and message:
        text = f"{message} ({type_})"
    return cls(
        text,
        retry_after=parse_retry_after(headers),
        provider=provider,
        upstream_status=status,
    )


def error_from_wire(
    status: int, headers: Mapping[str, str], body: bytes, provider: str | None
) -> GatewayError:
    """Map an upstream error response. ``headers`` must have lower-case keys."""
    payload: Any
    try:
        payload = _decode(body) if body else None
    except msgspec.DecodeError:
        payload = body[:500].decode("utf-8", "replace").strip()
    return error_from_payload(payload, status, headers, provider)
