"""Pure conversions between ``core`` types and Google's Generative Language API (v1beta).

Wire facts this module relies on (checked against the API reference for
``models.generateContent`` / ``models.streamGenerateContent`` and the google-genai SDK's
``types.py``): camelCase JSON; ``contents[]`` of ``{role: "user"|"model", parts[]}``; a
part is one of ``text`` (``thought: true`` marks reasoning), ``inlineData {mimeType,
data}``, ``fileData {fileUri, mimeType}``, ``functionCall {id?, name, args}``,
``functionResponse {name, response}``, and any part may carry ``thoughtSignature``;
``systemInstruction``, ``generationConfig``, ``tools[].functionDeclarations``,
``toolConfig.functionCallingConfig``; responses carry ``candidates[0]``,
``usageMetadata``, ``promptFeedback``, ``modelVersion`` and ``responseId``. A streamed
(``alt=sse``) event is a whole ``GenerateContentResponse`` holding only the new parts.

Choices worth knowing:

* Tool-call ids are never sent upstream. Gemini pairs a ``functionResponse`` with its
  ``functionCall`` by name and position, and several API versions reject an ``id`` in a
  request (``Unknown name "id" at ...function_call``). Ids the API returns are used as
  they are; when absent one is synthesised, deterministic and unique per call
  (``call_<index>_<hash of response id, name, args>``).
* Tool arguments arrive as a JSON object; they are re-serialised with ``json.dumps``'
  default spacing, once per call (never per text chunk).
* ``completion_tokens`` = ``candidatesTokenCount + thoughtsTokenCount`` and
  ``reasoning_tokens`` = ``thoughtsTokenCount``: Gemini counts thoughts *outside*
  candidates, while our ``Usage`` (like OpenAI) counts reasoning as a subset of the
  completion. ``prompt_tokens`` includes ``toolUsePromptTokenCount``. So
  ``prompt + completion == totalTokenCount``.
* Function declarations take a subset of OpenAPI 3.0, not JSON Schema, and the API
  rejects the whole request on the first keyword it does not know. ``sanitize_schema``
  keeps what ``Schema`` defines and converts what has an equivalent.
* Errors are mapped by HTTP status first, then by the structured ``details``
  (``ErrorInfo.reason == API_KEY_INVALID`` is a bad key sent as a 400; ``RetryInfo``
  carries the retry delay). Context overflow has no code, only the message
  "exceeds the maximum number of tokens", so that one check reads the message, and only
  for 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec

from llm_gateway.core.accumulate import Accumulator
from llm_gateway.core.errors import (
    ContextWindowExceededError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamAuthenticationError,
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
    Usage,
)

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
    "sanitize_schema",
    "synthesize_call_id",
    "usage_from_wire",
]

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# --- JSON Schema -> Gemini Schema ------------------------------------------------------

# The fields of the API's ``Schema`` object (an OpenAPI 3.0 subset); anything else is a
# 400 "Invalid JSON payload received. Unknown name ...".
_SCHEMA_KEYS = frozenset(
    [
        "type", "format", "title", "description", "nullable", "enum", "maxItems",
        "minItems", "properties", "required", "minProperties", "maxProperties",
        "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
        "default", "items", "minimum", "maximum",
    ]
)  # fmt: skip
# ``format`` is accepted only with these values (others are rejected, e.g. "uri").
_FORMATS = frozenset(["enum", "date-time", "int32", "int64", "float", "double"])
_MAX_REF_DEPTH = 8
# The JSON type each kept keyword must have (``default`` and ``example`` take anything).
_VALUE_TYPES: dict[str, type | tuple[type, ...]] = {
    "title": str,
    "description": str,
    "pattern": str,
    "nullable": bool,
    "required": list,
    "propertyOrdering": list,
    "minimum": (int, float),
    "maximum": (int, float),
    "minItems": int,
    "maxItems": int,
    "minLength": int,
    "maxLength": int,
    "minProperties": int,
    "maxProperties": int,
}


def _typed(key: str, value: Any) -> bool:
    """Whether ``value`` has the JSON type Gemini expects for ``key``: a keyword it knows
    with a value of the wrong type is a 400 too."""
    expected = _VALUE_TYPES.get(key)
    if expected is None:
        return True
    if isinstance(value, bool) and expected is not bool:
        return False  # bool is an int in Python, not in JSON
    return isinstance(value, expected)


def _resolve_ref(ref: str, root: Mapping[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for key in ref[2:].split("/"):
        key = key.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _merge_all_of(schema: dict[str, Any], parts: list[Any]) -> dict[str, Any]:
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _sanitize(node: Any, root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {}  # a boolean schema ("true": anything) has no Gemini form
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _resolve_ref(ref, root) if depth < _MAX_REF_DEPTH else None
        # A cycle deeper than the limit becomes an unconstrained object.
        base = target if isinstance(target, dict) else {"type": "object"}
        node = {**base, **{k: v for k, v in node.items() if k != "$ref"}}
        depth += 1
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        node = _merge_all_of(node, all_of)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            if isinstance(value, list):
                kinds = [t for t in value if isinstance(t, str) and t != "null"]
                if "null" in value:
                    out["nullable"] = True
                if len(kinds) == 1:
                    out["type"] = kinds[0]
                elif kinds:
                    out["anyOf"] = [{"type": t} for t in kinds]
            elif isinstance(value, str):
                if value == "null":
                    out["nullable"] = True
                else:
                    out["type"] = value
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: _sanitize(sub, root, depth) for name, sub in value.items()}
        elif key == "items":
            item = value[0] if isinstance(value, list) and value else value
            if isinstance(item, dict):
                out["items"] = _sanitize(item, root, depth)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            out["anyOf"] = [_sanitize(sub, root, depth) for sub in value]
        elif key == "const":
            if isinstance(value, str):
                out["enum"] = [value]
        elif key == "enum":
            # Gemini enums are string-only; a numeric enum would be rejected.
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                out["enum"] = value
        elif key == "format":
            if isinstance(value, str) and value in _FORMATS:
                out["format"] = value
        elif key == "exclusiveMinimum" and isinstance(value, int | float):
            out.setdefault("minimum", value)  # approximated: the bound becomes inclusive
        elif key == "exclusiveMaximum" and isinstance(value, int | float):
            out.setdefault("maximum", value)
        elif key == "examples" and isinstance(value, list) and value:
            out.setdefault("example", value[0])
        elif key in _SCHEMA_KEYS and key not in out and _typed(key, value):
            out[key] = value
    props = out.get("properties")
    required = out.get("required")
    if isinstance(required, list):
        # A required name with no property is a 400; keep the order, drop duplicates.
        known = props if isinstance(props, dict) else {}
        kept = list(dict.fromkeys(r for r in required if isinstance(r, str) and r in known))
        if kept:
            out["required"] = kept
        else:
            del out["required"]
    return out


def sanitize_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema rewritten into the subset Gemini's ``Schema`` accepts.

    Drops unknown keywords (``additionalProperties``, ``$schema``, ``$defs``,
    ``patternProperties``, ``uniqueItems``, ``multipleOf``, ``not``...), inlines local
    ``$ref``s, merges ``allOf``, turns ``oneOf`` into ``anyOf``, ``const`` into a one-value
    ``enum``, ``type: [X, "null"]`` into ``type: X, nullable: true``, and keeps ``format``
    and ``enum`` only where Gemini takes them.
    """
    return _sanitize(dict(schema), schema, 0)


def _parameters(schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not schema:
        return None
    clean = sanitize_schema(schema)
    # An OBJECT without properties is rejected ("properties: should be non-empty for
    # OBJECT type"); a function without parameters is the same thing, spelled validly.
    if clean.get("type") == "object" and not clean.get("properties"):
        return None
    return clean


# --- request ---------------------------------------------------------------------------

# Thinking budgets Google's own OpenAI-compatibility layer uses for reasoning_effort.
_EFFORT_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
_DETAIL_TO_RESOLUTION = {"low": "MEDIA_RESOLUTION_LOW", "high": "MEDIA_RESOLUTION_HIGH"}


def _image_part(part: ImagePart) -> dict[str, Any]:
    url = part.url
    out: dict[str, Any]
    if url.startswith("data:"):
        header, _, payload = url[5:].partition(",")
        mime, _, params = header.partition(";")
        if params.endswith("base64") or ";base64" in header:
            data = payload
        else:  # a percent-encoded data URL: Gemini wants base64
            data = base64.b64encode(unquote_to_bytes(payload)).decode("ascii")
        out = {"inlineData": {"mimeType": mime or "application/octet-stream", "data": data}}
    else:
        # gs://, Files API and (on current models) public http(s) URLs. The API wants a
        # MIME type; guess it from the path and fall back to JPEG, the common case.
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
        out = {"fileData": {"mimeType": mime, "fileUri": url}}
    level = _DETAIL_TO_RESOLUTION.get(part.detail or "")
    if level is not None:
        # Per-part media resolution (Gemini 3); "auto" means the model's default.
        out["mediaResolution"] = {"level": level}
    return out


def _user_parts(content: str | list[Any] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_image_part(part))
    return parts


def _call_args(arguments: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    # History from another provider may hold non-object arguments; Gemini needs an
    # object, and refusing the whole conversation over it would help nobody.
    return {"arguments": arguments}


def _tool_response(text: str) -> dict[str, Any]:
    """``functionResponse.response`` must be an object: a JSON object goes as it is,
    anything else (plain text, a JSON string or number) is wrapped as ``{"result": text}``
    so the model sees exactly what the tool returned."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    return {"result": text}


def _model_parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = message.content if isinstance(message.content, str) else message.text()
    if text:
        parts.append({"text": text})
    for call in message.tool_calls or ():
        parts.append({"functionCall": {"name": call.name, "args": _call_args(call.arguments)}})
    signature = message.reasoning_signature
    if signature and parts:
        # The signature belongs on the first function call of the turn (the API checks
        # it there) or, for a text-only turn, on its last part.
        target = next((p for p in parts if "functionCall" in p), parts[-1])
        target["thoughtSignature"] = signature
    return parts


def _contents(
    messages: Iterable[Message],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for functionResponse
    for index, message in enumerate(messages):
        role = message.role
        if role == "system":
            text = message.text()
            if text:
                system.append({"text": text})
            continue
        if role == "assistant":
            for call in message.tool_calls or ():
                names[call.id] = call.name
            wire_role, parts = "model", _model_parts(message)
        elif role == "tool":
            name = names.get(message.tool_call_id or "") or message.name
            if not name:
                raise InvalidRequestError(
                    f"messages[{index}]: tool result for unknown tool_call_id "
                    f"{message.tool_call_id!r}; Gemini needs the function name",
                    param=f"messages[{index}].tool_call_id",
                )
            response = _tool_response(message.text())
            wire_role, parts = "user", [{"functionResponse": {"name": name, "response": response}}]
        else:
            wire_role, parts = "user", _user_parts(message.content)
        if not parts:
            continue  # an empty turn is a 400; an empty message adds nothing
        if contents and contents[-1]["role"] == wire_role:
            # Gemini wants turns to alternate, and all results of one round of
            # (parallel) calls in one turn, so same-role neighbours are merged.
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": wire_role, "parts": parts})
    return system, contents


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        config: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    else:
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice)
        if mode is None:
            return None
        config = {"mode": mode}
    return {"functionCallingConfig": config}


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {"candidateCount": 1}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = request.stop
    if request.seed is not None:
        config["seed"] = request.seed
    extra = request.extra
    if extra:
        top_k = extra.get("top_k", extra.get("topK"))
        if isinstance(top_k, int) and not isinstance(top_k, bool):
            config["topK"] = top_k
        for source, target in (
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
        ):
            value = extra.get(source)
            if isinstance(value, int | float) and not isinstance(value, bool):
                config[target] = value
        thinking = extra.get("thinking_config", extra.get("thinkingConfig"))
        if isinstance(thinking, dict):
            config["thinkingConfig"] = thinking
        else:
            budget = _EFFORT_BUDGET.get(str(extra.get("reasoning_effort")))
            if budget is not None:
                config["thinkingConfig"] = {
                    "thinkingBudget": budget,
                    "includeThoughts": budget > 0,
                }
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        schema = (fmt.json_schema or {}).get("schema") if fmt.type == "json_schema" else None
        if isinstance(schema, dict):
            # responseSchema (the OpenAPI subset) works on every model, unlike
            # responseJsonSchema; the same sanitiser as tools makes it acceptable.
            config["responseSchema"] = sanitize_schema(schema)
    return config


def request_to_wire(request: ChatRequest) -> dict[str, Any]:
    """The ``generateContent`` body for ``request`` (the model goes in the URL)."""
    system, contents = _contents(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        declarations = []
        for tool in request.tools:
            declaration: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                declaration["description"] = tool.description
            parameters = _parameters(tool.parameters)
            if parameters is not None:
                declaration["parameters"] = parameters
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(request.tool_choice)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    body["generationConfig"] = _generation_config(request)
    safety = request.extra.get("safety_settings", request.extra.get("safetySettings"))
    if isinstance(safety, list):
        body["safetySettings"] = safety
    return body


def encode_request(request: ChatRequest) -> bytes:
    return _encode(request_to_wire(request))


# --- usage, finish ---------------------------------------------------------------------

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


def finish_reason_from_wire(reason: Any, has_calls: bool = False) -> FinishReason | None:
    """STOP with function calls is ``tool_calls`` (clients key on it); unknown reasons
    (LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, ...) are ``stop``."""
    if not reason or not isinstance(reason, str):
        return None
    finish = _FINISH.get(reason, "stop")
    if finish == "stop" and has_calls:
        return "tool_calls"
    return finish


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_wire(meta: Mapping[str, Any]) -> Usage:
    """``usageMetadata`` normalised; see the module doc for how thoughts are counted."""
    prompt = _int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount"))
    thoughts = _int(meta.get("thoughtsTokenCount"))
    completion = _int(meta.get("candidatesTokenCount")) + thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(meta.get("totalTokenCount")) or prompt + completion,
        cached_tokens=_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def synthesize_call_id(response_id: str, index: int, name: str, arguments: str) -> str:
    """A tool-call id for a ``functionCall`` that came without one: the same call always
    gets the same id (streamed or not), different calls of one response never share one."""
    digest = hashlib.blake2b(
        f"{response_id}\x00{index}\x00{name}\x00{arguments}".encode(), digest_size=8
    ).hexdigest()
    return f"call_{index}_{digest}"


# --- response and stream chunks ---------------------------------------------------------


class StreamState:
    """What one response remembers between chunks: how many calls it has seen (their
    dense index), the finish reason (emitted once), the latest usage (emitted once, at the
    end: every chunk repeats the running totals) and the response id (for call ids)."""

    __slots__ = ("calls", "finish", "response_id", "usage")

    def __init__(self) -> None:
        self.calls = 0
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.response_id = ""


def _error_in(chunk: Mapping[str, Any]) -> GatewayError | None:
    error = chunk.get("error")
    if error is None:
        return None
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and 400 <= code <= 599 else 502
    return error_from_payload(chunk, status, {}, None)


def chunk_to_events(chunk: Any, state: StreamState) -> list[StreamEvent]:
    """The events in one decoded ``GenerateContentResponse`` (a stream chunk, or a whole
    non-streamed response). Raises a GatewayError for an in-stream ``{"error": ...}`` and
    an UpstreamError for a chunk of the wrong shape."""
    if not isinstance(chunk, dict):
        raise UpstreamError("malformed stream chunk: not a JSON object")
    failure = _error_in(chunk)
    if failure is not None:
        raise failure
    if not state.response_id:
        response_id = chunk.get("responseId")
        if isinstance(response_id, str):
            state.response_id = response_id
    events: list[StreamEvent] = []
    candidates = chunk.get("candidates")
    if candidates:
        candidate = candidates[0]
        content = candidate.get("content") or {}
        for part in content.get("parts") or ():
            text = part.get("text")
            call = part.get("functionCall")
            if text:
                events.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
            elif call is not None:
                name = call.get("name") or ""
                args = call.get("args")
                arguments = json.dumps(args if args is not None else {}, ensure_ascii=False)
                index = state.calls
                state.calls += 1
                call_id = call.get("id") or synthesize_call_id(
                    state.response_id, index, name, arguments
                )
                events.append(ToolCallDelta(index, call_id, name, arguments))
            signature = part.get("thoughtSignature")
            if signature:
                events.append(ReasoningDelta("", signature=signature))
        reason = candidate.get("finishReason")
        if reason and state.finish is None:
            finish = finish_reason_from_wire(reason, state.calls > 0)
            if finish is not None:
                state.finish = finish
                events.append(FinishEvent(finish))
    elif state.finish is None:
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            # The prompt itself was blocked: no candidates at all. That is a finished,
            # filtered answer with no content, not a broken response.
            state.finish = "content_filter"
            events.append(FinishEvent("content_filter"))
    usage = chunk.get("usageMetadata")
    if isinstance(usage, dict):
        state.usage = usage_from_wire(usage)
    return events


def end_events(state: StreamState) -> list[StreamEvent]:
    """Events held until the stream ended cleanly: the usage, reported once."""
    return [UsageEvent(state.usage)] if state.usage is not None else []


def response_from_wire(data: Any, *, model: str = "", provider: str | None = None) -> ChatResponse:
    """A non-streaming response, built through the same chunk parser and the core
    accumulator, so a streamed and a non-streamed answer can never disagree."""
    if not isinstance(data, dict):
        raise UpstreamError("upstream response is not a JSON object", provider=provider)
    state = StreamState()
    try:
        events = chunk_to_events(data, state)
    except GatewayError as exc:
        exc.provider = provider
        raise
    except (AttributeError, TypeError, KeyError) as exc:
        raise UpstreamError(f"malformed upstream response: {exc}", provider=provider) from exc
    if state.finish is None and not events:
        raise UpstreamError("upstream response has no candidates", provider=provider)
    acc = Accumulator()
    for event in events + end_events(state):
        acc.add(event)
    version = data.get("modelVersion")
    return acc.response(
        id=state.response_id,
        model=version if isinstance(version, str) and version else model,
        created=int(time.time()),
    )


def models_from_wire(data: Any, owned_by: str) -> list[ModelInfo]:
    """``GET /models``: names lose their ``models/`` prefix; models that cannot
    ``generateContent`` (embedding, AQA) are left out."""
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise UpstreamError("model list is not a list")
    models = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        methods = item.get("supportedGenerationMethods")
        if isinstance(methods, list) and "generateContent" not in methods:
            continue
        name: str = item["name"]
        models.append(ModelInfo(id=name.removeprefix("models/"), owned_by=owned_by))
    return models


# --- errors ----------------------------------------------------------------------------


def _duration_seconds(value: Any) -> float | None:
    """A protobuf Duration in JSON form ("17s", "0.5s") as seconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            seconds = float(value[:-1])
        except ValueError:
            return None
        return seconds if seconds >= 0 else None
    return None


def _detail_reasons(details: Any) -> tuple[set[str], float | None]:
    reasons: set[str] = set()
    delay = None
    if isinstance(details, list):
        for detail in details:
            if not isinstance(detail, dict):
                continue
            kind = str(detail.get("@type", ""))
            if kind.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
                reasons.add(detail["reason"])
            elif kind.endswith("google.rpc.RetryInfo"):
                delay = _duration_seconds(detail.get("retryDelay"))
    return reasons, delay


_BAD_KEY_REASONS = frozenset(["API_KEY_INVALID", "API_KEY_EXPIRED", "ACCESS_TOKEN_EXPIRED"])


def error_from_payload(
    payload: Any, status: int, headers: Mapping[str, str], provider: str | None
) -> GatewayError:
    """Map Google's ``{"error": {code, message, status, details}}`` (also inside a
    one-element list, as some endpoints send it) or a bare string."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    message = google_status = None
    reasons: set[str] = set()
    delay = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            raw = error.get("message")
            message = raw if isinstance(raw, str) else None
            google_status = error.get("status") if isinstance(error.get("status"), str) else None
            reasons, delay = _detail_reasons(error.get("details"))
        elif isinstance(error, str):
            message = error
    elif isinstance(payload, str) and payload:
        message = payload
    cls = error_for_status(status)
    if reasons & _BAD_KEY_REASONS:
        # Google answers a bad key with 400 INVALID_ARGUMENT; it is the gateway's own
        # credential that failed, so the caller must see an authentication error.
        cls = UpstreamAuthenticationError
    elif status == 404:
        cls = ModelNotFoundError
    elif status == 400 and message and "exceeds the maximum number of tokens" in message.lower():
        cls = ContextWindowExceededError
    text = message or f"upstream returned HTTP {status}"
    if google_status:
        text = f"{text} ({google_status})"
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        retry_after = delay
    return cls(text, retry_after=retry_after, provider=provider, upstream_status=status)


def error_from_wire(
    status: int, headers: Mapping[str, str], body: bytes, provider: str | None
) -> GatewayError:
    """Map an upstream error response; ``headers`` must have lower-case keys."""
    payload: Any
    try:
        payload = _decode(body) if body else None
    except msgspec.DecodeError:
        payload = body[:500].decode("utf-8", "replace").strip()
    return error_from_payload(payload, status, headers, provider)
