"""Pure conversions between ``core`` types and the Bedrock Converse wire format.

Shapes follow the Bedrock Runtime API reference (Converse, ConverseStream) and its
Smithy model as shipped in botocore (``bedrock-runtime/2023-09-30/service-2.json``).
No I/O; the adapter (``provider.py``) signs and sends what ``encode_request`` returns.

Model differences are data, not branches: ``traits_for`` looks a model id up in
``_TRAITS`` (by vendor prefix, after stripping a cross-region inference-profile prefix
such as ``us.`` or an ARN). Two documented differences matter on the request path:

* ``toolChoice``: AWS documents ``any`` for Claude 3+, Mistral Large and Nova, and the
  named ``tool`` for Claude 3+ and Nova; Llama and the small Mistral models answer 400
  ("This model doesn't support the toolConfig.toolChoice.any field"). Where a family does
  not take a choice we leave it out (the model still sees the tools) rather than fail,
  and a named tool on Mistral Large becomes ``any``.
* ``system``: Mistral 7B/Mixtral Instruct and Titan Text do not take system prompts
  ("Supported models and model features" table); for those the system text leads the
  first user turn instead.

Unknown vendors (custom model ARNs, new families) get the request as asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from llm_gateway.core.errors import (
    InvalidRequestError,
    UpstreamError,
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
    NamedToolChoice,
    TextPart,
    ToolCall,
    Usage,
)

__all__ = [
    "ModelTraits",
    "StreamState",
    "encode_request",
    "event_to_events",
    "finish_reason_from_wire",
    "request_to_wire",
    "response_from_wire",
    "traits_for",
    "usage_from_wire",
]

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# --- model traits ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelTraits:
    system_prompt: bool = True
    tool_choice_any: bool = True
    tool_choice_tool: bool = True
    tool_choice_auto: bool = True


_AUTO_ONLY = ModelTraits(tool_choice_any=False, tool_choice_tool=False)
# Longest prefix wins; matched against the model id without region prefix or ARN.
_TRAITS: tuple[tuple[str, ModelTraits], ...] = (
    ("anthropic.", ModelTraits()),
    ("amazon.nova", ModelTraits()),
    ("amazon.titan", ModelTraits(system_prompt=False, tool_choice_any=False,
                                 tool_choice_tool=False, tool_choice_auto=False)),
    ("mistral.mistral-large", ModelTraits(tool_choice_tool=False)),
    ("mistral.mistral-7b-instruct", ModelTraits(system_prompt=False, tool_choice_any=False,
                                                tool_choice_tool=False, tool_choice_auto=False)),
    ("mistral.mixtral-8x7b-instruct", ModelTraits(system_prompt=False, tool_choice_any=False,
                                                  tool_choice_tool=False, tool_choice_auto=False)),
    ("mistral.", _AUTO_ONLY),
    ("meta.", _AUTO_ONLY),
    ("cohere.", _AUTO_ONLY),
    ("ai21.", _AUTO_ONLY),
)  # fmt: skip
_VENDORS = frozenset(
    {"anthropic", "amazon", "meta", "mistral", "cohere", "ai21", "deepseek", "writer",
     "qwen", "openai", "twelvelabs", "stability", "luma", "moonshot", "google", "minimax"}
)  # fmt: skip
_DEFAULT_TRAITS = ModelTraits()


def base_model_id(model: str) -> str:
    """``us.anthropic.claude-…`` or an inference-profile ARN → ``anthropic.claude-…``."""
    if model.startswith("arn:"):
        model = model.rsplit("/", 1)[-1]
    head, dot, rest = model.partition(".")
    if dot and "." in rest and head not in _VENDORS:
        return rest  # a geography prefix: us., eu., apac., global., us-gov., jp., ...
    return model


def traits_for(model: str) -> ModelTraits:
    base = base_model_id(model)
    best: tuple[int, ModelTraits] = (0, _DEFAULT_TRAITS)
    for prefix, traits in _TRAITS:
        if base.startswith(prefix) and len(prefix) > best[0]:
            best = (len(prefix), traits)
    return best[1]


# --- request -----------------------------------------------------------------------------

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
# OpenAI-dialect parameters with no Converse equivalent: dropped rather than forwarded to
# additionalModelRequestFields, where every model family would reject them with a 400.
_OPENAI_ONLY = frozenset(
    {"presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "n", "logit_bias",
     "stream_options", "service_tier", "store", "metadata", "modalities", "prediction",
     "audio", "max_completion_tokens", "reasoning_effort", "web_search_options", "verbosity",
     "user", "safe_prompt", "random_seed", "prompt_cache_key", "safety_identifier"}
)  # fmt: skip
_TOOL_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def tool_use_id(call_id: str) -> str:
    """A tool-call id Bedrock accepts (``[a-zA-Z0-9_-]+``, at most 64 characters).

    Ids minted by other providers usually pass unchanged; anything else is mapped the
    same way for the call and its result, so they still pair up.
    """
    if call_id and len(call_id) <= 64 and all(c in _TOOL_ID_OK for c in call_id):
        return call_id
    cleaned = "".join(c if c in _TOOL_ID_OK else "_" for c in call_id)[:64]
    return cleaned or "tool_call"


def _image_block(part: ImagePart, where: str) -> dict[str, Any]:
    url = part.url
    if not url.startswith("data:"):
        raise InvalidRequestError(
            "Bedrock takes images inline only: send the image as a data: URL "
            "(data:image/png;base64,...), not an http(s) URL",
            param=where,
        )
    header, comma, data = url.partition(",")
    mime = header[5:].split(";", 1)[0].strip().lower()
    fmt = _IMAGE_FORMATS.get(mime)
    if not comma or fmt is None or ";base64" not in header.lower():
        raise InvalidRequestError(
            "image must be a base64 data: URL of type png, jpeg, gif or webp", param=where
        )
    # Blobs travel base64-encoded in REST-JSON, which is what the data URL already holds.
    return {"image": {"format": fmt, "source": {"bytes": "".join(data.split())}}}


def _user_blocks(content: str | list[Any] | None, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        # Bedrock rejects blank text blocks ("The text field in the ContentBlock is blank").
        return [{"text": content}] if content.strip() else []
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text.strip():
                blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part, f"{where}.content[{i}]"))
    return blocks


def _tool_input(arguments: str, where: str) -> Any:
    if not arguments.strip():
        return {}
    try:
        return _decode(arguments)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(
            f"tool call arguments are not valid JSON: {arguments[:100]!r}", param=where
        ) from exc


def _assistant_blocks(message: Message, where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    # Reasoning goes back only with its signature: Claude requires the signed block on
    # tool-use turns with thinking enabled, and no model wants unsigned reasoning text.
    if message.reasoning and message.reasoning_signature:
        blocks.append(
            {
                "reasoningContent": {
                    "reasoningText": {
                        "text": message.reasoning,
                        "signature": message.reasoning_signature,
                    }
                }
            }
        )
    text = message.text()
    if text.strip():
        blocks.append({"text": text})
    for j, call in enumerate(message.tool_calls or ()):
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": tool_use_id(call.id),
                    "name": call.name,
                    "input": _tool_input(call.arguments, f"{where}.tool_calls[{j}].arguments"),
                }
            }
        )
    return blocks


def _messages(
    request: ChatRequest, traits: ModelTraits
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str], bool]:
    """(system blocks, turns, tool names used in history, history has tool blocks)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    used_names: set[str] = set()
    has_tool_blocks = False

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        # Converse wants strictly alternating turns: consecutive same-role messages
        # (tool results followed by a user message, say) become one turn.
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for i, message in enumerate(request.messages):
        where = f"messages[{i}]"
        role = message.role
        if role == "system":
            text = message.text()
            if text.strip():
                system.append({"text": text})
        elif role == "tool":
            has_tool_blocks = True
            text = message.text()
            result: dict[str, Any] = {
                "toolUseId": tool_use_id(message.tool_call_id or ""),
                "content": [{"text": text}] if text else [],
            }
            push("user", [{"toolResult": result}])
        elif role == "assistant":
            if message.tool_calls:
                has_tool_blocks = True
                used_names.update(call.name for call in message.tool_calls)
            push("assistant", _assistant_blocks(message, where))
        else:
            push("user", _user_blocks(message.content, where))
    if system and not traits.system_prompt:
        lead = [{"text": "\n\n".join(block["text"] for block in system)}]
        if turns and turns[0]["role"] == "user":
            turns[0]["content"][:0] = lead
        else:
            turns.insert(0, {"role": "user", "content": lead})
        system = []
    return system, turns, used_names, has_tool_blocks


def _tool_config(
    request: ChatRequest, traits: ModelTraits, used_names: set[str], has_tool_blocks: bool
) -> dict[str, Any] | None:
    choice = request.tool_choice
    tools: list[dict[str, Any]] = []
    if request.tools and (choice != "none" or has_tool_blocks):
        for tool in request.tools:
            spec: dict[str, Any] = {
                "name": tool.name,
                "inputSchema": {"json": tool.parameters or {"type": "object", "properties": {}}},
            }
            if tool.description:
                spec["description"] = tool.description
            if tool.strict is not None:
                spec["strict"] = tool.strict
            tools.append({"toolSpec": spec})
    elif has_tool_blocks:
        # Bedrock answers 400 ("The toolConfig field must be defined when using toolUse and
        # toolResult content blocks") to a history with tool turns and no tools, which is
        # what a summarising follow-up sends; declare the tools the history names.
        for name in sorted(used_names) or ["tool"]:
            tools.append(
                {
                    "toolSpec": {
                        "name": name,
                        "description": "A tool used earlier in this conversation.",
                        "inputSchema": {"json": {"type": "object", "properties": {}}},
                    }
                }
            )
    if not tools:
        return None
    config: dict[str, Any] = {"tools": tools}
    if isinstance(choice, NamedToolChoice):
        if traits.tool_choice_tool:
            config["toolChoice"] = {"tool": {"name": choice.name}}
        elif traits.tool_choice_any:
            config["toolChoice"] = {"any": {}}
    elif choice == "required":
        if traits.tool_choice_any:
            config["toolChoice"] = {"any": {}}
    elif choice == "auto" and traits.tool_choice_auto:
        config["toolChoice"] = {"auto": {}}
    # "none" has no Converse value: the tools were left out above unless history needs them.
    return config


def request_to_wire(request: ChatRequest, model: str) -> dict[str, Any]:
    """The Converse/ConverseStream body (the model id travels in the URL path)."""
    traits = traits_for(model)
    system, turns, used_names, has_tool_blocks = _messages(request, traits)
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        stops = [s for s in request.stop if s]
        if stops:
            inference["stopSequences"] = stops
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(request, traits, used_names, has_tool_blocks)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    if request.extra:
        # Model-native parameters (top_k, Claude's thinking, ...) go to
        # additionalModelRequestFields; an explicit ``additionalModelRequestFields`` object
        # is merged as is. OpenAI-only knobs are dropped (see _OPENAI_ONLY).
        extra_fields: dict[str, Any] = {}
        for key, value in request.extra.items():
            if key == "additionalModelRequestFields" and isinstance(value, dict):
                extra_fields.update(value)
            elif key not in _OPENAI_ONLY:
                extra_fields[key] = value
        if extra_fields:
            body["additionalModelRequestFields"] = extra_fields
    return body


def encode_request(request: ChatRequest, model: str) -> bytes:
    return _encode(request_to_wire(request, model))


# --- response, usage, finish -------------------------------------------------------------

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}


def finish_reason_from_wire(reason: Any) -> FinishReason | None:
    if not reason or not isinstance(reason, str):
        return None
    return _FINISH.get(reason, "stop")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_wire(data: Mapping[str, Any]) -> Usage:
    """Bedrock's ``inputTokens`` excludes prompt-cache reads and writes (AWS "Prompt
    caching" guide); in the canonical accounting both are part of the prompt."""
    cached = _int(data.get("cacheReadInputTokens"))
    written = _int(data.get("cacheWriteInputTokens"))
    prompt = _int(data.get("inputTokens")) + cached + written
    completion = _int(data.get("outputTokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cached,
        cache_write_tokens=written,
    )


def _arguments(value: Any) -> str:
    # Conventional ``json.dumps`` spacing, as most OpenAI clients print arguments.
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def response_from_wire(data: Any, *, model: str, provider: str | None = None) -> ChatResponse:
    """A Converse response; a body without ``output.message`` is an UpstreamError."""
    if not isinstance(data, dict):
        raise UpstreamError("upstream response is not a JSON object", provider=provider)
    output = data.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise UpstreamError("upstream response has no output.message", provider=provider)
    texts: list[str] = []
    reasoning: list[str] = []
    signature: str | None = None
    calls: list[ToolCall] = []
    for block in message["content"]:
        if not isinstance(block, dict):
            continue
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"] or {}
            calls.append(
                ToolCall(
                    id=str(use.get("toolUseId") or ""),
                    name=str(use.get("name") or ""),
                    arguments=_arguments(use.get("input")),
                )
            )
        elif "reasoningContent" in block:
            text_block = (block["reasoningContent"] or {}).get("reasoningText") or {}
            if text_block.get("text"):
                reasoning.append(str(text_block["text"]))
            if text_block.get("signature"):
                signature = str(text_block["signature"])
    finish = finish_reason_from_wire(data.get("stopReason")) or ("tool_calls" if calls else "stop")
    if calls and finish == "stop":
        finish = "tool_calls"
    usage = data.get("usage")
    return ChatResponse(
        id=f"bedrock-{time.time_ns():x}",
        model=model,
        created=int(time.time()),
        content="".join(texts) if texts or not calls else None,
        reasoning="".join(reasoning) if reasoning else None,
        reasoning_signature=signature,
        tool_calls=calls or None,
        finish_reason=finish,
        usage=usage_from_wire(usage) if isinstance(usage, dict) else None,
    )


# --- streaming ---------------------------------------------------------------------------


class StreamState:
    """What one ConverseStream remembers between events: which content blocks are tool
    calls (and their dense tool index), the finish reason and the usage."""

    __slots__ = ("finish", "saw_tool_calls", "tools", "usage")

    def __init__(self) -> None:
        self.tools: dict[int, int] = {}  # contentBlockIndex -> dense tool-call index
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.saw_tool_calls = False

    def tool_index(self, block: int) -> int:
        index = self.tools.get(block)
        if index is None:
            index = self.tools[block] = len(self.tools)
        return index


def event_to_events(event_type: str, payload: Any, state: StreamState) -> list[StreamEvent]:
    """The canonical events for one decoded ConverseStream event.

    Raises UpstreamError for a payload of the wrong shape (the adapter adds the provider).
    """
    if not isinstance(payload, dict):
        raise UpstreamError(f"malformed stream event {event_type!r}: not a JSON object")
    if event_type == "contentBlockDelta":
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            raise UpstreamError("malformed stream event 'contentBlockDelta': no delta")
        text = delta.get("text")
        if text is not None:
            return [TextDelta(text)] if text else []
        use = delta.get("toolUse")
        if use is not None:
            fragment = use.get("input") or ""
            index = state.tool_index(_int(payload.get("contentBlockIndex")))
            return [ToolCallDelta(index=index, arguments=fragment)] if fragment else []
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            if reasoning.get("text"):
                return [ReasoningDelta(reasoning["text"])]
            if reasoning.get("signature"):
                return [ReasoningDelta("", signature=reasoning["signature"])]
        return []  # citations, redacted reasoning, image deltas: nothing canonical to say
    if event_type == "contentBlockStart":
        start = payload.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if isinstance(use, dict):
            state.saw_tool_calls = True
            index = state.tool_index(_int(payload.get("contentBlockIndex")))
            return [ToolCallDelta(index=index, id=use.get("toolUseId"), name=use.get("name"))]
        return []
    if event_type == "messageStop":
        finish = finish_reason_from_wire(payload.get("stopReason")) or "stop"
        if finish == "stop" and state.saw_tool_calls:
            finish = "tool_calls"
        if state.finish is None:
            state.finish = finish
            return [FinishEvent(finish)]
        return []
    if event_type == "metadata":
        usage = payload.get("usage")
        if isinstance(usage, dict):
            state.usage = usage_from_wire(usage)
            return [UsageEvent(state.usage)]
        return []
    # messageStart, contentBlockStop and event types added later carry nothing we map.
    return []
