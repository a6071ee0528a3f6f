"""A fake Gemini (Generative Language API v1beta) upstream, as a raw ASGI app.

It speaks the wire format the real API does: ``POST /v1beta/models/{model}:generateContent``
answers one ``GenerateContentResponse``; ``:streamGenerateContent?alt=sse`` answers
``data: {...}\\r\\n\\r\\n`` events, each a whole response object holding only the new parts,
and then simply ends (no ``[DONE]``). Reasoning is rendered as ``thought: true`` parts with a
``thoughtSignature``; tool calls arrive whole, one ``functionCall`` part each, with an ``id``
only when ``call_ids`` is on (current models return ids, older ones do not); every chunk
carries the running ``usageMetadata`` and the last one the full counts, with
``thoughtsTokenCount`` outside ``candidatesTokenCount`` as Gemini counts it. Errors use
Google's ``{"error": {code, message, status, details}}``: a bad key is a 400 INVALID_ARGUMENT
with an ``API_KEY_INVALID`` ErrorInfo, a rate limit a 429 with a RetryInfo ``retryDelay``.

It rejects what the real API rejects: a missing or wrong ``x-goog-api-key``, unknown fields
(also inside function-declaration schemas: ``additionalProperties``, ``$schema``...), a role
other than user/model, empty turns, and function responses that do not answer the function
calls of the previous model turn by name and count.

Tests ``queue`` scenarios; requests are recorded (``requests``; ``read()`` parses one back
into a canonical ChatRequest) and so are client disconnects before a response finished.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from llm_gateway.core.types import (
    ChatRequest,
    ImagePart,
    Message,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
)
from tests.fakes.openai_upstream import Disconnect, RecordedRequest
from tests.fakes.scenarios import ErrorSpec, Scenario, UsageSpec

__all__ = [
    "GeminiUpstream",
    "read_request",
    "render_chunks",
    "render_error",
    "render_response",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SIGNATURE = "Q2lJQmZha2UtdGhvdWdodC1zaWduYXR1cmU="  # an opaque base64 blob, like the real one

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_TOP_LEVEL = frozenset(
    ["contents", "systemInstruction", "generationConfig", "tools", "toolConfig",
     "safetySettings", "cachedContent"]
)  # fmt: skip
_GENERATION = frozenset(
    ["stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
     "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed",
     "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
     "thinkingConfig", "mediaResolution", "responseModalities"]
)  # fmt: skip
_SCHEMA = frozenset(
    ["type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
     "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
     "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
     "maximum"]
)  # fmt: skip
_PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
_RESOLUTION_TO_DETAIL = {"MEDIA_RESOLUTION_LOW": "low", "MEDIA_RESOLUTION_HIGH": "high"}


class _Abort(Exception):
    """Raised inside the app to make the server drop the connection mid-body."""


class _Rejected(Exception):
    def __init__(self, status: int, google_status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.google_status = google_status
        self.message = message


# --- rendering (pure, reused by the unit tests) -------------------------------------------


def _usage(usage: UsageSpec, *, final: bool = True) -> dict[str, Any]:
    if not final:
        # Intermediate chunks carry the running totals: the prompt is known up front.
        return {"promptTokenCount": usage.prompt_tokens, "totalTokenCount": usage.prompt_tokens}
    out: dict[str, Any] = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens - usage.reasoning_tokens,
        "totalTokenCount": usage.total_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage.prompt_tokens}],
    }
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def _call_part(call: Any, call_ids: bool, signed: bool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": call.name, "args": json.loads(call.arguments)}
    if call_ids:
        function["id"] = call.id
    part: dict[str, Any] = {"functionCall": function}
    if signed:
        part["thoughtSignature"] = SIGNATURE
    return part


def _candidate(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
        if finish == "SAFETY":
            candidate["safetyRatings"] = [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
            ]
    return candidate


def render_response(
    scenario: Scenario, model: str, response_id: str = "fake-response", call_ids: bool = True
) -> dict[str, Any]:
    """The non-streamed ``GenerateContentResponse`` for ``scenario``."""
    parts: list[dict[str, Any]] = []
    signed = bool(scenario.reasoning)
    if scenario.reasoning:
        thought: dict[str, Any] = {"text": "".join(scenario.reasoning), "thought": True}
        if not scenario.full_text and not scenario.tool_calls:
            thought["thoughtSignature"] = SIGNATURE  # nothing else to carry it
        parts.append(thought)
    if scenario.full_text:
        text: dict[str, Any] = {"text": scenario.full_text}
        if signed and not scenario.tool_calls:
            text["thoughtSignature"] = SIGNATURE
        parts.append(text)
    for i, call in enumerate(scenario.tool_calls):
        parts.append(_call_part(call, call_ids, signed and i == 0))
    out: dict[str, Any] = {
        "candidates": [_candidate(parts, _FINISH[scenario.finish_reason])],
        "modelVersion": scenario.model or model,
        "responseId": response_id,
    }
    if scenario.usage is not None:
        out["usageMetadata"] = _usage(scenario.usage)
    return out


def render_chunks(
    scenario: Scenario, model: str, response_id: str = "fake-response", call_ids: bool = True
) -> list[dict[str, Any]]:
    """The ``alt=sse`` chunks for ``scenario``: an opening chunk (an empty text part and
    the prompt count, as thinking models open), one per reasoning/text piece and per tool
    call, then a closing chunk with the finish reason and the full usage."""
    base = {"modelVersion": scenario.model or model, "responseId": response_id}
    running = {"usageMetadata": _usage(scenario.usage, final=False)} if scenario.usage else {}
    chunks: list[dict[str, Any]] = [{"candidates": [_candidate([{"text": ""}])], **running, **base}]
    signed = bool(scenario.reasoning)
    unsigned_answer = not scenario.text and not scenario.tool_calls
    for i, piece in enumerate(scenario.reasoning):
        thought: dict[str, Any] = {"text": piece, "thought": True}
        if unsigned_answer and i == len(scenario.reasoning) - 1:
            thought["thoughtSignature"] = SIGNATURE
        chunks.append({"candidates": [_candidate([thought])], **running, **base})
    for i, piece in enumerate(scenario.text):
        part: dict[str, Any] = {"text": piece}
        if signed and i == 0 and not scenario.tool_calls:
            part["thoughtSignature"] = SIGNATURE
        chunks.append({"candidates": [_candidate([part])], **running, **base})
    for i, call in enumerate(scenario.tool_calls):
        part = _call_part(call, call_ids, signed and i == 0)
        chunks.append({"candidates": [_candidate([part])], **running, **base})
    final: dict[str, Any] = {
        "candidates": [_candidate([{"text": ""}], _FINISH[scenario.finish_reason])],
        **base,
    }
    if scenario.usage is not None:
        final["usageMetadata"] = _usage(scenario.usage)
    chunks.append(final)
    return chunks


_ERRORS: dict[str, tuple[int, str]] = {
    "auth": (400, "INVALID_ARGUMENT"),
    "rate_limit": (429, "RESOURCE_EXHAUSTED"),
    "server": (500, "INTERNAL"),
    "overloaded": (503, "UNAVAILABLE"),
    "bad_request": (400, "INVALID_ARGUMENT"),
    "context_length": (400, "INVALID_ARGUMENT"),
    "not_found": (404, "NOT_FOUND"),
}


def _error_body(status: int, google_status: str, message: str, details: list[Any]) -> Any:
    error: dict[str, Any] = {"code": status, "message": message, "status": google_status}
    if details:
        error["details"] = details
    return {"error": error}


def render_error(spec: ErrorSpec) -> tuple[int, Any, list[tuple[str, str]]]:
    """Status, body and headers of the error Gemini sends for ``spec``."""
    status, google_status = _ERRORS[spec.kind]
    status = spec.status or status
    message = spec.message
    details: list[Any] = []
    if spec.kind == "auth":
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ]
    elif spec.kind == "rate_limit":
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
        ]
        if spec.retry_after is not None:
            value = spec.retry_after
            delay = f"{int(value)}s" if value == int(value) else f"{value}s"
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
            )
    elif spec.kind == "context_length":
        message = (
            "The input token count (1048577) exceeds the maximum number of tokens allowed "
            f"(1048576). {message}"
        )
    return status, _error_body(status, google_status, message, details), list(spec.headers)


# --- validation like the real API -----------------------------------------------------------


def _check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise _Rejected(400, "INVALID_ARGUMENT", f"Invalid value at '{where}'")
    for key, value in schema.items():
        if key not in _SCHEMA:
            raise _Rejected(
                400,
                "INVALID_ARGUMENT",
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field.",
            )
        if key == "properties":
            for name, sub in value.items():
                _check_schema(sub, f"{where}.properties[{name}].value")
        elif key == "items":
            _check_schema(value, f"{where}.items")
        elif key == "anyOf":
            for i, sub in enumerate(value):
                _check_schema(sub, f"{where}.any_of[{i}]")
    if schema.get("type") == "object" and "properties" in schema and not schema["properties"]:
        raise _Rejected(
            400, "INVALID_ARGUMENT", f"{where}.properties: should be non-empty for OBJECT type"
        )


def _validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise _Rejected(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    for key in body:
        if key not in _TOP_LEVEL:
            raise _Rejected(
                400,
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.',
            )
    for key in body.get("generationConfig") or {}:
        if key not in _GENERATION:
            raise _Rejected(
                400,
                "INVALID_ARGUMENT",
                f"Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config': Cannot find field.",
            )
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _Rejected(
            400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified"
        )
    pending: list[str] = []  # function names called by the previous model turn
    for i, content in enumerate(contents):
        role = content.get("role")
        if role not in ("user", "model"):
            raise _Rejected(400, "INVALID_ARGUMENT", "Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _Rejected(
                400,
                "INVALID_ARGUMENT",
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.",
            )
        for part in parts:
            if sum(1 for k in _PART_DATA if k in part) != 1:
                raise _Rejected(
                    400,
                    "INVALID_ARGUMENT",
                    f"contents[{i}]: each part needs exactly one data field",
                )
        calls = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
        answers = [p["functionResponse"] for p in parts if "functionResponse" in p]
        if answers:
            names = [a.get("name") for a in answers]
            if role != "user" or sorted(names) != sorted(pending):
                raise _Rejected(
                    400,
                    "INVALID_ARGUMENT",
                    "Please ensure that function response turn comes immediately after a function call turn. "
                    "And the number of function response parts should be equal to number of function call parts of the function call turn.",
                )
            if not all(isinstance(a.get("response"), dict) for a in answers):
                raise _Rejected(
                    400, "INVALID_ARGUMENT", "functionResponse.response must be an object"
                )
        pending = calls if role == "model" else []
    for t, tool in enumerate(body.get("tools") or []):
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            if "parameters" in declaration:
                _check_schema(
                    declaration["parameters"],
                    f"tools[{t}].function_declarations[{d}].parameters",
                )
    schema = (body.get("generationConfig") or {}).get("responseSchema")
    if schema is not None:
        _check_schema(schema, "generation_config.response_schema")


# --- a test-side reader: wire body -> canonical request -------------------------------------


def _read_image(part: dict[str, Any]) -> ImagePart:
    detail = _RESOLUTION_TO_DETAIL.get((part.get("mediaResolution") or {}).get("level", ""))
    if "inlineData" in part:
        blob = part["inlineData"]
        return ImagePart(f"data:{blob['mimeType']};base64,{blob['data']}", detail)
    return ImagePart(part["fileData"]["fileUri"], detail)


def _read_tool_output(response: dict[str, Any]) -> str:
    if set(response) == {"result"} and isinstance(response["result"], str):
        return str(response["result"])
    return json.dumps(response)


def read_request(path: str, body: dict[str, Any]) -> ChatRequest:
    """Parse a Gemini request back into canonical terms, independently of the adapter, so
    tests compare what was sent in provider-neutral terms. Function calls without an id get
    ``gemini_<turn>_<n>`` and each response is paired with the oldest unanswered call of
    its name, which is how Gemini itself pairs them."""
    target = unquote(path.rsplit("/models/", 1)[-1])
    model, _, method = target.partition(":")
    messages: list[Message] = []
    for part in (body.get("systemInstruction") or {}).get("parts", []):
        messages.append(Message("system", part["text"]))
    unanswered: list[tuple[str, str]] = []  # (name, id)
    for t, content in enumerate(body["contents"]):
        parts = content["parts"]
        if content["role"] == "model":
            texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
            calls: list[ToolCall] = []
            for p in parts:
                if "functionCall" in p:
                    call = p["functionCall"]
                    call_id = call.get("id") or f"gemini_{t}_{len(calls)}"
                    calls.append(ToolCall(call_id, call["name"], json.dumps(call.get("args", {}))))
            unanswered = [(c.name, c.id) for c in calls]
            signature = next(
                (p["thoughtSignature"] for p in parts if "thoughtSignature" in p), None
            )
            messages.append(
                Message(
                    "assistant",
                    "".join(texts) if texts else None,
                    tool_calls=calls or None,
                    reasoning_signature=signature,
                )
            )
            continue
        run: list[TextPart | ImagePart] = []

        def flush(run: list[TextPart | ImagePart]) -> None:
            if not run:
                return
            if len(run) == 1 and isinstance(run[0], TextPart):
                messages.append(Message("user", run[0].text))
            else:
                messages.append(Message("user", list(run)))
            run.clear()

        for p in parts:
            if "functionResponse" in p:
                flush(run)
                answer = p["functionResponse"]
                call_id = answer.get("id")
                if call_id is None:
                    match = next(i for i, (n, _) in enumerate(unanswered) if n == answer["name"])
                    call_id = unanswered.pop(match)[1]
                messages.append(
                    Message("tool", _read_tool_output(answer["response"]), tool_call_id=call_id)
                )
            elif "text" in p:
                run.append(TextPart(p["text"]))
            else:
                run.append(_read_image(p))
        flush(run)
    tools = None
    choice: Any = None
    if body.get("tools"):
        tools = [
            Tool(d["name"], d.get("description"), d.get("parameters"))
            for tool in body["tools"]
            for d in tool.get("functionDeclarations", [])
        ]
        config = (body.get("toolConfig") or {}).get("functionCallingConfig")
        if config:
            names = config.get("allowedFunctionNames")
            if config["mode"] == "ANY" and names and len(names) == 1:
                choice = NamedToolChoice(names[0])
            else:
                choice = {"AUTO": "auto", "NONE": "none", "ANY": "required"}[config["mode"]]
    gen = body.get("generationConfig") or {}
    fmt = None
    if gen.get("responseMimeType") == "application/json":
        schema = gen.get("responseSchema")
        fmt = (
            ResponseFormat("json_schema", {"schema": schema})
            if schema is not None
            else ResponseFormat("json_object")
        )
    extra: dict[str, Any] = {}
    for wire, name in (("topK", "top_k"), ("thinkingConfig", "thinking_config")):
        if wire in gen:
            extra[name] = gen[wire]
    return ChatRequest(
        model=model,
        messages=messages,
        temperature=gen.get("temperature"),
        top_p=gen.get("topP"),
        max_tokens=gen.get("maxOutputTokens"),
        stop=gen.get("stopSequences"),
        seed=gen.get("seed"),
        tools=tools,
        tool_choice=choice,
        response_format=fmt,
        stream=method == "streamGenerateContent",
        extra=extra,
    )


# --- the app ----------------------------------------------------------------------------------


async def _json(
    send: Send, status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> None:
    data = json.dumps(payload, indent=2).encode()  # Google pretty-prints its JSON
    raw = [
        (b"content-type", b"application/json; charset=UTF-8"),
        (b"content-length", str(len(data)).encode()),
    ]
    raw += [(k.encode(), v.encode()) for k, v in headers or []]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data, "more_body": False})


class GeminiUpstream:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-model-small", "fake-model-large"),
        call_ids: bool = True,
    ) -> None:
        self.api_key = api_key
        self.models = models
        self.call_ids = call_ids
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self._queue: deque[Scenario] = deque()
        self._lock = threading.Lock()
        self._counter = 0

    # --- test API ------------------------------------------------------------------------

    def queue(self, *scenarios: Scenario) -> None:
        with self._lock:
            self._queue.extend(scenarios)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.disconnects.clear()

    @property
    def last_body(self) -> Any:
        return self.requests[-1].body

    def read(self, index: int = -1) -> ChatRequest:
        """A recorded generate request, read back into canonical terms."""
        recorded = self.requests[index]
        return read_request(recorded.path, recorded.body)

    def wait_for_disconnect(self, timeout: float = 5.0) -> Disconnect:
        deadline = time.monotonic() + timeout
        while not self.disconnects:
            if time.monotonic() > deadline:
                raise TimeoutError("the fake upstream saw no client disconnect")
            time.sleep(0.005)
        return self.disconnects[-1]

    async def await_disconnect(self) -> Disconnect:
        """Bound it with ``asyncio.timeout`` at the call site."""
        while not self.disconnects:  # noqa: ASYNC110 - recorded on the server's own loop
            await asyncio.sleep(0.005)
        return self.disconnects[-1]

    def _next(self) -> tuple[Scenario, str]:
        with self._lock:
            self._counter += 1
            scenario = (
                self._queue.popleft() if self._queue else Scenario.reply("Hello", " from", " fake")
            )
            return scenario, f"fake-resp-{self._counter:06d}"

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode()
        self.requests.append(RecordedRequest(scope["method"], path, headers, body, raw))
        index = len(self.requests) - 1

        key = headers.get("x-goog-api-key")
        if self.api_key is not None and key != self.api_key:
            if key is None:
                await _json(send, 403, _error_body(
                    403, "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers (callers without established identity). "
                    "Please use API Key or other form of API consumer identity to call this API.", []))  # fmt: skip
            else:
                status, payload, extra = render_error(
                    ErrorSpec("auth", "API key not valid. Please pass a valid API key.")
                )
                await _json(send, status, payload, extra)
            return
        if scope["method"] == "GET" and path == "/v1beta/models":
            models = [
                {
                    "name": f"models/{m}",
                    "version": "001",
                    "displayName": m,
                    "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                }
                for m in self.models
            ]
            models.append(
                {
                    "name": "models/text-embedding-004",
                    "supportedGenerationMethods": ["embedContent"],
                }
            )
            await _json(send, 200, {"models": models})
            return
        method = path.rsplit(":", 1)[-1] if ":" in path else ""
        if (
            scope["method"] != "POST"
            or not path.startswith("/v1beta/models/")
            or method not in ("generateContent", "streamGenerateContent")
        ):
            await _json(send, 404, _error_body(404, "NOT_FOUND", f"no route {path}", []))
            return
        streaming = method == "streamGenerateContent"
        try:
            if streaming and "alt=sse" not in query:
                raise _Rejected(400, "INVALID_ARGUMENT", "this fake only streams with alt=sse")
            _validate(body)
        except _Rejected as rejected:
            await _json(
                send,
                rejected.status,
                _error_body(rejected.status, rejected.google_status, rejected.message, []),
            )
            return

        model = unquote(path[len("/v1beta/models/") : -len(method) - 1])
        scenario, response_id = self._next()
        gone = asyncio.Event()
        finished = False
        sent = 0

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished:
                        self.disconnects.append(Disconnect(index, sent))
                    gone.set()
                    return

        watcher = asyncio.create_task(watch())
        try:
            if scenario.hang_before_headers:
                try:
                    await asyncio.wait_for(gone.wait(), scenario.hang_before_headers)
                    return
                except TimeoutError:
                    pass
            if scenario.error is not None:
                status, payload, extra = render_error(scenario.error)
                await _json(send, status, payload, extra)
            elif streaming:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/event-stream"),
                            (b"cache-control", b"no-cache"),
                        ],
                    }
                )
                for chunk in render_chunks(scenario, model, response_id, self.call_ids):
                    if gone.is_set():
                        return
                    if scenario.disconnect_after is not None and sent >= scenario.disconnect_after:
                        raise _Abort("scripted disconnect")
                    payload_bytes = (
                        b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\r\n\r\n"
                    )
                    if (
                        scenario.malformed_chunk_after is not None
                        and sent == scenario.malformed_chunk_after
                    ):
                        payload_bytes = (
                            b'data: {"candidates": [{"content": {"parts": [{"text": "x\r\n\r\n'
                        )
                    await send(
                        {"type": "http.response.body", "body": payload_bytes, "more_body": True}
                    )
                    sent += 1
                    if scenario.chunk_delay:
                        await asyncio.sleep(scenario.chunk_delay)
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                finished = True
                await _json(send, 200, render_response(scenario, model, response_id, self.call_ids))
        finally:
            finished = True
            watcher.cancel()
