"""A fake Amazon Bedrock Runtime (Converse / ConverseStream), as a raw ASGI app.

It speaks the wire format exactly: REST-JSON Converse responses; ConverseStream bodies of
binary ``application/vnd.amazon.eventstream`` frames it encodes itself (``encode_frame``,
independent of the gateway's decoder) with ``:event-type`` messageStart /
contentBlockStart / contentBlockDelta / contentBlockStop / messageStop / metadata, and
``:message-type exception`` frames for in-stream failures; errors as JSON ``{"message"}``
with the ``x-amzn-errortype`` header. It renders the shared ``Scenario`` vocabulary
(``BedrockScenario`` adds in-stream exception frames).

Every request's SigV4 signature is verified with botocore's own signer (``SigV4Auth``)
against known test credentials, independently of the gateway's implementation; a bad or
missing signature gets 403 ``InvalidSignatureException`` like the real service. The
fake also validates requests the way Bedrock does (alternating roles, non-blank text,
toolConfig required with tool blocks, tool-use ids, known top-level fields).
"""

from __future__ import annotations

import asyncio
import binascii
import datetime as dt
import hashlib
import hmac
import json
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from llm_gateway.core.types import (
    ChatRequest,
    ImagePart,
    Message,
    NamedToolChoice,
    TextPart,
    Tool,
    ToolCall,
)
from tests.fakes.openai_upstream import Disconnect, RecordedRequest
from tests.fakes.scenarios import ErrorSpec, Scenario, UsageSpec

__all__ = [
    "ACCESS_KEY",
    "REGION",
    "SECRET_KEY",
    "BedrockScenario",
    "BedrockUpstream",
    "encode_frame",
    "event_frame",
    "exception_frame",
    "read_converse",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ACCESS_KEY = "AKIDFAKEBEDROCK0001"
SECRET_KEY = "fAkE/sEcReT+kEy/for/BEDROCK/tests/0000000"
REGION = "us-east-1"
SERVICE = "bedrock"


# --- a test-side event-stream encoder -------------------------------------------------------

HeaderSpec = tuple[str, int, Any]  # (name, type code 0-9, value)


def _header_bytes(name: str, kind: int, value: Any) -> bytes:
    raw_name = name.encode("utf-8")
    out = bytes([len(raw_name)]) + raw_name + bytes([kind])
    if kind in (0, 1):
        return out
    if kind == 2:
        return out + struct.pack("!b", value)
    if kind == 3:
        return out + struct.pack("!h", value)
    if kind in (4,):
        return out + struct.pack("!i", value)
    if kind in (5, 8):
        return out + struct.pack("!q", value)
    if kind == 6:
        return out + struct.pack("!H", len(value)) + value
    if kind == 7:
        data = value.encode("utf-8")
        return out + struct.pack("!H", len(data)) + data
    if kind == 9:
        assert len(value) == 16
        return out + value
    raise ValueError(f"unknown header type {kind}")


def encode_frame(headers: Sequence[HeaderSpec], payload: bytes) -> bytes:
    """One event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    header_block = b"".join(_header_bytes(n, k, v) for n, k, v in headers)
    total = 12 + len(header_block) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_block))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + header_block + payload
    return body + struct.pack("!I", binascii.crc32(body) & 0xFFFFFFFF)


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    # Real Bedrock pads each event with a "p" field (to hide token lengths); so do we.
    data = {**payload, "p": "abcdefghijklmnopqrstuvwxyz"[: 1 + len(event_type) % 20]}
    return encode_frame(
        [
            (":event-type", 7, event_type),
            (":content-type", 7, "application/json"),
            (":message-type", 7, "event"),
        ],
        json.dumps(data, separators=(",", ":")).encode(),
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_frame(
        [
            (":exception-type", 7, exception_type),
            (":content-type", 7, "application/json"),
            (":message-type", 7, "exception"),
        ],
        json.dumps({"message": message}).encode(),
    )


# --- scenarios ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BedrockScenario(Scenario):
    """A Scenario plus what only this wire has: an exception frame mid-stream."""

    stream_exception: tuple[str, str] | None = None  # (":exception-type", message)
    stream_exception_after: int = 0  # frames sent before it


_ERRORS: dict[str, tuple[int, str]] = {
    "auth": (403, "UnrecognizedClientException"),
    "rate_limit": (429, "ThrottlingException"),
    "server": (500, "InternalServerException"),
    "overloaded": (503, "ServiceUnavailableException"),
    "bad_request": (400, "ValidationException"),
    "context_length": (400, "ValidationException"),
    "not_found": (404, "ResourceNotFoundException"),
}
_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}
_TOP_LEVEL = frozenset(
    {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
     "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
     "requestMetadata", "performanceConfig", "serviceTier", "outputConfig"}
)  # fmt: skip
_INFERENCE = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
_TOOL_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class _Abort(Exception):
    """Raised inside the app to make the server drop the connection mid-body."""


class _Rejected(Exception):
    def __init__(self, status: int, type_name: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type_name = type_name
        self.message = message


class BedrockUpstream:
    def __init__(
        self,
        *,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        session_token: str | None = None,
        region: str = REGION,
        models: tuple[str, ...] = ("fake-model-small", "fake-model-large"),
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.region = region
        self.models = models
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self.signature_failures: list[str] = []
        self._queue: deque[Scenario] = deque()
        self._lock = threading.Lock()

    # --- test API ----------------------------------------------------------------------

    def queue(self, *scenarios: Scenario) -> None:
        with self._lock:
            self._queue.extend(scenarios)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.disconnects.clear()
            self.signature_failures.clear()

    def read(self, index: int = -1) -> ChatRequest:
        """A recorded Converse request, read back into canonical terms."""
        recorded = self.requests[index]
        return read_converse(recorded.path, recorded.body)

    async def await_disconnect(self) -> Disconnect:
        # Polling, because the server records it on its own thread and event loop.
        while not self.disconnects:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return self.disconnects[-1]

    def _next(self) -> Scenario:
        with self._lock:
            return (
                self._queue.popleft() if self._queue else Scenario.reply("Hello", " from", " fake")
            )

    # --- SigV4, verified by botocore ---------------------------------------------------

    def verify_signature(
        self, method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        """None when the request is correctly signed, else why not (botocore's signer
        recomputes the signature from the request as received)."""
        auth = headers.get("authorization", "")
        prefix = "AWS4-HMAC-SHA256 "
        if not auth.startswith(prefix):
            return "missing AWS4-HMAC-SHA256 authorization"
        fields: dict[str, str] = {}
        for part in auth[len(prefix) :].split(","):
            key, _, value = part.strip().partition("=")
            fields[key] = value
        try:
            access_key, date, region, service, terminal = fields["Credential"].split("/")
            signed_names = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except (KeyError, ValueError):
            return "malformed authorization header"
        if access_key != self.access_key:
            return "unknown access key"
        amz_date = headers.get("x-amz-date", "")
        if not amz_date.startswith(date) or (region, service, terminal) != (
            self.region,
            SERVICE,
            "aws4_request",
        ):
            return f"bad credential scope {fields['Credential']}"
        try:
            when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            return "bad x-amz-date"
        if abs(time.time() - when.timestamp()) > 300:
            return "request time too skewed"
        required = {"host", "x-amz-date"} | {h for h in headers if h.startswith("x-amz-")}
        if not required <= set(signed_names):
            return f"unsigned required headers {sorted(required - set(signed_names))}"
        if self.session_token is not None and headers.get("x-amz-security-token") != (
            self.session_token
        ):
            return "missing or wrong security token"
        content_sha = headers.get("x-amz-content-sha256")
        if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
            return "x-amz-content-sha256 does not match the body"
        url = f"http://{headers.get('host', '')}{raw_path}" + (f"?{query}" if query else "")
        request = AWSRequest(
            method=method,
            url=url,
            headers={name: headers.get(name, "") for name in signed_names},
            data=body,
        )
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(
            BotoCredentials(self.access_key, self.secret_key, self.session_token),
            SERVICE,
            self.region,
        )
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if signer.signed_headers(signer.headers_to_sign(request)) != fields["SignedHeaders"]:
            return "SignedHeaders not in canonical order"
        if not hmac.compare_digest(expected, signature):
            return "signature mismatch"
        return None

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
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        method: str = scope["method"]
        self.requests.append(RecordedRequest(method, raw_path, headers, body, raw))
        index = len(self.requests) - 1

        problem = self.verify_signature(method, raw_path, query, headers, raw)
        if problem is not None:
            self.signature_failures.append(problem)
            if problem == "unknown access key":
                await _error(send, 403, "UnrecognizedClientException",
                             "The security token included in the request is invalid.")  # fmt: skip
            else:
                await _error(
                    send, 403, "InvalidSignatureException",
                    "The request signature we calculated does not match the signature you "
                    f"provided. ({problem})",
                )  # fmt: skip
            return
        if method == "GET" and raw_path == "/foundation-models":
            summaries = [
                {"modelId": m, "modelName": m, "providerName": "Fake",
                 "outputModalities": ["TEXT"], "responseStreamingSupported": True,
                 "inferenceTypesSupported": ["ON_DEMAND"]}
                for m in self.models
            ]  # fmt: skip
            await _json(send, 200, {"modelSummaries": summaries})
            return
        parts = raw_path.split("/")
        if (
            method != "POST"
            or len(parts) != 4
            or parts[1] != "model"
            or parts[3] not in ("converse", "converse-stream")
        ):
            await _error(send, 404, "UnknownOperationException", f"no route {raw_path}")
            return
        streaming = parts[3] == "converse-stream"
        try:
            _validate(body)
        except _Rejected as rejected:
            await _error(send, rejected.status, rejected.type_name, rejected.message)
            return

        scenario = self._next()
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
                await _scenario_error(send, scenario.error)
            elif streaming:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/vnd.amazon.eventstream"),
                            (b"x-amzn-requestid", b"fake-request-id"),
                        ],
                    }
                )
                for frame in _frames(scenario):
                    if gone.is_set():
                        return
                    if scenario.disconnect_after is not None and sent >= scenario.disconnect_after:
                        raise _Abort("scripted disconnect")
                    if (
                        scenario.malformed_chunk_after is not None
                        and sent == scenario.malformed_chunk_after
                    ):
                        # Flip one payload byte: the message CRC no longer matches.
                        frame = frame[:-5] + bytes([frame[-5] ^ 0xFF]) + frame[-4:]
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                    sent += 1
                    if scenario.chunk_delay:
                        await asyncio.sleep(scenario.chunk_delay)
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                finished = True
                await _json(send, 200, _completion(scenario))
        finally:
            finished = True
            watcher.cancel()


# --- validation like the service ---------------------------------------------------------------


def _validate(body: Any) -> None:
    def bad(message: str) -> _Rejected:
        return _Rejected(400, "ValidationException", message)

    if not isinstance(body, dict):
        raise _Rejected(400, "SerializationException", "Could not parse the request body")
    unknown = [k for k in body if k not in _TOP_LEVEL]
    if unknown:
        raise bad(f"Unknown field(s) {unknown}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("A conversation must start with a user message.")
    if messages[0].get("role") != "user":
        raise bad("A conversation must start with a user message. Try again with a user message.")
    tool_ids: set[str] = set()
    has_tool_blocks = False
    last_role = None
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise bad(f"messages.{i}.role must be user or assistant")
        if role == last_role:
            raise bad(
                "A conversation must alternate between user and assistant roles. Make sure "
                "the conversation alternates between user and assistant roles and try again."
            )
        last_role = role
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise bad(f"The content field in the Message object at messages.{i} is empty.")
        for j, block in enumerate(content):
            if not isinstance(block, dict) or len(block) != 1:
                raise bad(f"messages.{i}.content.{j} must set exactly one member")
            if "text" in block and not str(block["text"]).strip():
                raise bad(f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank.")  # fmt: skip
            if "toolUse" in block:
                has_tool_blocks = True
                use = block["toolUse"]
                tid = use.get("toolUseId", "")
                if not tid or len(tid) > 64 or any(c not in _TOOL_ID_CHARS for c in tid):
                    raise bad(f"messages.{i}.content.{j}.toolUse.toolUseId failed to satisfy constraint")  # fmt: skip
                if not isinstance(use.get("input"), dict | list | str | int | float | bool):
                    raise bad(f"messages.{i}.content.{j}.toolUse.input is required")
                tool_ids.add(tid)
            if "toolResult" in block:
                has_tool_blocks = True
                if role != "user":
                    raise bad("toolResult blocks must be in a user message")
                if block["toolResult"].get("toolUseId") not in tool_ids:
                    raise bad("The toolUseId of a toolResult does not match any toolUse block")
            if "image" in block:
                image = block["image"]
                if image.get("format") not in ("png", "jpeg", "gif", "webp"):
                    raise bad("image format must be png, jpeg, gif or webp")
                binascii.a2b_base64(image["source"]["bytes"])
    inference = body.get("inferenceConfig") or {}
    if set(inference) - _INFERENCE:
        raise bad(f"Unknown inferenceConfig field(s) {sorted(set(inference) - _INFERENCE)}")
    config = body.get("toolConfig")
    if has_tool_blocks and not config:
        raise bad("The toolConfig field must be defined when using toolUse and toolResult content blocks.")  # fmt: skip
    if config is not None:
        if not config.get("tools"):
            raise bad("toolConfig.tools must not be empty")
        choice = config.get("toolChoice")
        if choice is not None and (
            len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool")
        ):
            raise bad("toolConfig.toolChoice must be one of auto, any, tool")  # fmt: skip
    for block in body.get("system") or []:
        if "text" in block and not block["text"].strip():
            raise bad("The text field in the SystemContentBlock is blank.")


# --- rendering -----------------------------------------------------------------------------


def _usage(usage: UsageSpec) -> dict[str, Any]:
    # inputTokens excludes cache reads and writes, as the service reports it.
    return {
        "inputTokens": usage.prompt_tokens - usage.cached_tokens,
        "outputTokens": usage.completion_tokens,
        "totalTokens": usage.total_tokens,
        "cacheReadInputTokens": usage.cached_tokens,
        "cacheWriteInputTokens": 0,
    }


def _completion(scenario: Scenario) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if scenario.reasoning:
        content.append(
            {
                "reasoningContent": {
                    "reasoningText": {"text": "".join(scenario.reasoning), "signature": "sig-1"}
                }
            }
        )
    if scenario.text:
        content.append({"text": scenario.full_text})
    for call in scenario.tool_calls:
        content.append(
            {
                "toolUse": {
                    "toolUseId": call.id,
                    "name": call.name,
                    "input": json.loads(call.arguments),
                }
            }
        )
    out: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": _STOP[scenario.finish_reason],
        "metrics": {"latencyMs": 42},
    }
    out["usage"] = _usage(scenario.usage) if scenario.usage is not None else _usage(UsageSpec(0, 0))
    return out


def _frames(scenario: Scenario) -> list[bytes]:
    frames = [event_frame("messageStart", {"role": "assistant"})]
    block = 0
    if scenario.reasoning:
        for piece in scenario.reasoning:
            frames.append(
                event_frame(
                    "contentBlockDelta",
                    {"contentBlockIndex": block, "delta": {"reasoningContent": {"text": piece}}},
                )
            )
        frames.append(
            event_frame(
                "contentBlockDelta",
                {"contentBlockIndex": block, "delta": {"reasoningContent": {"signature": "sig-1"}}},
            )
        )
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    if scenario.text:
        for piece in scenario.text:
            frames.append(
                event_frame(
                    "contentBlockDelta", {"contentBlockIndex": block, "delta": {"text": piece}}
                )
            )
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    for call in scenario.tool_calls:
        frames.append(
            event_frame(
                "contentBlockStart",
                {"contentBlockIndex": block, "start": {"toolUse": {"toolUseId": call.id, "name": call.name}}},
            )
        )  # fmt: skip
        for piece in call.pieces():
            frames.append(
                event_frame(
                    "contentBlockDelta",
                    {"contentBlockIndex": block, "delta": {"toolUse": {"input": piece}}},
                )
            )
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    frames.append(event_frame("messageStop", {"stopReason": _STOP[scenario.finish_reason]}))
    if scenario.usage is not None:
        frames.append(
            event_frame("metadata", {"usage": _usage(scenario.usage), "metrics": {"latencyMs": 42}})
        )
    if isinstance(scenario, BedrockScenario) and scenario.stream_exception is not None:
        kind, message = scenario.stream_exception
        frames.insert(scenario.stream_exception_after, exception_frame(kind, message))
        del frames[scenario.stream_exception_after + 1 :]
    return frames


async def _scenario_error(send: Send, spec: ErrorSpec) -> None:
    status, type_name = _ERRORS[spec.kind]
    message = spec.message
    if spec.kind == "context_length":
        # Bedrock has no error code for this; the message is what clients key on.
        message = f"Input is too long for requested model. ({spec.message})"
    headers = list(spec.headers)
    if spec.retry_after is not None:
        value = spec.retry_after
        headers.append(("retry-after", str(int(value)) if value == int(value) else str(value)))
    await _error(send, spec.status or status, type_name, message, headers)


async def _error(
    send: Send,
    status: int,
    type_name: str,
    message: str,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    extra = [
        ("x-amzn-errortype", f"{type_name}:http://internal.amazon.com/coral/com.amazon.bedrock/")
    ]
    await _json(send, status, {"message": message}, extra + (headers or []))


async def _json(
    send: Send, status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> None:
    data = json.dumps(payload).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"x-amzn-requestid", b"fake-request-id"),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers or []]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})


# --- a test-side reader: Converse body -> canonical request ------------------------------


def _user_parts(blocks: list[dict[str, Any]]) -> str | list[TextPart | ImagePart]:
    parts: list[TextPart | ImagePart] = []
    for block in blocks:
        if "text" in block:
            parts.append(TextPart(block["text"]))
        elif "image" in block:
            image = block["image"]
            parts.append(
                ImagePart(f"data:image/{image['format']};base64,{image['source']['bytes']}")
            )
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    return parts


def _result_text(content: list[dict[str, Any]]) -> str:
    out = []
    for item in content:
        if "text" in item:
            out.append(item["text"])
        elif "json" in item:
            out.append(json.dumps(item["json"]))
    return "".join(out)


def read_converse(path: str, body: dict[str, Any]) -> ChatRequest:
    """Parse a Converse body (and the model id in its path) back into a canonical request,
    independently of the adapter's code, so tests compare in provider-neutral terms."""
    model = unquote(path.split("/")[2])
    messages: list[Message] = [
        Message("system", b["text"]) for b in body.get("system") or [] if "text" in b
    ]
    for turn in body["messages"]:
        blocks = turn["content"]
        if turn["role"] == "assistant":
            texts = [b["text"] for b in blocks if "text" in b]
            calls = [
                ToolCall(
                    b["toolUse"]["toolUseId"],
                    b["toolUse"]["name"],
                    json.dumps(b["toolUse"]["input"]),
                )
                for b in blocks
                if "toolUse" in b
            ]
            reasoning = [
                b["reasoningContent"]["reasoningText"] for b in blocks if "reasoningContent" in b
            ]
            messages.append(
                Message(
                    "assistant",
                    "".join(texts) if texts else None,
                    tool_calls=calls or None,
                    reasoning=reasoning[0]["text"] if reasoning else None,
                    reasoning_signature=reasoning[0].get("signature") if reasoning else None,
                )
            )
            continue
        pending: list[dict[str, Any]] = []
        for block in blocks:
            if "toolResult" in block:
                if pending:
                    messages.append(Message("user", _user_parts(pending)))
                    pending = []
                result = block["toolResult"]
                messages.append(
                    Message(
                        "tool", _result_text(result["content"]), tool_call_id=result["toolUseId"]
                    )
                )
            else:
                pending.append(block)
        if pending:
            messages.append(Message("user", _user_parts(pending)))
    tools = None
    choice: Any = None
    config = body.get("toolConfig")
    if config:
        tools = []
        for item in config["tools"]:
            spec = item["toolSpec"]
            tools.append(
                Tool(
                    spec["name"],
                    spec.get("description"),
                    spec["inputSchema"]["json"],
                    spec.get("strict"),
                )
            )
        wire_choice = config.get("toolChoice")
        if wire_choice:
            if "auto" in wire_choice:
                choice = "auto"
            elif "any" in wire_choice:
                choice = "required"
            else:
                choice = NamedToolChoice(wire_choice["tool"]["name"])
    inference = body.get("inferenceConfig") or {}
    return ChatRequest(
        model=model,
        messages=messages,
        temperature=inference.get("temperature"),
        top_p=inference.get("topP"),
        max_tokens=inference.get("maxTokens"),
        stop=inference.get("stopSequences"),
        tools=tools,
        tool_choice=choice,
        stream=path.endswith("/converse-stream"),
        extra=dict(body.get("additionalModelRequestFields") or {}),
    )
