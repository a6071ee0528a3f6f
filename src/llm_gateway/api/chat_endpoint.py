"""The one skeleton of every chat endpoint on the hot path, whatever its dialect.

A request goes: authenticate → read and parse the body → resolve the model → admit
(allow-list, rate limit, budget) → complete or stream → account (one usage record, settled
reservations). The OpenAI and Anthropic endpoints differ only in how they parse, render
a response, render an error and encode stream frames; they subclass ``ChatEndpoint`` and
fill in those hooks. Kept off FastAPI's request machinery because the hot path's budget
is a few hundred microseconds per request on one core (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from llm_gateway.api.asgi import (
    DisconnectWatch,
    Receive,
    Scope,
    Send,
    ledger_id,
    read_body,
    request_id,
)
from llm_gateway.api.headers import gateway_headers
from llm_gateway.api.sse import HeartbeatTicker, SSEResponse
from llm_gateway.core.errors import GatewayError, InvalidRequestError
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse
from llm_gateway.gate import Gate, StreamMeter, Ticket
from llm_gateway.gate.run import CLIENT_CLOSED, StreamCall, complete, internal_error
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import CallTrace, ModelPlan, Router


class StreamEncoder(Protocol):
    failed: bool  # the encoder already wrote a terminal error frame

    def start(self, first: list[StreamEvent]) -> bytes: ...

    def encode(self, event: StreamEvent) -> bytes | None: ...

    def error(self, error: GatewayError) -> bytes: ...

    def end(self) -> bytes: ...


class ChatEndpoint:
    endpoint = "chat"  # the ledger's name for this surface

    def __init__(
        self,
        router: Router,
        gate: Gate,
        *,
        max_body_bytes: int,
        max_messages: int,
        ticker: HeartbeatTicker,
    ) -> None:
        self._router = router
        self._gate = gate
        self._max_body = max_body_bytes
        self._max_messages = max_messages
        self._ticker = ticker

    # -- the dialect's hooks --------------------------------------------------------------

    def parse(self, body: bytes) -> tuple[ChatRequest, Any]:
        """The core request and any dialect options the encoder needs."""
        raise NotImplementedError

    async def send_error(self, send: Send, error: GatewayError, rid: str) -> None:
        raise NotImplementedError

    def id_headers(self, rid: str) -> list[tuple[bytes, bytes]]:
        return [(b"x-request-id", rid.encode())]

    def render(self, response: ChatResponse, request: ChatRequest, rid: str) -> bytes:
        raise NotImplementedError

    def stream_encoder(self, request: ChatRequest, rid: str, options: Any) -> StreamEncoder:
        raise NotImplementedError

    def too_many_messages(self, count: int) -> InvalidRequestError:
        return InvalidRequestError(
            f"Too many messages: {count}; the limit is {self._max_messages} (server.max_messages).",
            param="messages",
        )

    # -- the skeleton ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        rid = request_id(scope)
        caller = None
        model = None
        try:
            caller = self._gate.authenticate(scope)
            body = await read_body(scope, receive, self._max_body)
            request, options = self.parse(body)
            model = request.model
            if len(request.messages) > self._max_messages:
                raise self.too_many_messages(len(request.messages))
            plan = self._router.resolve(model)
            request = plan.prepare(request)
            ticket = await self._gate.admit(
                caller,
                plan,
                request,
                endpoint=self.endpoint,
                request_id=ledger_id(scope, rid),
                started=started,
            )
        except Exception as exc:  # cancellation (the client left while we read) passes
            error = exc if isinstance(exc, GatewayError) else internal_error(exc)
            if caller is not None and model is not None:
                # Refused for a known caller and model (limit, budget, allow-list, unknown
                # model): the ledger keeps it, so dashboards see rejections too.
                self._gate.reject(
                    caller,
                    model,
                    error,
                    endpoint=self.endpoint,
                    request_id=ledger_id(scope, rid),
                    started=started,
                )
            await self.send_error(send, error, rid)
            return
        watch = DisconnectWatch(receive)
        try:
            if request.stream:
                await self._stream(plan, request, options, rid, send, watch, ticket)
            else:
                await self._complete(plan, request, rid, send, watch, ticket)
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
        ticket: Ticket,
    ) -> None:
        trace = CallTrace()

        def render(response: ChatResponse, route: Route) -> tuple[bytes, Route]:
            return self.render(response, request, rid), route

        try:
            (body, route), _ = await complete(self._router, plan, request, ticket, trace, render)
        except GatewayError as error:  # the ticket is finished; cancellation passes
            watch.finish()
            await self.send_error(send, error, rid)
            return
        watch.finish()
        headers = self.id_headers(rid)
        headers += gateway_headers(route, trace, ticket.started)
        headers += ticket.headers()
        headers.append((b"content-type", b"application/json"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _stream(
        self,
        plan: ModelPlan,
        request: ChatRequest,
        options: Any,
        rid: str,
        send: Send,
        watch: DisconnectWatch,
        ticket: Ticket,
    ) -> None:
        sse = SSEResponse(send, self.id_headers(rid))
        self._ticker.add(sse)
        encoder = self.stream_encoder(request, rid, options)
        run = StreamCall(self._router, plan, request, ticket, response=sse)
        try:
            async with run:
                first = await run.open()
                assert run.route is not None and run.events is not None
                headers = gateway_headers(run.route, run.trace, ticket.started)
                sse.add_headers(headers + ticket.headers())
                run.error = await self._relay(sse, encoder, first, run.events, watch, run.meter)
        except GatewayError as error:  # opening failed (the relay answers its own errors)
            watch.finish()
            if sse.started:  # a heartbeat already committed us to a 200 stream
                await sse.close(encoder.error(error))
            else:
                await self.send_error(send, error, rid)
        finally:
            self._ticker.discard(sse)

    @staticmethod
    async def _relay(
        sse: SSEResponse,
        encoder: StreamEncoder,
        first: list[StreamEvent],
        events: AsyncIterator[list[StreamEvent]],
        watch: DisconnectWatch,
        meter: StreamMeter,
    ) -> GatewayError | None:
        """Writes the stream; returns the error that ended it, if one did."""
        encode = encoder.encode
        meter.observe(first)
        head = encoder.start(first)
        await sse.write(head + b"".join([f for e in first if (f := encode(e)) is not None]))
        write = sse.write
        observe = meter.observe
        try:
            if not encoder.failed:
                async for batch in events:
                    observe(batch)
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
            watch.finish()
            await sse.close(encoder.error(error))
            return error
        except Exception as exc:  # a bug; cancellation (BaseException) passes through
            watch.finish()
            failure = internal_error(exc)
            await sse.close(encoder.error(failure))
            return failure
        watch.finish()
        await sse.close(b"" if encoder.failed else encoder.end())
        return None


__all__ = ["CLIENT_CLOSED", "ChatEndpoint", "StreamEncoder", "internal_error"]
