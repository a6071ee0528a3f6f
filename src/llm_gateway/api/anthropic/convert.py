"""Conversion between Anthropic's Messages wire format and the canonical ``core`` types.

Inbound, Anthropic's block structure is flattened into canonical messages:
- ``tool_result`` blocks (which Anthropic puts in *user* turns) become ``role="tool"``
  messages, in place, so the order of results and surrounding text is kept;
- ``tool_use`` blocks become the assistant message's ``tool_calls`` with ``input``
  serialised to JSON text (canonical arguments are JSON text, as models produce them);
- ``thinking`` blocks become the assistant's ``reasoning`` and ``reasoning_signature``, so
  an Anthropic route can echo them back as its API requires on tool-use turns;
- images become ``ImagePart`` URLs (base64 sources as ``data:`` URLs).

Outbound, a canonical response becomes an Anthropic ``message`` object with thinking,
text and tool_use blocks in that order, which is the order Claude itself produces.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from llm_gateway.api.anthropic.wire import (
    KNOWN_FIELDS,
    Base64ImageSource,
    CountTokensRequest,
    ImageBlockParam,
    ImageSource,
    MessageParam,
    MessagesRequest,
    RedactedThinkingBlockParam,
    TextBlockParam,
    ThinkingBlockParam,
    ToolChoiceAny,
    ToolChoiceAuto,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlockParam,
    ToolUseBlockParam,
)
from llm_gateway.core.errors import GatewayError, InvalidRequestError
from llm_gateway.core.types import (
    ChatRequest,
    ChatResponse,
    ContentPart,
    FinishReason,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)

_decoder = msgspec.json.Decoder()
_encode = msgspec.json.encode
_PATH = re.compile(r" - at `\$\.?(.*)`$")
_INDEX = re.compile(r"\[(\d+)\]")

# Anthropic's stop reasons for canonical finish reasons ("stop" is refined by the caller:
# stop_sequence when a stop sequence is known to have matched, tool_use with tool calls).
_STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}


def _field_path(raw: str) -> str:
    """msgspec's ``messages[0].content`` in Anthropic's own spelling, ``messages.0.content``."""
    return _INDEX.sub(r".\1", raw).lstrip(".")


def _validation_error(exc: msgspec.ValidationError) -> InvalidRequestError:
    text = str(exc)
    match = _PATH.search(text)
    param = _field_path(match.group(1)) if match else None
    detail = text[: match.start()] if match else text
    if detail.startswith("Object missing required field"):
        field = detail.split("`")[1]
        param = f"{param}.{field}" if param else field
        return InvalidRequestError(f"{param}: Field required", param=param)
    if param is None:
        return InvalidRequestError(f"Invalid request body: {detail}")
    return InvalidRequestError(f"{param}: {detail}", param=param)


def _decode_object(body: bytes) -> dict[str, Any]:
    try:
        raw = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    tools = raw.get("tools")
    if isinstance(tools, list):
        # Anthropic's server tools (web search, code execution, bash...) run inside
        # Anthropic; no other provider can serve them, so say so instead of a vague
        # "missing input_schema".
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind not in (None, "custom"):
                raise InvalidRequestError(
                    f"tools.{i}.type: server tool '{kind}' is not supported by the gateway; "
                    "only client tools (with input_schema) can be routed to any provider.",
                    param=f"tools.{i}.type",
                )
    return raw


def parse_request(body: bytes) -> ChatRequest:
    """Decode and validate a Messages request body into a canonical ``ChatRequest``.

    Raises ``InvalidRequestError`` naming the offending field.
    """
    raw = _decode_object(body)
    try:
        wire = msgspec.convert(raw, MessagesRequest)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    # top_k and thinking have no canonical field: they travel as dialect parameters,
    # like unknown fields, for providers that understand them.
    extra = {k: v for k, v in raw.items() if k not in KNOWN_FIELDS}
    if wire.top_k is not None:
        extra["top_k"] = wire.top_k
    if wire.thinking is not None:
        extra["thinking"] = raw["thinking"]
    tools, choice, parallel = _tools(wire)
    return ChatRequest(
        model=wire.model,
        messages=_messages(wire),
        temperature=wire.temperature,
        top_p=wire.top_p,
        max_tokens=wire.max_tokens,
        stop=wire.stop_sequences or None,
        user=wire.metadata.user_id if wire.metadata is not None else None,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        stream=wire.stream,
        extra=extra,
        extra_dialect="anthropic",
    )


def parse_count_tokens(body: bytes) -> ChatRequest:
    """A count_tokens body as a canonical request (for a local token estimate)."""
    raw = _decode_object(body)
    try:
        wire = msgspec.convert(raw, CountTokensRequest)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    tools, choice, _ = _tools(wire)
    return ChatRequest(model=wire.model, messages=_messages(wire), tools=tools, tool_choice=choice)


def _tools(
    wire: CountTokensRequest,
) -> tuple[list[Tool] | None, ToolChoice | None, bool | None]:
    tools = None
    if wire.tools:
        tools = [
            Tool(
                name=t.name,
                description=t.description,
                parameters=t.input_schema,
                strict=t.strict,
            )
            for t in wire.tools
        ]
    tc = wire.tool_choice
    choice: ToolChoice | None = None
    parallel: bool | None = None
    if isinstance(tc, ToolChoiceAuto):
        choice = "auto"
    elif isinstance(tc, ToolChoiceAny):
        choice = "required"
    elif isinstance(tc, ToolChoiceTool):
        if not tools or all(t.name != tc.name for t in tools):
            raise InvalidRequestError(
                f"tool_choice.name: tool '{tc.name}' is not in 'tools'.", param="tool_choice.name"
            )
        choice = NamedToolChoice(tc.name)
    elif isinstance(tc, ToolChoiceNone):
        choice = "none"
    if tc is not None and not isinstance(tc, ToolChoiceNone) and tc.disable_parallel_tool_use:
        parallel = False
    return tools, choice, parallel


def _image(source: ImageSource) -> ImagePart:
    if isinstance(source, Base64ImageSource):
        return ImagePart(f"data:{source.media_type};base64,{source.data}")
    return ImagePart(source.url)


def _parts(blocks: list[TextBlockParam | ImageBlockParam]) -> str | list[ContentPart]:
    """Text-only content collapses to a string: the cheap, common canonical form."""
    if len(blocks) == 1:
        only = blocks[0]
        if isinstance(only, TextBlockParam):
            return only.text
    return [TextPart(b.text) if isinstance(b, TextBlockParam) else _image(b.source) for b in blocks]


def _messages(wire: CountTokensRequest) -> list[Message]:
    out: list[Message] = []
    system = wire.system
    if isinstance(system, str):
        if system:
            out.append(Message(role="system", content=system))
    elif system:
        out.append(Message(role="system", content=_parts(list(system))))
    for i, m in enumerate(wire.messages):
        if m.role == "assistant":
            out.append(_assistant(m, i))
        else:
            _user(m, i, out)
    return out


def _user(m: MessageParam, index: int, out: list[Message]) -> None:
    role = m.role  # "user" or "system"
    if isinstance(m.content, str):
        out.append(Message(role=role, content=m.content))
        return
    run: list[TextBlockParam | ImageBlockParam] = []
    for j, block in enumerate(m.content):
        if isinstance(block, TextBlockParam | ImageBlockParam):
            run.append(block)
        elif isinstance(block, ToolResultBlockParam) and role == "user":
            if run:
                out.append(Message(role=role, content=_parts(run)))
                run = []
            out.append(_tool_result(block))
        else:
            raise InvalidRequestError(
                f"messages.{index}.content.{j}.type: '{_block_type(block)}' blocks are not "
                f"allowed in '{role}' messages.",
                param=f"messages.{index}.content.{j}.type",
            )
    if run or not m.content:
        out.append(Message(role=role, content=_parts(run) if run else ""))


def _block_type(block: object) -> str:
    return str(type(block).__struct_config__.tag)  # type: ignore[attr-defined]


def _tool_result(block: ToolResultBlockParam) -> Message:
    content = block.content
    parts: str | list[ContentPart]
    if content is None:
        parts = ""
    elif isinstance(content, str):
        parts = content
    else:
        parts = _parts(content) if content else ""
    # Canonical messages have no error flag; the result text itself says what failed.
    return Message(role="tool", content=parts, tool_call_id=block.tool_use_id)


def _assistant(m: MessageParam, index: int) -> Message:
    if isinstance(m.content, str):
        return Message(role="assistant", content=m.content)
    texts: list[TextBlockParam | ImageBlockParam] = []
    calls: list[ToolCall] = []
    reasoning: list[str] = []
    signature: str | None = None
    for j, block in enumerate(m.content):
        if isinstance(block, TextBlockParam | ImageBlockParam):
            texts.append(block)
        elif isinstance(block, ToolUseBlockParam):
            calls.append(ToolCall(block.id, block.name, _encode(block.input).decode()))
        elif isinstance(block, ThinkingBlockParam):
            reasoning.append(block.thinking)
            signature = block.signature or signature
        elif isinstance(block, RedactedThinkingBlockParam):
            # Opaque to every other provider, and canonical messages have no slot for it.
            continue
        else:
            raise InvalidRequestError(
                f"messages.{index}.content.{j}.type: 'tool_result' blocks are only allowed in "
                "'user' messages.",
                param=f"messages.{index}.content.{j}.type",
            )
    content: str | list[ContentPart] | None
    if not texts:
        content = None if calls else ""
    elif all(isinstance(b, TextBlockParam) for b in texts):
        content = "".join(b.text for b in texts)  # type: ignore[union-attr]
    else:
        content = _parts(texts)
    return Message(
        role="assistant",
        content=content,
        tool_calls=calls or None,
        reasoning="".join(reasoning) if reasoning else None,
        reasoning_signature=signature,
    )


# --- responses --------------------------------------------------------------------------


def stop_reason(finish: FinishReason, has_tool_calls: bool, stop_sequence: str | None) -> str:
    """Anthropic's stop_reason for a canonical finish.

    Tool calls answered with finish "stop" (Gemini reports STOP) still mean tool_use:
    Anthropic clients loop on ``stop_reason == "tool_use"``.
    """
    if finish == "stop":
        if has_tool_calls:
            return "tool_use"
        if stop_sequence is not None:
            return "stop_sequence"
    return _STOP_REASONS.get(finish, "end_turn")


def usage_to_wire(usage: Usage | None) -> dict[str, int]:
    """Anthropic counts input tokens *excluding* cache reads and writes; canonical prompt
    tokens include them (OpenAI's accounting), so they are subtracted here."""
    if usage is None:
        return {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    return {
        "input_tokens": max(
            0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
        ),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as Anthropic's ``input`` object.

    Anthropic's ``input`` must be an object. Models on other providers occasionally emit
    arguments that are not a JSON object; those are passed on under ``_raw_arguments``
    rather than dropped, so the client can see what the model produced.
    """
    if not arguments.strip():
        return {}
    try:
        value = _decoder.decode(arguments)
    except msgspec.DecodeError:
        return {"_raw_arguments": arguments}
    if isinstance(value, dict):
        return value
    return {"_raw_arguments": arguments}


def response_to_wire(
    response: ChatResponse, *, id: str, model: str, stop_sequence: str | None = None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if response.reasoning is not None or response.reasoning_signature is not None:
        content.append(
            {
                "type": "thinking",
                "thinking": response.reasoning or "",
                "signature": response.reasoning_signature or "",
            }
        )
    if response.content:
        content.append({"type": "text", "text": response.content})
    calls = response.tool_calls or ()
    for call in calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_input(call.arguments),
            }
        )
    reason = stop_reason(response.finish_reason, bool(calls), stop_sequence)
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop_sequence if reason == "stop_sequence" else None,
        "usage": usage_to_wire(response.usage),
    }


def error_payload(error: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""
    payload: dict[str, Any] = {
        "type": "error",
        "error": {"type": error.anthropic_type, "message": error.message},
    }
    if request_id is not None:
        payload["request_id"] = request_id
    return payload


def error_body(error: GatewayError, request_id: str | None = None) -> bytes:
    return _encode(error_payload(error, request_id))


def approx_input_tokens(request: ChatRequest) -> int:
    """A local, network-free input token estimate, by the mock provider's rule: about
    one token per four characters plus three per message (tool schemas counted too)."""

    def approx(text: str) -> int:
        return max(1, (len(text) + 3) // 4) if text else 0

    total = sum(approx(m.text()) for m in request.messages) + 3 * len(request.messages)
    for m in request.messages:
        for call in m.tool_calls or ():
            total += approx(call.name) + approx(call.arguments)
    for tool in request.tools or ():
        total += approx(tool.name) + approx(tool.description or "")
        total += approx(_encode(tool.parameters).decode() if tool.parameters else "")
    return total
