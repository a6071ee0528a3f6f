"""``POST /v1/messages`` (and ``/v1/messages/count_tokens``) as raw ASGI endpoints.

The same shape as the OpenAI handler (parse, route, encode; see api/openai/handlers.py
for why the hot path bypasses FastAPI), speaking Anthropic's dialect: errors are
``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the status of the
``GatewayError``, and streams are Anthropic's named SSE events.

``anthropic-version`` is accepted and not required: the gateway speaks one version of the
dialect (2023-06-01, the only one Anthropic has published) whatever the client sends.
``x-api-key`` is accepted like ``Authorization`` (the gate reads both).
"""

from __future__ import annotations

from typing import Any

import msgspec

from llm_gateway.api.anthropic.convert import (
    approx_input_tokens,
    error_body,
    parse_count_tokens,
    parse_request,
    response_to_wire,
)
from llm_gateway.api.anthropic.stream import AnthropicStreamEncoder
from llm_gateway.api.asgi import (
    Receive,
    Scope,
    Send,
    read_body,
    request_id,
    send_body,
)
from llm_gateway.api.chat_endpoint import ChatEndpoint
from llm_gateway.api.errors import error_headers
from llm_gateway.core.errors import GatewayError, InvalidRequestError
from llm_gateway.core.types import ChatRequest, ChatResponse
from llm_gateway.gate import Gate
from llm_gateway.routing.router import Router

_encode = msgspec.json.encode


def _ids(rid: str) -> list[tuple[bytes, bytes]]:
    # The anthropic SDKs read ``request-id`` (``message._request_id``); ours is x-request-id.
    value = rid.encode()
    return [(b"x-request-id", value), (b"request-id", value)]


async def _send_error(send: Send, error: GatewayError, rid: str) -> None:
    headers = error_headers(error, rid)
    headers.append((b"request-id", rid.encode()))
    await send_body(send, error.status, error_body(error, rid), headers)


class Messages(ChatEndpoint):
    endpoint = "messages"

    def parse(self, body: bytes) -> tuple[ChatRequest, Any]:
        return parse_request(body), None

    def too_many_messages(self, count: int) -> InvalidRequestError:
        return InvalidRequestError(
            f"messages: too many messages ({count}); the limit is "
            f"{self._max_messages} (server.max_messages).",
            param="messages",
        )

    async def send_error(self, send: Send, error: GatewayError, rid: str) -> None:
        await _send_error(send, error, rid)

    def id_headers(self, rid: str) -> list[tuple[bytes, bytes]]:
        return _ids(rid)

    def render(self, response: ChatResponse, request: ChatRequest, rid: str) -> bytes:
        return _encode(response_to_wire(response, id=f"msg_{rid}", model=request.model))

    def stream_encoder(
        self, request: ChatRequest, rid: str, options: Any
    ) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(id=f"msg_{rid}", model=request.model)


class CountTokens:
    """``POST /v1/messages/count_tokens``: a local estimate, never an upstream call.

    Uses the mock provider's approximation (about four characters per token), so it
    answers instantly for any model; exact counts would need each provider's tokenizer.
    """

    def __init__(self, router: Router, gate: Gate, *, max_body_bytes: int) -> None:
        self._router = router
        self._gate = gate
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope)
        try:
            caller = self._gate.authenticate(scope)
            body = await read_body(scope, receive, self._max_body)
            request = parse_count_tokens(body)
            self._router.resolve(request.model)  # an unknown model is a 404, as upstream
            self._gate.check_model(caller, request.model)
        except GatewayError as error:
            await _send_error(send, error, rid)
            return
        headers = _ids(rid)
        headers.append((b"content-type", b"application/json"))
        await send_body(send, 200, _encode({"input_tokens": approx_input_tokens(request)}), headers)
