"""The /ws chat protocol: parsing client frames and building the server's replies.

Client frames are JSON text objects::

    {"action": "llm/chat" | "llm/stream", "requestId": "optional, <= 128 chars",
     "data": {"messages": [{"role": "user", "content": "..."}], "modelId": "...",
              "provider": "...", "systemPrompt": "...", "temperature": 0.2,
              "maxTokens": 256, "metadata": {...}}}
    {"action": "cancel", "requestId": "..."}

Server frames all carry ``type`` and, when the frame concerns a request, ``requestId``
(the client's, or one the server generated)::

    {"type": "response", "requestId", "data": {text, model, requestedModel, provider,
                                                finishReason, stats, metadata}}
    {"type": "chunk", "requestId", "data": {"text"}}
    {"type": "reasoning", "requestId", "data": {"text"}}
    {"type": "done", "requestId", "data": {model, requestedModel, provider, finishReason,
                                            stats, metadata}}
    {"type": "cancelled", "requestId"}
    {"type": "error", "requestId"?, "error": {"message", "type", "code", "param"}}

``stats`` is the object of /api/llm/generate. ``metadata`` is the client's, echoed back
untouched (it is never sent upstream).
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_gateway.api.asgi import ledger_suffix
from llm_gateway.api.gateway.generate import CallSpec, Result
from llm_gateway.api.gateway.generate_wire import ChatMessageIn
from llm_gateway.core.errors import GatewayError
from llm_gateway.core.types import Message

Action = Literal["llm/chat", "llm/stream", "cancel"]
ACTIONS: tuple[str, ...] = ("llm/chat", "llm/stream", "cancel")
MAX_REQUEST_ID = 128

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class FrameError(Exception):
    """A frame the server cannot act on; answered with an error frame naming the problem."""

    def __init__(
        self,
        message: str,
        code: str,
        *,
        request_id: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.param = param


# One message shape for the HTTP chat stream and the WebSocket (``messages`` items).
WsMessage = ChatMessageIn


class WsChatData(BaseModel):
    # Unknown fields are ignored so clients may carry their own (e.g. "stream").
    model_config = ConfigDict(extra="ignore")

    messages: list[WsMessage] = Field(min_length=1)
    # camelCase: the protocol's spelling.
    modelId: str | None = None
    provider: str | None = None
    systemPrompt: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    maxTokens: int | None = Field(None, gt=0)
    metadata: dict[str, Any] | None = None

    def spec(self) -> CallSpec:
        return CallSpec(
            messages=[Message(role=m.role, content=m.content) for m in self.messages],
            model=self.modelId,
            provider=self.provider,
            system=self.systemPrompt,
            temperature=self.temperature,
            max_tokens=self.maxTokens,
        )


class Frame(msgspec.Struct, frozen=True):
    action: Action
    request_id: str
    data: WsChatData | None = None  # None only for "cancel"
    client_id: bool = True  # False: the server generated ``request_id``

    def ledger_id(self) -> str:
        """The usage record's id. Clients number requests per connection ("1", "2"...),
        and the ledger keeps one record per id, so a client's id gets a random suffix:
        ``~`` and 16 hex digits (64 bits), the format of HTTP ledger ids (``api/asgi``),
        which the status feed strips to show the id the client chose."""
        return self.request_id + ledger_suffix() if self.client_id else self.request_id


def new_request_id() -> str:
    return os.urandom(16).hex()


def parse_frame(text: str, max_bytes: int) -> Frame:
    """One client text frame; raises ``FrameError`` naming what is wrong with it."""
    # Characters are at most 4 bytes: only encode when the length alone cannot decide.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        raise FrameError(
            f"Frame is larger than the limit of {max_bytes} bytes (server.ws_max_frame_bytes).",
            "frame_too_large",
        )
    try:
        # msgspec, not json: it also refuses lone UTF-16 surrogates (``"\\ud800"``), which
        # could not be encoded back into a reply or sent upstream.
        raw = _decode(text)
    except msgspec.DecodeError as exc:
        raise FrameError(f"Frame is not valid JSON: {exc}.", "invalid_json") from None
    if not isinstance(raw, dict):
        raise FrameError(f"Frame must be a JSON object, not {type(raw).__name__}.", "invalid_frame")
    given = raw.get("requestId")
    if given is not None and (
        not isinstance(given, str) or not given or len(given) > MAX_REQUEST_ID
    ):
        raise FrameError(
            f"'requestId' must be a non-empty string of at most {MAX_REQUEST_ID} characters.",
            "invalid_request_id",
            param="requestId",
        )
    request_id: str | None = given
    action = raw.get("action")
    if action not in ACTIONS:
        shown = json.dumps(action)[:64] if action is not None else "missing"
        raise FrameError(
            f"Unknown action {shown}: use one of {', '.join(ACTIONS)}.",
            "unknown_action",
            request_id=request_id,
            param="action",
        )
    if action == "cancel":
        if request_id is None:
            raise FrameError(
                "'cancel' needs the 'requestId' of the request to stop.",
                "invalid_request_id",
                param="requestId",
            )
        return Frame(action="cancel", request_id=request_id)
    payload = raw.get("data")
    if not isinstance(payload, dict):
        raise FrameError(
            "'data' must be an object with 'messages' (and 'modelId').",
            "invalid_data",
            request_id=request_id,
            param="data",
        )
    try:
        data = WsChatData.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("data", *first.get("loc", ())))
        raise FrameError(
            f"Invalid value for '{where}': {first.get('msg')}.",
            "invalid_data",
            request_id=request_id,
            param=where,
        ) from None
    if request_id is None:
        return Frame(action=action, request_id=new_request_id(), data=data, client_id=False)
    return Frame(action=action, request_id=request_id, data=data)


# -- replies -------------------------------------------------------------------------------


def error_reply(
    message: str,
    code: str | None,
    *,
    kind: str = "invalid_request_error",
    request_id: str | None = None,
    param: str | None = None,
) -> bytes:
    frame: dict[str, Any] = {"type": "error"}
    if request_id is not None:
        frame["requestId"] = request_id
    frame["error"] = {"message": message, "type": kind, "code": code, "param": param}
    return _encode(frame)


def frame_error_reply(error: FrameError) -> bytes:
    return error_reply(error.message, error.code, request_id=error.request_id, param=error.param)


def gateway_error_reply(error: GatewayError, request_id: str | None) -> bytes:
    return error_reply(
        error.message,
        error.code,
        kind=error.openai_type,
        request_id=request_id,
        param=error.param,
    )


def _result_data(result: Result, metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "model": result.model,
        "requestedModel": result.requested_model,
        "provider": result.provider,
        "finishReason": result.finish_reason,
        "stats": result.stats,
        "metadata": metadata,
    }


def response_reply(request_id: str, result: Result, metadata: dict[str, Any] | None) -> bytes:
    data = {"text": result.text, **_result_data(result, metadata)}
    return _encode({"type": "response", "requestId": request_id, "data": data})


def done_reply(request_id: str, result: Result, metadata: dict[str, Any] | None) -> bytes:
    return _encode(
        {"type": "done", "requestId": request_id, "data": _result_data(result, metadata)}
    )


def chunk_reply(request_id: str, kind: str, text: str) -> bytes:
    name = "chunk" if kind == "text" else kind
    return _encode({"type": name, "requestId": request_id, "data": {"text": text}})


def cancelled_reply(request_id: str) -> bytes:
    return _encode({"type": "cancelled", "requestId": request_id})


__all__ = [
    "ACTIONS",
    "Frame",
    "FrameError",
    "WsChatData",
    "WsMessage",
    "cancelled_reply",
    "chunk_reply",
    "done_reply",
    "error_reply",
    "frame_error_reply",
    "gateway_error_reply",
    "new_request_id",
    "parse_frame",
    "response_reply",
]
