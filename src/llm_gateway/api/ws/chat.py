"""``WS /ws``: chat over a WebSocket, several requests in flight per connection.

The route: refuse other websites in open mode (``access.foreign_in_open_mode``),
authenticate (a refused client gets an error frame and a 1008 close), then hand the
socket to a ``ChatConnection`` (``chat_connection``: concurrency, cancel, bad frames, the
key re-checked before each request, send timeouts). The protocol is in
``chat_protocol`` and docs/gateway-generate.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, WebSocket

from llm_gateway.api.gateway.generate import Generator
from llm_gateway.api.ws.access import foreign_in_open_mode, refuse
from llm_gateway.api.ws.chat_connection import (
    MAX_BAD_FRAMES,
    MAX_IN_FLIGHT,
    SEND_TIMEOUT,
    ChatConnection,
)
from llm_gateway.core.errors import GatewayError

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

# FastAPI leaves WebSocket routes out of the OpenAPI document; the protocol is described
# in docs/gateway-generate.md, and the tag's text points there.
WS_DESCRIPTION = (
    "`WS /ws`: chat over a WebSocket, several requests in flight per connection. "
    "Authenticate with `Authorization: Bearer <key>`, `x-api-key` or `?token=<key>`; send "
    '`{"action": "llm/chat" | "llm/stream" | "cancel", "requestId", "data"}` text frames. '
    "OpenAPI cannot describe WebSocket routes: the frames, replies and limits are in "
    "docs/gateway-generate.md (section `WS /ws`)."
)
OPENAPI_TAG: dict[str, str] = {"name": "WebSocket chat", "description": WS_DESCRIPTION}


def chat_ws_routes(state: GatewayState) -> APIRouter:
    """The ``/ws`` chat endpoint over ``state``'s router and gate."""
    generator = Generator.for_state(state)
    gate = state.gate
    max_frame = state.config.server.ws_max_frame_bytes
    router = APIRouter()

    @router.websocket("/ws", name="chat_websocket")
    async def chat_websocket(websocket: WebSocket) -> None:
        if await foreign_in_open_mode(websocket, gate):
            return
        try:
            caller = gate.authenticate(websocket.scope)
        except GatewayError as error:
            await refuse(websocket, error)
            return
        await websocket.accept()
        connection = ChatConnection(
            websocket, generator, caller, gate=gate, max_frame_bytes=max_frame
        )
        await connection.serve()

    chat_websocket.__doc__ = WS_DESCRIPTION
    return router


__all__ = [
    "MAX_BAD_FRAMES",
    "MAX_IN_FLIGHT",
    "OPENAPI_TAG",
    "SEND_TIMEOUT",
    "WS_DESCRIPTION",
    "ChatConnection",
    "chat_ws_routes",
]
