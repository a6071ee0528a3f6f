"""``POST /v1/messages`` (and ``/v1/messages/count_tokens``) as raw ASGI endpoints.

The same shape as the OpenAI handler (parse, route, encode; see api/openai/handlers.py
for why the hot path bypasses FastAPI), speaking Anthropic's dialect: errors are
``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the status of the
``GatewayError``, and streams are Anthropic's named SSE events.

``anthropic-version`` is accepted and not required: the gateway speaks one version of the
dialect (2023-06-01, the only one Anthropic has published) whatever the client sends.
``x-api-key`` is accepted like ``Authorization``; keys are checked once virtual keys exist
(open mode until then).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

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
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    read_body,
    request_id,
    send_body,
)
from llm_gateway.api.errors import error_headers
from llm_gateway.api.headers import gateway_headers
from llm_gateway.api.openai.handlers import internal_error
from llm_gateway.api.sse import HeartbeatTicker, SSEResponse
from llm_gateway.core.errors import GatewayError, InvalidRequestError
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest
from llm_gateway.routing.router import CallTrace, ModelPlan, Router, close_stream

_encode = msgspec.json.encode


def _ids(rid: str) -> list[tuple[bytes, bytes]]:
    # The anthropic SDKs read ``request-id`` (``message._request_id``); ours is x-request-id.
    value = rid.encode()
    return [(b"x-request-id", value), (b"request-id", value)]


async def _send_error(send: Send, error: GatewayError, rid: str) -> None:
    headers = error_headers(error, rid)
    headers.append((b"request-id", rid.encode()))
    await send_body(send, error.status, error_body(error, rid), headers)


class Messages:
    def __init__(
        self,
        router: Router,
        *,
        max_body_bytes: int,
        max_messages: int,
        ticker: HeartbeatTicker,
    ) -> None:
        self._router = router
        self._max_body = max_body_bytes
        self._max_messages = max_messages
        self._ticker = ticker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        rid = request_id(scope)
        try:
            body = await read_body(scope, receive, self._max_body)
            request = parse_request(body)
            if len(request.messages) > self._max_messages:
                raise InvalidRequestError(
                    f"messages: too many messages ({len(request.messages)}); the limit is "
                    f"{self._max_messages} (server.max_messages).",
                    param="messages",
                )
            plan = self._router.resolve(request.model)
            request = plan.prepare(request)
        except GatewayError as error:
            await _send_error(send, error, rid)
            return
        watch = DisconnectWatch(receive)
        try:
            if request.stream:
                await self._stream(plan, request, rid, send, watch, started)
            else:
                await self._complete(plan, request, rid, send, watch, started)
        except asyncio.CancelledError:
            if not watch.absorb_cancel():
                raise
        finally:
            watch.finish()

    async def _complete(
        self,
        plan: ModelPlan,
        request: ChatRequest,
        rid: str,
        send: Send,
        watch: DisconnectWatch,
        started: float,
    ) -> None:
        trace = CallTrace()
        try:
            response, route = await self._router.complete(plan, request, trace)
            body = _encode(response_to_wire(response, id=f"msg_{rid}", model=request.model))
        except GatewayError as error:
            watch.finish()
            await _send_error(send, error, rid)
            return
        except Exception as exc:
            watch.finish()
            await _send_error(send, internal_error(exc), rid)
            return
        watch.finish()
        headers = _ids(rid) + gateway_headers(route, trace, started)
        headers.append((b"content-type", b"application/json"))
        await send_body(send, 200, body, headers)

    async def _stream(
        self,
        plan: ModelPlan,
        request: ChatRequest,
        rid: str,
        send: Send,
        watch: DisconnectWatch,
        started: float,
    ) -> None:
        sse = SSEResponse(send, _ids(rid))
        self._ticker.add(sse)
        encoder = AnthropicStreamEncoder(id=f"msg_{rid}", model=request.model)
        trace = CallTrace()
        try:
            try:
                route, first, events = await self._router.open_stream(plan, request, trace)
            except GatewayError as error:
                watch.finish()
                if sse.started:  # a heartbeat already committed us to a 200 stream
                    await sse.close(encoder.error(error))
                else:
                    await _send_error(send, error, rid)
                return
            try:
                sse.add_headers(gateway_headers(route, trace, started))
                await self._relay(sse, encoder, first, events, watch, trace)
            finally:
                await close_stream(events)
        finally:
            self._ticker.discard(sse)

    @staticmethod
    async def _relay(
        sse: SSEResponse,
        encoder: AnthropicStreamEncoder,
        first: list[StreamEvent],
        events: AsyncIterator[list[StreamEvent]],
        watch: DisconnectWatch,
        trace: CallTrace,
    ) -> None:
        encode = encoder.encode
        head = encoder.start(first)
        await sse.write(head + b"".join([f for e in first if (f := encode(e)) is not None]))
        write = sse.write
        try:
            if not encoder.failed:
                async for batch in events:
                    # One write per batch: events that arrived together leave together.
                    if len(batch) == 1:
                        frame = encode(batch[0])
                        if frame is not None:
                            await write(frame)
                    else:
                        data = b"".join([f for e in batch if (f := encode(e)) is not None])
                        if data:
                            await write(data)
                    if encoder.failed:  # a provider's ErrorEvent became the error frame: done
                        break
        except GatewayError as error:
            trace.finished(error)
            watch.finish()
            await sse.close(encoder.error(error))
            return
        except Exception as exc:  # a bug; cancellation (BaseException) passes through
            watch.finish()
            await sse.close(encoder.error(internal_error(exc)))
            return
        trace.finished(None)
        watch.finish()
        await sse.close(b"" if encoder.failed else encoder.end())


class CountTokens:
    """``POST /v1/messages/count_tokens``: a local estimate, never an upstream call.

    Uses the mock provider's approximation (about four characters per token), so it
    answers instantly for any model; exact counts would need each provider's tokenizer.
    """

    def __init__(self, router: Router, *, max_body_bytes: int) -> None:
        self._router = router
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope)
        try:
            body = await read_body(scope, receive, self._max_body)
            request = parse_count_tokens(body)
            self._router.resolve(request.model)  # an unknown model is a 404, as upstream
        except GatewayError as error:
            await _send_error(send, error, rid)
            return
        headers = _ids(rid)
        headers.append((b"content-type", b"application/json"))
        await send_body(send, 200, _encode({"input_tokens": approx_input_tokens(request)}), headers)
