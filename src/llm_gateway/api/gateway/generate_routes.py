"""``POST /api/llm/generate``, ``POST /api/llm/stream`` and ``POST /api/chat/stream``.

FastAPI parses and validates the body (and documents it); the answer is then produced
by a small raw-ASGI response, as on the hot path: it watches for the client going away
(which cancels the upstream call at once, streamed or not), sends SSE frames unbuffered,
and registers with the shared heartbeat ticker while the upstream is silent. Frames are
described in ``generate_wire``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from llm_gateway.api.asgi import DisconnectWatch, ledger_id, request_id, send_body
from llm_gateway.api.errors import error_headers, openai_error_body
from llm_gateway.api.gateway.generate import Call, CallSpec, ChunkKind, ClientGone, Generator
from llm_gateway.api.gateway.generate_wire import (
    DONE_FRAME,
    SSE_DESCRIPTION,
    SSE_EXAMPLE,
    ChatStreamRequest,
    GatewayErrorBody,
    GenerateRequest,
    GenerateResponse,
    StreamRequest,
    chunk_frame,
    error_frame,
    response_body,
    stats_frame,
)
from llm_gateway.api.sse import HeartbeatTicker, SSEResponse
from llm_gateway.core.errors import GatewayError, PayloadTooLargeError
from llm_gateway.core.types import Message
from llm_gateway.gate import Caller, Gate

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

Runner = Callable[[Scope, Receive, Send], Awaitable[None]]

_SSE_RESPONSE: dict[str, Any] = {
    "description": "An SSE stream of named events.",
    "content": {"text/event-stream": {"schema": {"type": "string"}, "example": SSE_EXAMPLE}},
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": GatewayErrorBody, "description": text}
    for code, text in [
        (400, "Invalid request (the message names the field)"),
        (401, "Missing or invalid API key"),
        (402, "The key's budget is used up (code insufficient_quota)"),
        (403, "The key may not use this model"),
        (404, "Unknown model or provider"),
        (413, "Body too large"),
        (429, "Rate limited"),
        (500, "The gateway hit an internal error"),
        (502, "The provider failed"),
        (503, "Provider unavailable or overloaded"),
        (504, "The provider timed out"),
    ]
}


class _Run(Response):
    """A response that is a raw ASGI callable: FastAPI hands it the original receive."""

    def __init__(self, run: Runner) -> None:
        super().__init__()
        self._run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._run(scope, receive, send)


class EventStream(Response):
    """Only names the media type of the streaming endpoints in the OpenAPI document."""

    media_type = "text/event-stream"


class Generation:
    """Serves one admitted-to-be call as JSON or as SSE."""

    def __init__(
        self,
        generator: Generator,
        ticker: HeartbeatTicker,
        caller: Caller,
        spec: CallSpec,
        *,
        endpoint: str,
        started: float,
    ) -> None:
        self._generator = generator
        self._ticker = ticker
        self._caller = caller
        self._spec = spec
        self._endpoint = endpoint
        self._started = started

    async def _admit(self, scope: Scope, send: Send, rid: str, stream: bool) -> Call | None:
        """The admitted call, or None once the refusal (or a bug's 500) has been sent."""
        try:
            return await self._generator.admit(
                self._caller,
                self._spec,
                endpoint=self._endpoint,
                request_id=ledger_id(scope, rid),
                started=self._started,
                stream=stream,
            )
        except GatewayError as error:  # Generator.admit turns a bug into a 500 too
            await _send_error(send, error, rid)
            return None

    async def json(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope)
        watch = DisconnectWatch(receive)
        try:
            call = await self._admit(scope, send, rid, stream=False)
            if call is None:
                return
            try:
                result = await call.complete()
            except GatewayError as error:
                watch.finish()
                await _send_error(send, error, rid)
                return
            watch.finish()
            headers = [
                (b"content-type", b"application/json"),
                (b"x-request-id", rid.encode()),
                *call.rate_limit_headers(),
            ]
            await send_body(send, 200, response_body(result), headers)
        except asyncio.CancelledError:
            if not watch.absorb_cancel():
                raise
        finally:
            watch.finish()

    async def sse(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id(scope)
        sse = SSEResponse(send, [(b"x-request-id", rid.encode())])
        watch = DisconnectWatch(receive)
        try:
            call = await self._admit(scope, send, rid, stream=True)
            if call is None:
                return
            sse.add_headers(call.rate_limit_headers())
            self._ticker.add(sse)

            async def emit(kind: ChunkKind, text: str) -> None:
                try:
                    await sse.write(chunk_frame(kind, text))
                except OSError as exc:  # the server could not write: the client is gone
                    raise ClientGone() from exc

            try:
                result = await call.stream(emit, sse)
            except GatewayError as error:
                watch.finish()
                if sse.started:  # a frame (or heartbeat) already committed us to a 200
                    await sse.close(error_frame(error) + DONE_FRAME)
                else:
                    await _send_error(send, error, rid)
                return
            except ClientGone:
                return
            watch.finish()
            await sse.close(stats_frame(result) + DONE_FRAME)
        except asyncio.CancelledError:
            if not watch.absorb_cancel():
                raise
        finally:
            watch.finish()
            self._ticker.discard(sse)


async def _send_error(send: Send, error: GatewayError, rid: str) -> None:
    await send_body(send, error.status, openai_error_body(error), error_headers(error, rid))


def prompt_spec(body: GenerateRequest) -> CallSpec:
    """The call of /api/llm/generate and /api/llm/stream: one user message."""
    return CallSpec(
        messages=[Message(role="user", content=body.prompt)],
        model=body.model,
        provider=body.provider,
        system=body.system,
        temperature=body.temperature,
        max_tokens=body.max_tokens,
    )


def limited_route(limit: int) -> type[APIRoute]:
    """A route class that refuses a declared body over ``limit`` with 413 before FastAPI
    reads it (FastAPI reads the whole body before any dependency runs)."""

    class LimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                declared = request.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise PayloadTooLargeError(
                        f"Request body is larger than the limit of {limit} bytes "
                        "(server.max_body_bytes)."
                    )
                return await handler(request)

            return limited

    return LimitedRoute


def generate_routes(state: GatewayState) -> APIRouter:
    """The /api/llm generation endpoints over ``state``'s router and gate."""
    generator = Generator.for_state(state)
    gate: Gate = state.gate
    ticker = state.ticker
    max_body = state.config.server.max_body_bytes

    def authenticate(request: Request) -> Caller:
        return gate.authenticate(request.scope)

    # A default, not an Annotated alias: with postponed annotations FastAPI resolves
    # annotation names in module globals, where this closure is not.
    authenticated = Depends(authenticate)

    def serve(caller: Caller, spec: CallSpec, endpoint: str, stream: bool) -> Response:
        run = Generation(
            generator, ticker, caller, spec, endpoint=endpoint, started=time.monotonic()
        )
        return _Run(run.sse if stream else run.json)

    router = APIRouter(tags=["Gateway API"], route_class=limited_route(max_body))

    @router.post(
        "/api/llm/generate",
        summary="Generate text from one prompt",
        description="Answers a prompt with the text and its stats. With `stream: true` the "
        "answer is a stream of server-sent events instead:\n\n" + SSE_DESCRIPTION,
        response_model=GenerateResponse,
        responses={
            200: {
                "description": "The answer (JSON), or with `stream: true` an SSE stream.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **_ERRORS,
        },
    )
    async def generate(body: GenerateRequest, caller: Caller = authenticated) -> Response:
        return serve(caller, prompt_spec(body), "api.generate", body.stream)

    @router.post(
        "/api/llm/stream",
        summary="Stream text from one prompt (SSE)",
        description="The body of /api/llm/generate; the answer is always an SSE stream.\n\n"
        + SSE_DESCRIPTION,
        response_class=EventStream,
        responses={200: _SSE_RESPONSE, **_ERRORS},
    )
    async def stream(body: StreamRequest, caller: Caller = authenticated) -> Response:
        return serve(caller, prompt_spec(body), "api.stream", True)

    @router.post(
        "/api/chat/stream",
        summary="Stream a chat answer (SSE)",
        description="Answers a conversation (`messages`, with an optional `system` prompt "
        "put first) as an SSE stream.\n\n" + SSE_DESCRIPTION,
        response_class=EventStream,
        responses={200: _SSE_RESPONSE, **_ERRORS},
    )
    async def chat_stream(body: ChatStreamRequest, caller: Caller = authenticated) -> Response:
        spec = CallSpec(
            messages=[Message(role=m.role, content=m.content) for m in body.messages],
            model=body.model,
            provider=body.provider,
            system=body.system,
            temperature=body.temperature,
            max_tokens=body.max_tokens,
        )
        return serve(caller, spec, "api.stream", True)

    return router


__all__ = ["EventStream", "Generation", "generate_routes"]
