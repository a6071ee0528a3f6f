"""A fake Anthropic Messages API upstream, as a raw ASGI app.

It renders the shared ``Scenario`` vocabulary in Anthropic's exact wire format, as the
API reference and the official SDK's types (``anthropic.types``) define it:

* non-stream: one ``Message`` (``content`` blocks ``thinking``/``text``/``tool_use``,
  ``stop_reason``, ``usage`` with ``cache_read_input_tokens``/``cache_creation_input_tokens``
  outside ``input_tokens`` and ``output_tokens_details.thinking_tokens``);
* stream: named SSE events ``message_start``, ``ping``, ``content_block_start`` /
  ``content_block_delta`` (``thinking_delta`` + ``signature_delta``, ``text_delta``,
  ``input_json_delta``) / ``content_block_stop``, ``message_delta`` (stop reason, output
  usage), ``message_stop``; and ``event: error`` mid-stream when queued so;
* errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with
  Anthropic's statuses (529 for overload) and ``retry-after``.

Streaming faults count *content chunks*: ``message_start`` is chunk 0 (it opens the
stream, like the OpenAI fake's role chunk), then every ``content_block_delta``. Block
start/stop events, ``ping`` and the closing events are framing and are not counted.

Requests are validated the way Anthropic would reject them (400 ``invalid_request_error``):
missing ``max_tokens``, unknown top-level fields, roles that do not alternate, a
``tool_result`` whose id matches no ``tool_use`` of the previous turn, a ``tool_use``
left unanswered, whitespace-only stop sequences. (Today's API merges consecutive
same-role turns itself; older API versions and compatible servers reject them, so the
fake is strict and the adapter must merge.) ``x-api-key`` (or ``Authorization: Bearer``
for ``sk-ant-oat`` tokens) and ``anthropic-version`` are checked.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from llm_gateway.core.types import (
    ChatRequest,
    ImagePart,
    Message,
    NamedToolChoice,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from tests.fakes.openai_upstream import Disconnect, RecordedRequest
from tests.fakes.scenarios import ErrorSpec, Scenario, UsageSpec

__all__ = ["AnthropicUpstream", "StreamFailure", "read_request"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_STATUS = {
    "auth": (401, "authentication_error"),
    "rate_limit": (429, "rate_limit_error"),
    "server": (500, "api_error"),
    "overloaded": (529, "overloaded_error"),
    "bad_request": (400, "invalid_request_error"),
    "context_length": (400, "invalid_request_error"),
    "not_found": (404, "not_found_error"),
}
_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Top-level fields of MessageCreateParams (anthropic SDK); anything else is a 400.
_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stop_sequences", "stream",
        "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "metadata",
        "service_tier", "output_config", "cache_control", "container", "inference_geo",
        "speed", "context_management", "mcp_servers", "diagnostics",
    }
)  # fmt: skip
SIGNATURE = "EqQBCkYIARgCIkBfakeSignatureForTests=="


@dataclass(frozen=True)
class StreamFailure:
    """Send ``event: error`` with ``error`` after ``after`` content chunks, then close."""

    after: int
    error: ErrorSpec


class _Abort(Exception):
    """Raised inside the app to make the server drop the connection mid-body."""


class _Rejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _sse(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class AnthropicUpstream:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-model-small", "fake-model-large"),
    ) -> None:
        self.api_key = api_key
        self.models = models
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self._queue: deque[tuple[Scenario, StreamFailure | None]] = deque()
        self._lock = threading.Lock()
        self._counter = 0

    # --- test API ----------------------------------------------------------------------

    def queue(self, *scenarios: Scenario) -> None:
        with self._lock:
            self._queue.extend((s, None) for s in scenarios)

    def queue_stream_failure(self, scenario: Scenario, failure: StreamFailure) -> None:
        """Stream ``scenario`` but break off with an in-stream ``error`` event."""
        with self._lock:
            self._queue.append((scenario, failure))

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.disconnects.clear()

    @property
    def last_body(self) -> Any:
        return self.requests[-1].body

    def read(self, index: int = -1) -> ChatRequest:
        """A recorded Messages request, read back into canonical terms."""
        return read_request(self.requests[index].body)

    def wait_for_disconnect(self, timeout: float = 5.0) -> Disconnect:
        deadline = time.monotonic() + timeout
        while not self.disconnects:
            if time.monotonic() > deadline:
                raise TimeoutError("the fake upstream saw no client disconnect")
            time.sleep(0.005)
        return self.disconnects[-1]

    async def await_disconnect(self) -> Disconnect:
        # Polling, because the server records it on its own thread and event loop.
        while not self.disconnects:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return self.disconnects[-1]

    def _next(self) -> tuple[Scenario, StreamFailure | None]:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return Scenario.reply("Hello", " from", " fake"), None

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            n = self._counter
        return f"{prefix}01Fake{n:08d}"

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

        if not self._authorised(headers):
            await self._error(send, ErrorSpec("auth", "invalid x-api-key"))
            return
        if "anthropic-version" not in headers:
            await self._error(
                send, ErrorSpec("bad_request", "anthropic-version: header is required")
            )
            return
        if scope["method"] == "GET" and path == "/v1/models":
            data = [
                {
                    "type": "model",
                    "id": m,
                    "display_name": m.replace("-", " ").title(),
                    "created_at": "2025-02-19T00:00:00Z",
                }
                for m in self.models
            ]
            await _json(
                send,
                200,
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"],
                    "last_id": data[-1]["id"],
                },
            )
            return
        if scope["method"] != "POST" or path != "/v1/messages":
            await self._error(send, ErrorSpec("not_found", "Not found"))
            return
        if not isinstance(body, dict):
            await self._error(send, ErrorSpec("bad_request", "There was an error parsing the body"))
            return
        try:
            _validate(body)
        except _Rejected as rejection:
            await self._error(send, ErrorSpec("bad_request", rejection.message))
            return

        scenario, failure = self._next()
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
            model = scenario.model or body.get("model", "")
            if scenario.error is not None:
                await self._error(send, scenario.error)
            elif body.get("stream"):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"),
                            (b"request-id", self._new_id("req_").encode()),
                        ],
                    }
                )
                for counted, payload in self._events(scenario, model):
                    if gone.is_set():
                        return
                    if counted:
                        if failure is not None and sent >= failure.after:
                            type_ = _STATUS[failure.error.kind][1]
                            error = {"type": type_, "message": failure.error.message}
                            payload = _sse("error", {"type": "error", "error": error})
                            finished = True
                            await send(
                                {"type": "http.response.body", "body": payload, "more_body": False}
                            )
                            return
                        if (
                            scenario.disconnect_after is not None
                            and sent >= scenario.disconnect_after
                        ):
                            raise _Abort("scripted disconnect")
                        if (
                            scenario.malformed_chunk_after is not None
                            and sent == scenario.malformed_chunk_after
                        ):
                            payload = (
                                b"event: content_block_delta\n"
                                b'data: {"type":"content_block_delta","index":0,"delta":{"x\n\n'
                            )
                        sent += 1
                    await send({"type": "http.response.body", "body": payload, "more_body": True})
                    if counted and scenario.chunk_delay:
                        await asyncio.sleep(scenario.chunk_delay)
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                finished = True
                await _json(send, 200, self.message(scenario, model))
        finally:
            finished = True
            watcher.cancel()

    def _authorised(self, headers: dict[str, str]) -> bool:
        key = self.api_key
        if key is None:
            return True
        if key.startswith("sk-ant-oat"):
            beta = headers.get("anthropic-beta", "")
            return headers.get("authorization") == f"Bearer {key}" and (
                "oauth-2025-04-20" in beta.split(",")
            )
        return headers.get("x-api-key") == key

    # --- rendering -----------------------------------------------------------------------

    async def _error(self, send: Send, spec: ErrorSpec) -> None:
        status, type_ = _STATUS[spec.kind]
        message = spec.message
        if spec.kind == "context_length":
            message = "prompt is too long: 208310 tokens > 200000 maximum"
        payload = {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": self._new_id("req_"),
        }
        headers = list(spec.headers)
        if spec.retry_after is not None:
            value = spec.retry_after
            headers.append(("retry-after", str(int(value)) if value == int(value) else str(value)))
        await _json(send, spec.status or status, payload, headers)

    @staticmethod
    def usage(usage: UsageSpec | None, *, cache_write: int = 0) -> dict[str, Any]:
        """Anthropic's usage: cache reads and writes are *not* part of ``input_tokens``."""
        if usage is None:
            return {"input_tokens": 0, "output_tokens": 0}
        return {
            "input_tokens": usage.prompt_tokens - usage.cached_tokens - cache_write,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": usage.cached_tokens,
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"thinking_tokens": usage.reasoning_tokens},
            "service_tier": "standard",
        }

    def message(self, scenario: Scenario, model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if scenario.reasoning:
            content.append(
                {
                    "type": "thinking",
                    "thinking": "".join(scenario.reasoning),
                    "signature": SIGNATURE,
                }
            )
        if scenario.text:
            content.append({"type": "text", "text": scenario.full_text})
        for call in scenario.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": json.loads(call.arguments),
                }
            )
        return {
            "id": self._new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _STOP[scenario.finish_reason],
            "stop_sequence": None,
            "usage": self.usage(scenario.usage),
        }

    def _events(self, scenario: Scenario, model: str) -> list[tuple[bool, bytes]]:
        """The stream as (is a content chunk, SSE bytes) pairs."""
        usage = self.usage(scenario.usage)
        start_usage = {k: v for k, v in usage.items() if k != "output_tokens_details"}
        start_usage["output_tokens"] = 1
        message: dict[str, Any] = {
            "id": self._new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        out: list[tuple[bool, bytes]] = [
            (True, _sse("message_start", {"type": "message_start", "message": message})),
            (False, _sse("ping", {"type": "ping"})),
        ]
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            nonlocal index
            out.append(
                (
                    False,
                    _sse(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": start},
                    ),
                )
            )
            for delta in deltas:
                payload = {"type": "content_block_delta", "index": index, "delta": delta}
                out.append((True, _sse("content_block_delta", payload)))
            stop = {"type": "content_block_stop", "index": index}
            out.append((False, _sse("content_block_stop", stop)))
            index += 1

        if scenario.reasoning:
            block(
                {"type": "thinking", "thinking": "", "signature": ""},
                [{"type": "thinking_delta", "thinking": p} for p in scenario.reasoning]
                + [{"type": "signature_delta", "signature": SIGNATURE}],
            )
        if scenario.text:
            block(
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": p} for p in scenario.text],
            )
        for call in scenario.tool_calls:
            block(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
                [{"type": "input_json_delta", "partial_json": ""}]
                + [{"type": "input_json_delta", "partial_json": p} for p in call.pieces()],
            )
        delta_usage: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
        if "output_tokens_details" in usage:
            delta_usage["output_tokens_details"] = usage["output_tokens_details"]
        out.append(
            (
                False,
                _sse(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {
                            "stop_reason": _STOP[scenario.finish_reason],
                            "stop_sequence": None,
                        },
                        "usage": delta_usage,
                    },
                ),
            )
        )
        out.append((False, _sse("message_stop", {"type": "message_stop"})))
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


# --- validation like the real API ---------------------------------------------------------


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _validate(body: dict[str, Any]) -> None:
    unknown = sorted(k for k in body if k not in _FIELDS)
    if unknown:
        raise _Rejected(f"{unknown[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("max_tokens"), int):
        raise _Rejected("max_tokens: Field required")
    for stop in body.get("stop_sequences") or []:
        if not isinstance(stop, str) or not stop.strip():
            raise _Rejected("stop_sequences: each stop sequence must contain non-whitespace")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Rejected("messages: at least one message is required")
    previous_uses: set[str] = set()
    previous_role = None
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise _Rejected(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if role == previous_role:
            raise _Rejected(
                f'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        blocks = _blocks(message.get("content"))
        results = [b for b in blocks if b.get("type") == "tool_result"]
        for j, block in enumerate(blocks):
            if block.get("type") == "text" and not block.get("text"):
                raise _Rejected(
                    f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
                )
        for j, block in enumerate(results):
            if block.get("tool_use_id") not in previous_uses:
                raise _Rejected(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                    "block must have a corresponding `tool_use` block in the previous message."
                )
        if previous_uses:
            answered = {b.get("tool_use_id") for b in results}
            missing = sorted(previous_uses - answered)
            if missing:
                raise _Rejected(
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` "
                    f"blocks immediately after: {', '.join(missing)}. Each `tool_use` block "
                    "must have a corresponding `tool_result` block in the next message."
                )
            if blocks[: len(results)] != results:
                raise _Rejected(
                    f"messages.{i}: `tool_result` blocks must come first in the content"
                )
        uses = [b for b in blocks if b.get("type") == "tool_use"]
        previous_uses = {str(b.get("id")) for b in uses} if role == "assistant" else set()
        previous_role = role


# --- a test-side reader: wire body -> canonical request -----------------------------------


def _image(source: dict[str, Any]) -> ImagePart:
    if source["type"] == "base64":
        return ImagePart(f"data:{source['media_type']};base64,{source['data']}")
    return ImagePart(source["url"])


def _parts(blocks: list[dict[str, Any]]) -> str | list[TextPart | ImagePart]:
    """Text/image blocks as canonical content. One text block is the same as a plain
    string on Anthropic's wire, so it reads back as one."""
    parts: list[TextPart | ImagePart] = []
    for block in blocks:
        if block["type"] == "text":
            parts.append(TextPart(block["text"]))
        elif block["type"] == "image":
            parts.append(_image(block["source"]))
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return parts


def _user_messages(content: Any) -> list[Message]:
    if isinstance(content, str):
        return [Message("user", content)]
    out: list[Message] = []
    run: list[dict[str, Any]] = []
    for block in content:
        if block["type"] == "tool_result":
            if run:
                out.append(Message("user", _parts(run)))
                run = []
            result = block.get("content")
            body: Any = result if isinstance(result, str) or result is None else _parts(result)
            out.append(Message("tool", body, tool_call_id=block["tool_use_id"]))
        else:
            run.append(block)
    if run:
        out.append(Message("user", _parts(run)))
    return out


def _assistant_message(content: Any) -> Message:
    if isinstance(content, str):
        return Message("assistant", content)
    text: list[str] = []
    calls: list[ToolCall] = []
    reasoning = signature = None
    for block in content:
        kind = block["type"]
        if kind == "text":
            text.append(block["text"])
        elif kind == "tool_use":
            arguments = json.dumps(block["input"], ensure_ascii=False)
            calls.append(ToolCall(block["id"], block["name"], arguments))
        elif kind == "thinking":
            reasoning, signature = block["thinking"], block["signature"]
    return Message(
        "assistant",
        "".join(text) if text or not calls else None,
        tool_calls=calls or None,
        reasoning=reasoning,
        reasoning_signature=signature,
    )


def read_request(body: dict[str, Any]) -> ChatRequest:
    """Parse a Messages body back into a canonical request (independently of the
    adapter's code), so tests can compare what was sent in provider-neutral terms.

    The top-level ``system`` becomes leading system messages (one per text block);
    ``tool_result`` blocks become tool messages; ``disable_parallel_tool_use`` becomes
    ``parallel_tool_calls``; ``metadata.user_id`` becomes ``user``.
    """
    messages: list[Message] = []
    system = body.get("system")
    if isinstance(system, str):
        messages.append(Message("system", system))
    elif isinstance(system, list):
        messages.extend(Message("system", block["text"]) for block in system)
    for m in body["messages"]:
        if m["role"] == "user":
            messages.extend(_user_messages(m["content"]))
        else:
            messages.append(_assistant_message(m["content"]))
    tools = None
    if body.get("tools"):
        tools = [
            Tool(t["name"], t.get("description"), t.get("input_schema"), t.get("strict"))
            for t in body["tools"]
        ]
    choice: ToolChoice | None = None
    parallel = None
    wire_choice = body.get("tool_choice")
    if isinstance(wire_choice, dict):
        kind = wire_choice["type"]
        if kind == "tool":
            choice = NamedToolChoice(wire_choice["name"])
        elif kind == "any":
            choice = "required"
        elif kind == "none":
            choice = "none"
        else:
            choice = "auto"
        if "disable_parallel_tool_use" in wire_choice:
            parallel = not wire_choice["disable_parallel_tool_use"]
    fmt = None
    output_format = (body.get("output_config") or {}).get("format")
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        fmt = ResponseFormat("json_schema", {"schema": output_format["schema"]})
    known = {
        "model", "messages", "system", "max_tokens", "temperature", "top_p", "stop_sequences",
        "metadata", "tools", "tool_choice", "stream",
    }  # fmt: skip
    extra = {k: v for k, v in body.items() if k not in known}
    if fmt is not None:
        rest = {k: v for k, v in extra["output_config"].items() if k != "format"}
        if rest:
            extra["output_config"] = rest
        else:
            del extra["output_config"]
    return ChatRequest(
        model=body["model"],
        messages=messages,
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=body.get("max_tokens"),
        stop=body.get("stop_sequences"),
        user=(body.get("metadata") or {}).get("user_id"),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        response_format=fmt,
        stream=bool(body.get("stream")),
        extra=extra,
    )
