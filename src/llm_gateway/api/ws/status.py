"""``WS /api/llm/ws/status``: the live status feed (frames in docs/status-api.md).

On connect: authentication (``state.gate.authenticate``; a bad or missing key where one is
required gets an ``error`` frame, then close 1008; in open mode another website's page is
refused with 403, see ``access``), then the full ``status`` frame, then every frame the hub
sends this connection: ``provider_state`` on each change, ``status`` every
``status.interval_seconds``, and ``stats`` per finished request: every request's for the
admin key (or anyone in open mode), only its own key's requests' for a virtual key.

Each connection has four tasks: a sender draining its queue into the socket (the only
writer), a listener (client ``ping``/``status`` requests, and noticing a disconnect), the
hub's ``dropped`` event, and a key watch that looks the caller up again every
``KEY_RECHECK_SECONDS`` (at most the status interval), so a key revoked, expired or
deleted while connected is told so and closed (1008). Whichever ends first ends the
connection, so a client that stops reading is closed (1013) without ever slowing the hub
or the other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket

from llm_gateway.api.ws.access import foreign_in_open_mode, recheck, refuse
from llm_gateway.api.ws.chat_protocol import gateway_error_reply
from llm_gateway.api.ws.hub import StatusHub, Subscription, encode
from llm_gateway.core.errors import AuthenticationError, GatewayError
from llm_gateway.gate import Caller, Gate

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

STATUS_PATH = "/api/llm/ws/status"
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
MAX_CLIENT_MESSAGE = 4096  # clients only send tiny requests here
MAX_BAD_MESSAGES = 10
CLOSE_WAIT_SECONDS = 1.0  # a close frame to a client that stopped reading may never go out
KEY_RECHECK_SECONDS = 5.0  # how soon a revoked key's open feed is closed, at the latest


def error_frame(message: str, *, code: str, kind: str = "invalid_request_error") -> str:
    """The feed's error frame: the shape of ``/ws``'s (``chat_protocol.error_reply``)."""
    error = {"message": message, "type": kind, "code": code, "param": None}
    return encode({"type": "error", "error": error})


def status_ws_routes(state: GatewayState) -> APIRouter:
    router = APIRouter()

    @router.websocket(STATUS_PATH)
    async def status_feed(websocket: WebSocket) -> None:
        await serve_status(websocket, state)

    return router


async def serve_status(websocket: WebSocket, state: GatewayState) -> None:
    gate: Gate = state.gate
    if await foreign_in_open_mode(websocket, gate):
        return
    try:
        caller = gate.authenticate(websocket.scope)
    except GatewayError as exc:
        await refuse(websocket, exc)
        return
    await websocket.accept()
    hub: StatusHub = state.hub
    sees_all = caller.admin or caller.key is None  # the admin key, or open mode
    sub = hub.subscribe(key_id=caller.key_id, sees_all=sees_all)
    recheck_every = max(0.05, min(KEY_RECHECK_SECONDS, hub.interval))
    sender = asyncio.ensure_future(_send_all(websocket, sub))
    listener = asyncio.ensure_future(_listen(websocket, sub, hub))
    dropped = asyncio.ensure_future(sub.dropped.wait())
    watch = asyncio.ensure_future(_watch_key(gate, caller, sub, recheck_every))
    tasks = {sender, listener, dropped, watch}
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
    else:
        for task in (listener, watch):
            if task in done and not task.cancelled() and task.exception() is None:
                code = task.result()
                flush = True  # the error frame saying why goes out before the close
                break
    if code is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                while flush and not sub.queue.empty():
                    await websocket.send_text(sub.queue.get_nowait())
                await websocket.close(code)


async def _watch_key(gate: Gate, caller: Caller, sub: Subscription, every: float) -> int:
    """Returns 1008 (the reason queued) once the caller may no longer use the feed."""
    while True:
        await asyncio.sleep(every)
        try:
            caller = recheck(gate, caller)
        except AuthenticationError as error:
            sub.offer(gateway_error_reply(error, None).decode())
            return CLOSE_POLICY


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
        reply = _reply(text, hub, sub)
        sub.offer(reply)
        if reply.startswith('{"type":"error"'):
            bad += 1
            if bad >= MAX_BAD_MESSAGES:
                sub.offer(error_frame("too many invalid messages", code="too_many_errors"))
                return CLOSE_POLICY


def _reply(text: str | None, hub: StatusHub, sub: Subscription) -> str:
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
        return encode(hub.status(seq=sub.seq))
    return error_frame(
        f"unknown message type {kind!r}: expected 'ping' or 'status'", code="unknown_type"
    )
