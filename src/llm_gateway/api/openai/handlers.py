"""``POST /v1/chat/completions`` as a raw ASGI endpoint: parse, route, encode.

Kept off FastAPI's request machinery because the hot path's budget is a few hundred
microseconds per request on one core (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import msgspec

from llm_gateway.api.asgi import (
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    read_body,
    request_id,
    send_body,
)
from llm_gateway.api.errors import error_headers, openai_error_body
from llm_gateway.api.headers import gateway_headers
from llm_gateway.api.openai.convert import parse_request, response_to_wire
from llm_gateway.api.openai.stream import OpenAIStreamEncoder
from llm_gateway.api.sse import HeartbeatTicker, SSEResponse
from llm_gateway.core.errors import GatewayError, InvalidRequestError, UpstreamError
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest
from llm_gateway.routing.router import CallTrace, ModelPlan, Router, close_stream

log = logging.getLogger("llm_gateway.api")
_encode = msgspec.json.encode


def internal_error(exc: BaseException) -> GatewayError:
    """A bug must still answer in the dialect's shape, without leaking internals."""
    log.error("unexpected error while serving a request", exc_info=exc)
    error = UpstreamError("The gateway hit an internal error while serving this request.")
    error.status = 500
    error.code = "internal_error"
    return error


class ChatCompletions:
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
            request, include_usage = parse_request(body)
            if len(request.messages) > self._max_messages:
                raise InvalidRequestError(
                    f"Too many messages: {len(request.messages)}; the limit is "
                    f"{self._max_messages} (server.max_messages).",
                    param="messages",
                )
            plan = self._router.resolve(request.model)
            request = plan.prepare(request)
        except GatewayError as error:
            await send_body(send, error.status, openai_error_body(error), error_headers(error, rid))
            return
        watch = DisconnectWatch(receive)
        try:
            if request.stream:
                await self._stream(plan, request, rid, send, watch, include_usage, started)
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
            body = _encode(response_to_wire(response, request.model))
        except GatewayError as error:
            watch.finish()
            await send_body(send, error.status, openai_error_body(error), error_headers(error, rid))
            return
        except Exception as exc:
            failure = internal_error(exc)
            watch.finish()
            await send_body(
                send, failure.status, openai_error_body(failure), error_headers(failure, rid)
            )
            return
        watch.finish()
        headers = gateway_headers(route, trace, started)
        headers.append((b"x-request-id", rid.encode()))
        headers.append((b"content-type", b"application/json"))
        await send_body(send, 200, body, headers)

    async def _stream(
        self,
        plan: ModelPlan,
        request: ChatRequest,
        rid: str,
        send: Send,
        watch: DisconnectWatch,
        include_usage: bool,
        started: float,
    ) -> None:
        sse = SSEResponse(send, [(b"x-request-id", rid.encode())])
        self._ticker.add(sse)
        trace = CallTrace()
        try:
            try:
                route, first, events = await self._router.open_stream(plan, request, trace)
            except GatewayError as error:
                watch.finish()
                if sse.started:  # a heartbeat already committed us to a 200 stream
                    await sse.close(OpenAIStreamEncoder.error(error))
                else:
                    await send_body(
                        send, error.status, openai_error_body(error), error_headers(error, rid)
                    )
                return
            sse.add_headers(gateway_headers(route, trace, started))
            try:
                await self._relay(sse, first, events, request, rid, watch, include_usage, trace)
            finally:
                await close_stream(events)
        finally:
            self._ticker.discard(sse)

    async def _relay(
        self,
        sse: SSEResponse,
        first: list[StreamEvent],
        events: AsyncIterator[list[StreamEvent]],
        request: ChatRequest,
        rid: str,
        watch: DisconnectWatch,
        include_usage: bool,
        trace: CallTrace,
    ) -> None:
        encoder = OpenAIStreamEncoder(
            id=f"chatcmpl-{rid}",
            created=int(time.time()),
            model=request.model,
            include_usage=include_usage,
        )
        encode = encoder.encode
        head = encoder.start()
        await sse.write(head + b"".join([f for e in first if (f := encode(e)) is not None]))
        write = sse.write
        try:
            async for batch in events:
                # One write per batch: events that arrived together leave together.
                if len(batch) == 1:
                    frame = encode(batch[0])
                    if frame is not None:
                        await write(frame)
                    continue
                data = b"".join([f for e in batch if (f := encode(e)) is not None])
                if data:
                    await write(data)
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
        await sse.close(encoder.end())
