"""Small raw-ASGI helpers for the hot endpoints.

The chat endpoints bypass FastAPI's request/response machinery (dependency injection,
pydantic, middleware) because it costs more than the rest of the proxy hop together;
these helpers are the little that is needed instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from llm_gateway.core.errors import InvalidRequestError, PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (``name`` lower-case)."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def request_id(scope: Scope) -> str:
    """The caller's ``x-request-id`` when it is sane, else a fresh one."""
    given = header(scope, b"x-request-id")
    if given and len(given) <= 128 and given.isascii():
        return given.decode()
    return os.urandom(16).hex()  # 128 random bits, as uuid4 has, without a UUID object


LEDGER_SUFFIX_SEPARATOR = "~"


def ledger_suffix() -> str:
    """``~`` and 16 hex digits (64 random bits): the one suffix format of ledger ids on
    every surface, so the status feed can strip it with one pattern (``~[0-9a-f]{16}$``).
    32 bits collided too easily (birthday bound ~65k requests) for ids reused by scripts."""
    return LEDGER_SUFFIX_SEPARATOR + os.urandom(8).hex()


def ledger_id(scope: Scope, rid: str) -> str:
    """The id the usage ledger keeps this request under: ``rid`` when the gateway made it,
    else the caller's ``x-request-id`` with a random suffix. Callers reuse their ids
    (retries, fixed ids in scripts); the ledger is exactly-once by id, so a reused id
    must not make a second request's record look like a duplicate of the first."""
    if header(scope, b"x-request-id") is None:
        return rid
    return rid + ledger_suffix()


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes with a 413."""
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise InvalidRequestError("Invalid Content-Length header.") from None
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"Request body is larger than the limit of {limit} bytes "
        "(server.max_body_bytes / LLM_GATEWAY_MAX_BODY_BYTES)."
    )


async def send_body(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class DisconnectWatch:
    """Cancels the handling task as soon as the client goes away.

    The server signals a disconnect only through ``receive()``, so one small task waits on
    it; its done-callback cancels the handler, which closes the upstream request with it.
    ``finish()`` must be called before the final send: after the response completes the
    server reports "disconnect" too, and that must not cancel anything.
    """

    __slots__ = ("_task", "_watcher", "disconnected", "finished")

    def __init__(self, receive: Receive) -> None:
        self.disconnected = False
        self.finished = False
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._watcher = asyncio.get_running_loop().create_task(_until_disconnect(receive))
        self._watcher.add_done_callback(self._on_done)

    def _on_done(self, watcher: asyncio.Task[None]) -> None:
        if self.finished or watcher.cancelled():
            return
        self.disconnected = True
        self._task.cancel()

    def finish(self) -> None:
        self.finished = True
        self._watcher.cancel()

    def absorb_cancel(self) -> bool:
        """After a CancelledError: True if it was our disconnect cancel (now cleared)."""
        if self.disconnected:
            self._task.uncancel()
            return True
        return False


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
