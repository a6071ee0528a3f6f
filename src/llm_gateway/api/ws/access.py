"""Who may hold a WebSocket open: checks shared by ``/ws`` and the status feed.

- ``foreign_in_open_mode``: in open mode a handshake from another website (a non-loopback
  ``Origin`` or ``Host``, see ``api/origin``) is refused before it is accepted, so the
  client sees a plain 403 and nothing is served.
- ``refuse``: a caller the gate refused is accepted, told why in one ``error`` frame, and
  closed with 1008 (policy violation): browsers cannot read a refused handshake's reason.
- ``recheck``: a connection lives longer than a key may. Before each request (``/ws``)
  and on each tick (status feed) the caller is looked up again in the gate's current key
  snapshot, so a revoked, expired or deleted key, or the end of open mode, ends the
  connection at once instead of when the client leaves.
"""

from __future__ import annotations

import contextlib

from starlette.websockets import WebSocket

from llm_gateway.api.origin import loopback_request_ok
from llm_gateway.api.ws.chat_protocol import gateway_error_reply
from llm_gateway.core.errors import AuthenticationError, GatewayError
from llm_gateway.gate import Caller, Gate

POLICY_VIOLATION = 1008
MAX_CLOSE_REASON = 120  # bytes; RFC 6455 allows 123 in a close frame


async def foreign_in_open_mode(websocket: WebSocket, gate: Gate) -> bool:
    """True (and the handshake refused with 403) for another site's page in open mode."""
    if not gate.open_mode or loopback_request_ok(websocket.scope):
        return False
    with contextlib.suppress(Exception):
        await websocket.close(POLICY_VIOLATION)  # before accept: the server answers 403
    return True


async def refuse(websocket: WebSocket, error: GatewayError, *, accepted: bool = False) -> None:
    """Say why in an error frame, then close with 1008; never raises."""
    reason = error.message.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")
    with contextlib.suppress(Exception):
        if not accepted:
            await websocket.accept()
        await websocket.send_text(gateway_error_reply(error, None).decode())
        await websocket.close(POLICY_VIOLATION, reason)


def recheck(gate: Gate, caller: Caller) -> Caller:
    """``caller`` as the gate sees it now: the current record of its key (allow-list,
    limits and budget included); ``AuthenticationError`` when it may no longer call."""
    if caller.admin:
        return caller  # the admin key comes from the config: it cannot be revoked
    key = caller.key
    if key is None:
        if gate.open_mode:
            return caller
        raise AuthenticationError(
            "The gateway is no longer in open mode: reconnect with an API key.",
            code="missing_api_key",
        )
    return gate.recheck(caller)


__all__ = ["POLICY_VIOLATION", "foreign_in_open_mode", "recheck", "refuse"]
