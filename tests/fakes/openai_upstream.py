"""A fake OpenAI chat-completions upstream, as a raw ASGI app, with per-vendor flavours.

It speaks the exact wire format (non-stream JSON; ``data: {...}\\n\\n`` chunks ending in
``data: [DONE]\\n\\n``; first delta with the role, tool-call deltas with index/id/type/
function, a final chunk with finish_reason, a usage chunk with empty choices when asked)
and reproduces each vendor's quirks as a ``Flavour``: Groq's ``x_groq.usage``, DeepSeek's
``reasoning_content`` and cache counters, OpenRouter's cost, ``reasoning`` deltas and SSE
keep-alive comments, Mistral's 9-character tool ids, whole tool calls per delta, usage in
the final chunk and its 422 on unknown fields.

Tests ``queue`` scenarios; every request is recorded (``requests``) and every client
disconnect before the response finished is recorded (``disconnects``).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
from tests.fakes.scenarios import ErrorSpec, Scenario, UsageSpec

__all__ = ["FLAVOURS", "Disconnect", "Flavour", "OpenAIUpstream", "RecordedRequest", "read_request"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Flavour:
    name: str
    reasoning_field: str | None = None  # the delta/message field carrying reasoning text
    usage_style: Literal["openai", "deepseek"] = "openai"
    usage_chunk: bool = True  # honours stream_options.include_usage with a usage chunk
    usage_in_final_chunk: bool = False  # Mistral: usage rides on the finish chunk, unasked
    x_groq: bool = False  # Groq: x_groq.usage on the final chunk
    cost: bool = False  # OpenRouter: usage.cost
    keepalive_comment: str | None = None  # OpenRouter: ": OPENROUTER PROCESSING"
    whole_tool_calls: bool = False  # Mistral: each tool call complete in one delta
    allowed_fields: frozenset[str] | None = None  # Mistral: 422 extra_forbidden otherwise
    nine_char_tool_ids: bool = False  # Mistral: 400 unless ids are [a-zA-Z0-9]{9}
    rejects_reasoning_echo: bool = False  # DeepSeek R1: 400 on reasoning_content w/o tools
    stream_options_need_stream: bool = False  # OpenAI: 400 on stream_options without stream
    error_style: Literal["openai", "mistral", "openrouter"] = "openai"
    id_prefix: str = "chatcmpl-"


_MISTRAL_FIELDS = frozenset(
    [
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "prompt_mode",
        "safe_prompt",
    ]
)

FLAVOURS: dict[str, Flavour] = {
    "openai": Flavour("openai", stream_options_need_stream=True),
    "groq": Flavour("groq", reasoning_field="reasoning", x_groq=True),
    "openrouter": Flavour(
        "openrouter",
        reasoning_field="reasoning",
        cost=True,
        keepalive_comment=": OPENROUTER PROCESSING",
        error_style="openrouter",
        id_prefix="gen-",
    ),
    "deepseek": Flavour(
        "deepseek",
        reasoning_field="reasoning_content",
        usage_style="deepseek",
        rejects_reasoning_echo=True,
    ),
    "mistral": Flavour(
        "mistral",
        usage_chunk=False,
        usage_in_final_chunk=True,
        whole_tool_calls=True,
        allowed_fields=_MISTRAL_FIELDS,
        nine_char_tool_ids=True,
        error_style="mistral",
        id_prefix="",
    ),
    "openai_compatible": Flavour("openai_compatible", reasoning_field="reasoning_content"),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    raw: bytes


@dataclass
class Disconnect:
    request_index: int
    chunks_sent: int
    at: float = field(default_factory=time.monotonic)


class _Abort(Exception):
    """Raised inside the app to make the server drop the connection mid-body."""


_STATUS = {
    "auth": 401,
    "rate_limit": 429,
    "server": 500,
    "overloaded": 503,
    "bad_request": 400,
    "context_length": 400,
    "not_found": 404,
}
_OPENAI_TYPES = {
    "auth": ("invalid_request_error", "invalid_api_key"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "server": ("server_error", None),
    "overloaded": ("server_error", None),
    "bad_request": ("invalid_request_error", None),
    "context_length": ("invalid_request_error", "context_length_exceeded"),
    "not_found": ("invalid_request_error", "model_not_found"),
}
_NINE = re.compile(r"[A-Za-z0-9]{9}")


class OpenAIUpstream:
    def __init__(
        self,
        flavour: Flavour | str = "openai",
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-model-small", "fake-model-large"),
    ) -> None:
        self.flavour = FLAVOURS[flavour] if isinstance(flavour, str) else flavour
        self.api_key = api_key
        self.models = models
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self._queue: deque[Scenario] = deque()
        self._lock = threading.Lock()
        self._counter = 0

    # --- test API ----------------------------------------------------------------------

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
        """A recorded chat request, read back into canonical terms."""
        return read_request(self.requests[index].body)

    def wait_for_disconnect(self, timeout: float = 5.0) -> Disconnect:
        """Block until the server has seen a client disconnect (it notices asynchronously)."""
        deadline = time.monotonic() + timeout
        while not self.disconnects:
            if time.monotonic() > deadline:
                raise TimeoutError("the fake upstream saw no client disconnect")
            time.sleep(0.005)
        return self.disconnects[-1]

    async def await_disconnect(self) -> Disconnect:
        """Like ``wait_for_disconnect`` without blocking the loop; bound it with
        ``asyncio.timeout`` at the call site."""
        # Polling, because the server records it on its own thread and event loop.
        while not self.disconnects:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return self.disconnects[-1]

    def _next(self) -> Scenario:
        with self._lock:
            return (
                self._queue.popleft() if self._queue else Scenario.reply("Hello", " from", " fake")
            )

    def _new_id(self) -> str:
        with self._lock:
            self._counter += 1
            n = self._counter
        return f"{self.flavour.id_prefix}{n:09d}fake"

    # --- ASGI --------------------------------------------------------------------------

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
        self.requests.append(RecordedRequest(scope["method"], path, headers, body, raw))
        index = len(self.requests) - 1

        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await self._error(send, ErrorSpec("auth", "Incorrect API key provided"))
            return
        if scope["method"] == "GET" and path.endswith("/models"):
            data = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                for m in self.models
            ]
            await _json(send, 200, {"object": "list", "data": data})
            return
        if scope["method"] != "POST" or not path.endswith("/chat/completions"):
            await _json(
                send,
                404,
                {"error": {"message": f"no route {path}", "type": "invalid_request_error"}},
            )
            return
        if not isinstance(body, dict):
            await self._error(send, ErrorSpec("bad_request", "We could not parse the JSON body"))
            return
        rejection = self._validate(body)
        if rejection is not None:
            status, payload = rejection
            await _json(send, status, payload)
            return

        scenario = self._next()
        gone = asyncio.Event()
        finished = False

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not finished:
                        self.disconnects.append(Disconnect(index, sent))
                    gone.set()
                    return

        sent = 0
        watcher = asyncio.create_task(watch())
        try:
            if scenario.hang_before_headers:
                try:
                    await asyncio.wait_for(gone.wait(), scenario.hang_before_headers)
                    return
                except TimeoutError:
                    pass
            if scenario.error is not None:
                await self._error(send, scenario.error)
            elif body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"),
                        ],
                    }
                )
                model = scenario.model or body.get("model", "")
                for payload in self._chunks(scenario, model, include_usage):
                    if gone.is_set():
                        return
                    if payload[:1] == b":":  # a keep-alive comment is not a chunk
                        await send(
                            {"type": "http.response.body", "body": payload, "more_body": True}
                        )
                        continue
                    if scenario.disconnect_after is not None and sent >= scenario.disconnect_after:
                        raise _Abort("scripted disconnect")
                    if (
                        scenario.malformed_chunk_after is not None
                        and sent == scenario.malformed_chunk_after
                    ):
                        payload = b'data: {"id": "broken", "choices": [{"delta": {"content": "x\n\n'
                    await send({"type": "http.response.body", "body": payload, "more_body": True})
                    sent += 1
                    if scenario.chunk_delay:
                        await asyncio.sleep(scenario.chunk_delay)
                finished = True
                await send(
                    {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False}
                )
            else:
                finished = True
                await _json(send, 200, self._completion(scenario, body.get("model", "")))
        finally:
            finished = True
            watcher.cancel()

    # --- validation like the real vendors ------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        fl = self.flavour
        if fl.allowed_fields is not None:
            extra = [k for k in body if k not in fl.allowed_fields]
            if extra:
                detail = [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", k],
                        "msg": "Extra inputs are not permitted",
                        "input": body[k],
                    }
                    for k in extra
                ]
                return 422, {
                    "object": "error",
                    "message": {"detail": detail},
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
        if fl.stream_options_need_stream and "stream_options" in body and not body.get("stream"):
            return 400, {
                "error": {
                    "message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    "type": "invalid_request_error",
                    "param": "stream_options",
                    "code": None,
                }
            }
        for message in body.get("messages") or []:
            if fl.nine_char_tool_ids:
                ids = [c.get("id", "") for c in message.get("tool_calls") or []]
                if message.get("role") == "tool":
                    ids.append(message.get("tool_call_id", ""))
                for call_id in ids:
                    if not _NINE.fullmatch(call_id or ""):
                        return 400, {
                            "object": "error",
                            "message": f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
            if (
                fl.rejects_reasoning_echo
                and message.get("role") == "assistant"
                and "reasoning_content" in message
                and not message.get("tool_calls")
            ):
                return 400, {
                    "error": {
                        "message": "The reasoning_content is an intermediate result for display purposes only and will not be included in the context for inference. Please remove the reasoning_content from your message to reduce network traffic.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_request_error",
                    }
                }
        return None

    # --- rendering -----------------------------------------------------------------------

    async def _error(self, send: Send, spec: ErrorSpec) -> None:
        status = spec.status or _STATUS[spec.kind]
        style = self.flavour.error_style
        payload: Any
        if style == "openrouter":
            payload = {"error": {"code": status, "message": spec.message, "metadata": {}}}
        elif style == "mistral":
            type_, code = _OPENAI_TYPES[spec.kind]
            payload = {
                "object": "error",
                "message": spec.message,
                "type": type_,
                "param": None,
                "code": code,
            }
        else:
            type_, code = _OPENAI_TYPES[spec.kind]
            payload = {
                "error": {"message": spec.message, "type": type_, "param": None, "code": code}
            }
        headers = list(spec.headers)
        if spec.retry_after is not None:
            value = spec.retry_after
            headers.append(("retry-after", str(int(value)) if value == int(value) else str(value)))
        await _json(send, status, payload, headers)

    def _usage(self, usage: UsageSpec) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
        if self.flavour.usage_style == "deepseek":
            out["prompt_cache_hit_tokens"] = usage.cached_tokens
            out["prompt_cache_miss_tokens"] = usage.prompt_tokens - usage.cached_tokens
            out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
        else:
            out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens, "audio_tokens": 0}
            out["completion_tokens_details"] = {
                "reasoning_tokens": usage.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            }
        if self.flavour.cost:
            out["cost"] = usage.cost if usage.cost is not None else 0.0
            out["is_byok"] = False
        return out

    def _groq_usage(self, usage: UsageSpec) -> dict[str, Any]:
        return {
            "queue_time": 0.01,
            "prompt_tokens": usage.prompt_tokens,
            "prompt_time": 0.002,
            "completion_tokens": usage.completion_tokens,
            "completion_time": 0.02,
            "total_tokens": usage.total_tokens,
            "total_time": 0.022,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        }

    def _completion(self, scenario: Scenario, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": scenario.full_text or None}
        if self.flavour.name == "openai":
            message["refusal"] = None
        rf = self.flavour.reasoning_field
        if rf and scenario.reasoning:
            message[rf] = "".join(scenario.reasoning)
        if scenario.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in scenario.tool_calls
            ]
        out: dict[str, Any] = {
            "id": self._new_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": scenario.model or model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": scenario.finish_reason,
                }
            ],
            "system_fingerprint": "fp_fake",
        }
        if scenario.usage is not None:
            out["usage"] = self._usage(scenario.usage)
        if self.flavour.x_groq:
            out["x_groq"] = {"id": "req_fake"}
        return out

    def _chunks(self, scenario: Scenario, model: str, include_usage: bool) -> list[bytes]:
        fl = self.flavour
        base = {
            "id": self._new_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(
            delta: dict[str, Any], finish: str | None = None, extra: dict[str, Any] | None = None
        ) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**base, "choices": [choice], **(extra or {})}

        chunks: list[dict[str, Any]] = []
        first: dict[str, Any] = {"role": "assistant", "content": ""}
        if fl.name == "openai":
            first["refusal"] = None
        chunks.append(chunk(first, extra={"x_groq": {"id": "req_fake"}} if fl.x_groq else None))
        if fl.reasoning_field:
            for piece in scenario.reasoning:
                chunks.append(
                    chunk(
                        {
                            "content": None if fl.name == "deepseek" else "",
                            fl.reasoning_field: piece,
                        }
                    )
                )
        for piece in scenario.text:
            chunks.append(chunk({"content": piece}))
        for i, call in enumerate(scenario.tool_calls):
            if fl.whole_tool_calls:
                chunks.append(
                    chunk(
                        {
                            "content": "",
                            "tool_calls": [
                                {
                                    "id": call.id,
                                    "function": {"name": call.name, "arguments": call.arguments},
                                    "index": i,
                                }
                            ],
                        }
                    )
                )
                continue
            chunks.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for piece in call.pieces():
                chunks.append(
                    chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                )
        final_extra: dict[str, Any] = {}
        if scenario.usage is not None and fl.usage_in_final_chunk:
            final_extra["usage"] = self._usage(scenario.usage)
        if fl.x_groq:
            final_extra["x_groq"] = {"id": "req_fake"}
            if scenario.usage is not None:
                final_extra["x_groq"]["usage"] = self._groq_usage(scenario.usage)
        chunks.append(chunk({}, scenario.finish_reason, final_extra))
        if include_usage and fl.usage_chunk and scenario.usage is not None:
            chunks.append({**base, "choices": [], "usage": self._usage(scenario.usage)})
        out = [b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks]
        if fl.keepalive_comment:
            out.insert(0, fl.keepalive_comment.encode() + b"\n\n")
        return out


async def _json(
    send: Send, status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> None:
    data = json.dumps(payload).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers or []]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


# --- a test-side reader: wire body -> canonical request -----------------------------------


def _read_content(content: Any) -> str | list[TextPart | ImagePart] | None:
    if content is None or isinstance(content, str):
        return content
    parts: list[TextPart | ImagePart] = []
    for part in content:
        if part["type"] == "text":
            parts.append(TextPart(part["text"]))
        elif part["type"] == "image_url":
            image = part["image_url"]
            if isinstance(image, str):
                parts.append(ImagePart(image))
            else:
                parts.append(ImagePart(image["url"], image.get("detail")))
    return parts


def read_request(body: dict[str, Any]) -> ChatRequest:
    """Parse an OpenAI-format body back into a canonical request (independently of the
    adapter's own code), so tests can compare what was sent in provider-neutral terms."""
    messages = []
    for m in body["messages"]:
        calls = None
        if m.get("tool_calls"):
            calls = [
                ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                for c in m["tool_calls"]
            ]
        messages.append(
            Message(
                role=m["role"],
                content=_read_content(m.get("content")),
                tool_calls=calls,
                tool_call_id=m.get("tool_call_id"),
                name=m.get("name"),
                reasoning=m.get("reasoning_content"),
            )
        )
    tools = None
    if body.get("tools"):
        tools = [
            Tool(
                t["function"]["name"],
                t["function"].get("description"),
                t["function"].get("parameters"),
                t["function"].get("strict"),
            )
            for t in body["tools"]
        ]
    choice: Any = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = NamedToolChoice(choice["function"]["name"])
    fmt = body.get("response_format")
    known = {
        "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens",
        "stop", "seed", "random_seed", "user", "tools", "tool_choice", "parallel_tool_calls",
        "response_format", "stream", "stream_options",
    }  # fmt: skip
    return ChatRequest(
        model=body["model"],
        messages=messages,
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=body.get("max_completion_tokens", body.get("max_tokens")),
        stop=body.get("stop"),
        seed=body.get("seed", body.get("random_seed")),
        user=body.get("user"),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=body.get("parallel_tool_calls"),
        response_format=ResponseFormat(fmt["type"], fmt.get("json_schema")) if fmt else None,
        stream=bool(body.get("stream")),
        extra={k: v for k, v in body.items() if k not in known},
    )
