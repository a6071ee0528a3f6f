"""``WS /api/llm/ws/status``: the live status feed (frames in docs/status-api.md).

On connect: authentication (``state.gate.authenticate``; a bad or missing key where one is
required gets an ``error`` frame, then close 1008), then the full ``status`` frame, then
every frame the hub broadcasts: ``provider_state`` on each change, ``stats`` per finished
request, ``status`` every ``status.interval_seconds``.

Each connection has three tasks: a sender draining its queue into the socket (the only
writer), a listener (client ``ping``/``status`` requests, and noticing a disconnect) and
the hub's ``dropped`` event. Whichever ends first ends the connection, so a client that
stops reading is closed (1013) without ever slowing the hub or the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket

from llm_gateway.api.ws.hub import StatusHub, Subscription, encode
from llm_gateway.core.errors import GatewayError

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

STATUS_PATH = "/api/llm/ws/status"
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
MAX_CLIENT_MESSAGE = 4096  # clients only send tiny requests here
MAX_BAD_MESSAGES = 10
CLOSE_WAIT_SECONDS = 1.0  # a close frame to a client that stopped reading may never go out


def error_frame(message: str, *, code: str, kind: str = "invalid_request_error") -> str:
    return encode({"type": "error", "error": {"message": message, "type": kind, "code": code}})


def status_ws_routes(state: GatewayState) -> APIRouter:
    router = APIRouter()

    @router.websocket(STATUS_PATH)
    async def status_feed(websocket: WebSocket) -> None:
        await serve_status(websocket, state)

    return router


async def serve_status(websocket: WebSocket, state: GatewayState) -> None:
    try:
        state.gate.authenticate(websocket.scope)
    except GatewayError as exc:
        # Accept first so the client can read why, then close with policy violation.
        await websocket.accept()
        await websocket.send_text(
            error_frame(exc.message, code=exc.code or "", kind=exc.openai_type)
        )
        await websocket.close(CLOSE_POLICY)
        return
    await websocket.accept()
    hub: StatusHub = state.hub
    sub = hub.subscribe()
    sender = asyncio.ensure_future(_send_all(websocket, sub))
    listener = asyncio.ensure_future(_listen(websocket, sub, hub))
    dropped = asyncio.ensure_future(sub.dropped.wait())
    tasks = {sender, listener, dropped}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(sub)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    code: int | None = None
    flush = False
    if dropped in done:
        code = sub.close_code
    elif listener in done and not listener.cancelled() and listener.exception() is None:
        code = listener.result()
        flush = True  # the error frame saying why goes out before the close
    if code is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                while flush and not sub.queue.empty():
                    await websocket.send_text(sub.queue.get_nowait())
                await websocket.close(code)


async def _send_all(websocket: WebSocket, sub: Subscription) -> None:
    queue = sub.queue
    while True:
        await websocket.send_text(await queue.get())


async def _listen(websocket: WebSocket, sub: Subscription, hub: StatusHub) -> int | None:
    """Answers client requests; returns a close code for abuse, None on disconnect."""
    bad = 0
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is not None and len(text) > MAX_CLIENT_MESSAGE:
            sub.offer(error_frame("message too large", code="message_too_large"))
            return CLOSE_TOO_BIG
        reply = _reply(text, hub)
        sub.offer(reply)
        if reply.startswith('{"type":"error"'):
            bad += 1
            if bad >= MAX_BAD_MESSAGES:
                sub.offer(error_frame("too many invalid messages", code="too_many_errors"))
                return CLOSE_POLICY


def _reply(text: str | None, hub: StatusHub) -> str:
    if text is None:
        return error_frame("binary frames are not supported; send JSON text", code="binary_frame")
    try:
        request: Any = json.loads(text)
    except ValueError:
        return error_frame('not JSON: send {"type": "ping" | "status"}', code="invalid_json")
    kind = request.get("type") if isinstance(request, dict) else None
    if kind == "ping":
        return encode({"type": "pong"})
    if kind == "status":
        return encode(hub.status())
    return error_frame(
        f"unknown message type {kind!r}: expected 'ping' or 'status'", code="unknown_type"
    )
