"""Conversion between the OpenAI wire format and the canonical ``core`` types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from llm_gateway.api.openai.wire import (
    KNOWN_FIELDS,
    WireChatRequest,
    WireMessage,
    WireNamedToolChoice,
    WireTextPart,
)
from llm_gateway.core.errors import InvalidRequestError
from llm_gateway.core.types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    ImagePart,
    Message,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)

_decoder = msgspec.json.Decoder()
_PATH = re.compile(r" - at `\$\.?(.*)`$")


def _validation_error(exc: msgspec.ValidationError) -> InvalidRequestError:
    text = str(exc)
    match = _PATH.search(text)
    param = match.group(1) if match else None
    detail = text[: match.start()] if match else text
    where = f"'{param}'" if param else "the request body"
    if detail.startswith("Object missing required field"):
        field = detail.split("`")[1]
        param = f"{param}.{field}" if param else field
        return InvalidRequestError(f"Missing required parameter: '{param}'.", param=param)
    return InvalidRequestError(f"Invalid value for {where}: {detail}", param=param)


def parse_request(body: bytes) -> tuple[ChatRequest, bool]:
    """Decode and validate a request body into a canonical ``ChatRequest``.

    Also returns whether the caller asked for a usage chunk at the end of the stream
    (``stream_options.include_usage``), which is a concern of this dialect's encoder only:
    providers are always asked for usage so the gateway can account for it.
    Raises ``InvalidRequestError`` naming the offending field.
    """
    try:
        raw = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from None
    if not isinstance(raw, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    try:
        wire = msgspec.convert(raw, WireChatRequest)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    extra = {k: v for k, v in raw.items() if k not in KNOWN_FIELDS}
    include_usage = wire.stream_options is not None and wire.stream_options.include_usage
    return _to_core(wire, extra), include_usage


def _to_core(wire: WireChatRequest, extra: dict[str, Any]) -> ChatRequest:
    messages = [_message(m, i) for i, m in enumerate(wire.messages)]
    stop = wire.stop
    tools = None
    if wire.tools:
        tools = [
            Tool(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters,
                strict=t.function.strict,
            )
            for t in wire.tools
        ]
    choice: ToolChoice | None
    tc = wire.tool_choice
    if isinstance(tc, WireNamedToolChoice):
        choice = NamedToolChoice(tc.function.name)
        if not tools or all(t.name != choice.name for t in tools):
            raise InvalidRequestError(
                f"tool_choice names function '{choice.name}', which is not in 'tools'.",
                param="tool_choice",
            )
    else:
        choice = tc
    rf = wire.response_format
    return ChatRequest(
        model=wire.model,
        messages=messages,
        temperature=wire.temperature,
        top_p=wire.top_p,
        max_tokens=wire.max_completion_tokens or wire.max_tokens,
        stop=[stop] if isinstance(stop, str) else (stop or None),
        seed=wire.seed,
        user=wire.user,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=wire.parallel_tool_calls,
        response_format=ResponseFormat(rf.type, rf.json_schema) if rf is not None else None,
        stream=wire.stream,
        extra=extra,
    )


def _message(m: WireMessage, index: int) -> Message:
    role = m.role
    if role == "developer":  # OpenAI's newer name for the system role
        role = "system"
    content: str | list[ContentPart] | None
    if isinstance(m.content, list):
        content = [
            TextPart(p.text)
            if isinstance(p, WireTextPart)
            else ImagePart(p.image_url.url, p.image_url.detail)
            for p in m.content
        ]
    else:
        content = m.content
    tool_calls = None
    if m.tool_calls:
        if role != "assistant":
            raise InvalidRequestError(
                "Only assistant messages may carry tool_calls.",
                param=f"messages[{index}].tool_calls",
            )
        tool_calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in m.tool_calls
        ]
    if role == "tool" and not m.tool_call_id:
        raise InvalidRequestError(
            "Messages with role 'tool' must have a 'tool_call_id'.",
            param=f"messages[{index}].tool_call_id",
        )
    if content is None and tool_calls is None and role != "assistant":
        raise InvalidRequestError(
            f"Messages with role '{role}' must have 'content'.",
            param=f"messages[{index}].content",
        )
    return Message(
        role=role,
        content=content,
        tool_calls=tool_calls,
        tool_call_id=m.tool_call_id,
        name=m.name,
        # DeepSeek-style clients echo the reasoning of earlier assistant turns; providers
        # that need it back on tool-call turns (DeepSeek) get it, others ignore it.
        reasoning=m.reasoning_content if role == "assistant" else None,
    )


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }
    if usage.cost is not None:
        wire["cost"] = usage.cost
    return wire


def tool_call_to_wire(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def response_to_wire(response: ChatResponse, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response.content,
        "refusal": None,
    }
    if response.reasoning is not None:
        message["reasoning_content"] = response.reasoning
    if response.tool_calls:
        message["tool_calls"] = [tool_call_to_wire(c) for c in response.tool_calls]
    body: dict[str, Any] = {
        "id": response.id,
        "object": "chat.completion",
        "created": response.created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": response.finish_reason,
            }
        ],
        "usage": usage_to_wire(response.usage) if response.usage is not None else None,
        "system_fingerprint": response.system_fingerprint,
    }
    return body
