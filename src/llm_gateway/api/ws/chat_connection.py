"""One ``WS /ws`` connection: several chat requests in flight, checked, bounded.

The protocol (frames, replies) is in ``chat_protocol`` and docs/gateway-generate.md. This
module runs a connection:

- Authentication happens at connect (``Authorization``/``x-api-key`` header or
  ``?token=``, see ``Gate.authenticate``), and again before every request from the gate's
  current key snapshot (``access.recheck``): a key revoked, expired or deleted while the
  socket is open gets an error frame and a 1008 close at its next request, and each
  request is admitted with the key's current allow-list, limits and budget. A refused
  client is accepted, told why in an error frame, and closed with 1008 (policy
  violation), so browsers can show the reason. In open mode, another website's page
  (non-loopback ``Origin``/``Host``) is refused with 403 before the handshake completes.
- Each ``llm/chat`` / ``llm/stream`` runs in its own task, so a long stream does not hold
  up the next request; at most ``MAX_IN_FLIGHT`` per connection (an error frame beyond).
  Reply frames are written under one lock, so frames of concurrent requests interleave
  but never mix.
- A send that does not complete within ``SEND_TIMEOUT`` (a client that stopped reading)
  counts as the client gone: every in-flight request and its upstream stream is released
  rather than held paused behind a full socket.
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

from starlette.websockets import WebSocket, WebSocketDisconnect

from llm_gateway.api.gateway.generate import (
    ChunkKind,
    ClientGone,
    Generator,
)
from llm_gateway.api.ws.access import POLICY_VIOLATION, recheck
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
from llm_gateway.core.errors import AuthenticationError, GatewayError
from llm_gateway.gate import Caller, Gate

log = logging.getLogger("llm_gateway.api.ws")

MAX_IN_FLIGHT = 16
MAX_BAD_FRAMES = 10
SEND_TIMEOUT = 10.0  # seconds one frame may wait for a client that is not reading
CLOSE_WAIT = 1.0  # a close frame to a client that stopped reading may never go out
CLOSE_TRY_AGAIN = 1013
ENDPOINT = "ws.chat"


class ChatConnection:
    def __init__(
        self,
        websocket: WebSocket,
        generator: Generator,
        caller: Caller,
        *,
        gate: Gate | None = None,
        max_frame_bytes: int,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_bad_frames: int = MAX_BAD_FRAMES,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        """``gate``: where the caller is checked again before each request (None: never,
        for tests of the protocol alone)."""
        self._ws = websocket
        self._generator = generator
        self._caller = caller
        self._gate = gate
        self._max_frame = max_frame_bytes
        self._max_in_flight = max_in_flight
        self._max_bad = max_bad_frames
        self._send_timeout = send_timeout
        self._bad_frames = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel_requested: set[str] = set()
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._stalled = False  # a send timed out: the reader is being stopped
        self._reader: asyncio.Task[None] | None = None

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise ClientGone()
        try:
            async with asyncio.timeout(self._send_timeout), self._send_lock:
                await self._ws.send_text(frame.decode())
        except TimeoutError as exc:
            self._stall()
            raise ClientGone() from exc
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            self._closed = True
            raise ClientGone() from exc

    def _stall(self) -> None:
        """The client stopped reading: end the connection and release its upstreams."""
        was_closed, self._closed = self._closed, True
        if not was_closed and not self._stalled:
            self._stalled = True
            log.warning("websocket client stopped reading; closing its connection")
            reader = self._reader
            if reader is not None and reader is not asyncio.current_task():
                reader.cancel()

    async def serve(self) -> None:
        """Reads frames until the client leaves or is closed (abuse, key no longer valid,
        or not reading what it is sent)."""
        self._reader = asyncio.current_task()
        try:
            while not self._closed:
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
            pass
        except asyncio.CancelledError:
            reader = asyncio.current_task()
            if not self._stalled or reader is None:
                raise
            reader.uncancel()  # our own stop (``_stall``), not the server's
        finally:
            self._closed = True
            await self._cancel_all()
        if self._stalled:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_WAIT):
                    await self._ws.close(CLOSE_TRY_AGAIN, "client is not reading")

    async def _close(self, reason: str) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_WAIT):
                await self._ws.close(POLICY_VIOLATION, reason)

    async def _bad_frame(self, error: FrameError) -> bool:
        """Answers a bad frame; False once the connection was closed for abuse."""
        self._bad_frames += 1
        await self.send(frame_error_reply(error))
        if self._bad_frames < self._max_bad:
            return True
        reason = f"too many invalid frames ({self._bad_frames})"
        await self.send(error_reply(reason.capitalize() + ".", "too_many_invalid_frames"))
        await self._close(reason)
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
        caller = self._caller
        if self._gate is not None:
            try:
                caller = self._caller = recheck(self._gate, caller)
            except AuthenticationError as error:
                await self.send(gateway_error_reply(error, rid))
                await self._close(error.message[:120])
                return
        task = asyncio.get_running_loop().create_task(self._run(frame, caller, time.monotonic()))
        self._tasks[rid] = task
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for rid, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[rid]
                self._cancel_requested.discard(rid)
                return

    async def _run(self, frame: Frame, caller: Caller, started: float) -> None:
        rid = frame.request_id
        data = frame.data
        assert data is not None
        stream = frame.action == "llm/stream"
        try:
            call = await self._generator.admit(
                caller,
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


__all__ = ["ENDPOINT", "MAX_BAD_FRAMES", "MAX_IN_FLIGHT", "SEND_TIMEOUT", "ChatConnection"]
