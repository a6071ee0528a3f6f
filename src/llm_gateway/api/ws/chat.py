"""``WS /ws``: chat over a WebSocket, several requests in flight per connection.

The protocol (frames, replies) is in ``chat_protocol``. This module runs a connection:

- Authentication happens once, at connect (``Authorization``/``x-api-key`` header or
  ``?token=``, see ``Gate.authenticate``). A refused client is accepted, told why in an
  error frame, and closed with 1008 (policy violation), so browsers can show the reason.
- Each ``llm/chat`` / ``llm/stream`` runs in its own task, so a long stream does not hold
  up the next request; at most ``MAX_IN_FLIGHT`` per connection (an error frame beyond).
  Reply frames are written under one lock, so frames of concurrent requests interleave
  but never mix.
- ``cancel`` cancels that request's task, which closes its upstream call on the way out,
  and answers ``cancelled``.
- Bad frames (binary, oversized, not JSON, not an object, unknown action, invalid data)
  get an error frame naming the problem; the ``MAX_BAD_FRAMES``-th bad frame on a
  connection closes it with 1008.
- When the client goes away every in-flight request is cancelled, and with it its
  upstream call; usage is still recorded (the gate's ticket is finished with 499).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from llm_gateway.api.gateway.generate import (
    ChunkKind,
    ClientGone,
    Generator,
)
from llm_gateway.api.ws.chat_protocol import (
    Frame,
    FrameError,
    cancelled_reply,
    chunk_reply,
    done_reply,
    error_reply,
    frame_error_reply,
    gateway_error_reply,
    parse_frame,
    response_reply,
)
from llm_gateway.core.errors import GatewayError
from llm_gateway.gate import Caller

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

log = logging.getLogger("llm_gateway.api.ws")

MAX_IN_FLIGHT = 16
MAX_BAD_FRAMES = 10
POLICY_VIOLATION = 1008
ENDPOINT = "ws.chat"


class ChatConnection:
    def __init__(
        self,
        websocket: WebSocket,
        generator: Generator,
        caller: Caller,
        *,
        max_frame_bytes: int,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_bad_frames: int = MAX_BAD_FRAMES,
    ) -> None:
        self._ws = websocket
        self._generator = generator
        self._caller = caller
        self._max_frame = max_frame_bytes
        self._max_in_flight = max_in_flight
        self._max_bad = max_bad_frames
        self._bad_frames = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        self._send_lock = asyncio.Lock()
        self._closed = False

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise ClientGone()
        async with self._send_lock:
            try:
                await self._ws.send_text(frame.decode())
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                self._closed = True
                raise ClientGone() from exc

    async def serve(self) -> None:
        """Reads frames until the client leaves or is closed for abuse."""
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                try:
                    if text is None:
                        raise FrameError(
                            "Binary frames are not supported: send JSON as text frames.",
                            "binary_frame",
                        )
                    frame = parse_frame(text, self._max_frame)
                except FrameError as error:
                    if not await self._bad_frame(error):
                        return
                    continue
                await self._dispatch(frame)
        except ClientGone:
            return
        finally:
            self._closed = True
            await self._cancel_all()

    async def _bad_frame(self, error: FrameError) -> bool:
        """Answers a bad frame; False once the connection was closed for abuse."""
        self._bad_frames += 1
        await self.send(frame_error_reply(error))
        if self._bad_frames < self._max_bad:
            return True
        reason = f"too many invalid frames ({self._bad_frames})"
        await self.send(error_reply(reason.capitalize() + ".", "too_many_invalid_frames"))
        self._closed = True
        with contextlib.suppress(Exception):
            await self._ws.close(POLICY_VIOLATION, reason)
        return False

    async def _dispatch(self, frame: Frame) -> None:
        rid = frame.request_id
        if frame.action == "cancel":
            task = self._tasks.get(rid)
            if task is None or task.done():  # done: its last frame is already sent
                await self.send(
                    error_reply(
                        f"No request '{rid}' is in flight on this connection.",
                        "unknown_request_id",
                        request_id=rid,
                        param="requestId",
                    )
                )
                return
            self._cancel_requested.add(rid)
            task.cancel()
            return
        if rid in self._tasks:
            await self.send(
                error_reply(
                    f"A request '{rid}' is already in flight on this connection.",
                    "duplicate_request_id",
                    request_id=rid,
                    param="requestId",
                )
            )
            return
        if len(self._tasks) >= self._max_in_flight:
            await self.send(
                error_reply(
                    f"Too many requests in flight on this connection (the limit is "
                    f"{self._max_in_flight}); wait for one to finish.",
                    "too_many_in_flight",
                    kind="rate_limit_error",
                    request_id=rid,
                )
            )
            return
        task = asyncio.get_running_loop().create_task(self._run(frame, time.monotonic()))
        self._tasks[rid] = task
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for rid, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[rid]
                self._cancel_requested.discard(rid)
                return

    async def _run(self, frame: Frame, started: float) -> None:
        rid = frame.request_id
        data = frame.data
        assert data is not None
        stream = frame.action == "llm/stream"
        try:
            call = await self._generator.admit(
                self._caller,
                data.spec(),
                endpoint=ENDPOINT,
                request_id=frame.ledger_id(),
                started=started,
                stream=stream,
            )
            if stream:

                async def emit(kind: ChunkKind, text: str) -> None:
                    await self.send(chunk_reply(rid, kind, text))

                result = await call.stream(emit)
                await self.send(done_reply(rid, result, data.metadata))
            else:
                result = await call.complete()
                await self.send(response_reply(rid, result, data.metadata))
        except GatewayError as error:
            with contextlib.suppress(ClientGone):
                await self.send(gateway_error_reply(error, rid))
        except ClientGone:
            return
        except asyncio.CancelledError:
            if rid not in self._cancel_requested or self._closed:
                raise  # the connection is going away
            # Cancelled by the client's own "cancel": the upstream is closed; say so.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            with contextlib.suppress(ClientGone):
                await self.send(cancelled_reply(rid))
        except Exception:  # a bug: answer, keep the connection serving other requests
            log.exception("websocket request %s failed", rid)
            with contextlib.suppress(ClientGone):
                await self.send(
                    error_reply(
                        "The gateway hit an internal error while serving this request.",
                        "internal_error",
                        kind="api_error",
                        request_id=rid,
                    )
                )

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


WS_DESCRIPTION = """`WS /ws`: chat over a WebSocket (OpenAPI cannot describe WebSocket routes, so the
protocol is here; full text in docs/gateway-generate.md).

Connect with `Authorization: Bearer <key>`, `x-api-key`, or `?token=<key>`; a refused
connection gets one `error` frame and is closed with 1008.

Client frames (JSON text): `{"action": "llm/chat" | "llm/stream", "requestId"?: "...",
"data": {"messages": [{"role", "content"}], "modelId", "provider"?, "systemPrompt"?,
"temperature"?, "maxTokens"?, "metadata"?}}` and `{"action": "cancel", "requestId"}`.

Server frames, each with `type` and the request's `requestId` (the client's or a generated
one): `response` `{data: {text, model, requestedModel, provider, finishReason, stats,
metadata}}` for `llm/chat`; `chunk` `{data: {text}}`... then `done` `{data: {model,
requestedModel, provider, finishReason, stats, metadata}}` for `llm/stream`; `cancelled`;
`error` `{error: {message, type, code, param}}`. `stats` is the object of
`/api/llm/generate`.

Up to 16 requests in flight per connection; bad frames (oversized over
`server.ws_max_frame_bytes`, not JSON, not an object, binary, unknown action, invalid data)
get an error frame naming the problem; the 10th bad frame closes the connection with 1008.
Closing the socket cancels every in-flight request and its upstream call."""

# For the OpenAPI document's tag list (FastAPI leaves WebSocket routes out of it).
OPENAPI_TAG: dict[str, str] = {"name": "WebSocket chat", "description": WS_DESCRIPTION}


def chat_ws_routes(state: GatewayState) -> APIRouter:
    """The ``/ws`` chat endpoint over ``state``'s router and gate."""
    generator = Generator.for_state(state)
    gate = state.gate
    max_frame = state.config.server.ws_max_frame_bytes
    router = APIRouter()

    @router.websocket("/ws", name="chat_websocket")
    async def chat_websocket(websocket: WebSocket) -> None:
        """Chat over WebSocket; the protocol is in ``api/ws/chat_protocol.py`` and
        docs/gateway-generate.md."""
        try:
            caller = gate.authenticate(websocket.scope)
        except GatewayError as error:
            await refuse(websocket, error)
            return
        await websocket.accept()
        connection = ChatConnection(websocket, generator, caller, max_frame_bytes=max_frame)
        await connection.serve()

    chat_websocket.__doc__ = WS_DESCRIPTION
    return router


async def refuse(websocket: WebSocket, error: GatewayError) -> None:
    """Accept, say why in an error frame, close with 1008: clients see the reason."""
    await websocket.accept()
    # A close reason is at most 123 bytes (RFC 6455); the error frame has the full text.
    reason = error.message.encode()[:120].decode(errors="ignore")
    with contextlib.suppress(Exception):
        await websocket.send_text(gateway_error_reply(error, None).decode())
        await websocket.close(POLICY_VIOLATION, reason)


__all__ = [
    "MAX_BAD_FRAMES",
    "MAX_IN_FLIGHT",
    "OPENAPI_TAG",
    "WS_DESCRIPTION",
    "ChatConnection",
    "chat_ws_routes",
]
