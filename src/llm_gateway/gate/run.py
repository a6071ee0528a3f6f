"""Runs an admitted call and always finishes its ticket: the one place that does.

Every surface (the OpenAI and Anthropic chat endpoints, /api/llm, the WebSocket chat)
runs its calls through ``complete`` or ``StreamCall``, so every way a call can end (an
answer, an upstream failure, a bug, the client going away) reaches ``Ticket.finish``
with the route that answered, the usage, the routes' own rate-limit reservations (so
they are settled), the first-token time, the text produced, the status and the error.
Writing this twice is how route limits once went unsettled on half the surfaces.

Errors come out as ``GatewayError`` only: a bug becomes ``InternalError`` (500, logged
here with its traceback), the client going away is re-raised as it came (cancellation or
``ClientGone``) after being recorded as ``ClientClosedError`` (499).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Protocol, TypeVar

from llm_gateway.core.errors import GatewayError
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.records import UsageRecord
from llm_gateway.core.types import ChatRequest, ChatResponse
from llm_gateway.gate.meter import StreamMeter
from llm_gateway.gate.ticket import Outcome, Ticket
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import CallTrace, ModelPlan, Router, close_stream

log = logging.getLogger("llm_gateway.api")

T = TypeVar("T")

CLIENT_CLOSED = 499  # nginx's "client closed request", for the ledger only


class ClientClosedError(GatewayError):
    """The client went away before the answer was complete (recorded, never sent)."""

    status = CLIENT_CLOSED
    openai_type = "invalid_request_error"
    default_code = "client_closed_request"


class InternalError(GatewayError):
    """A bug in the gateway: answered in the surface's error shape, details only logged.

    Not retryable and not the route's fault, so it never trips a circuit breaker."""

    status = 500
    default_code = "internal_error"


class ClientGone(Exception):
    """Raised by a surface's writer that can no longer reach its client."""


def internal_error(exc: BaseException) -> InternalError:
    """Logs ``exc`` with its traceback; the error to answer with leaks nothing of it."""
    log.error("unexpected error while serving a request", exc_info=exc)
    return InternalError("The gateway hit an internal error while serving this request.")


def client_closed() -> ClientClosedError:
    return ClientClosedError("The client went away before the answer was complete.")


class Started(Protocol):
    """A response that may already have committed to a 200 (an SSE heartbeat went out)."""

    @property
    def started(self) -> bool: ...


async def complete(
    router: Router,
    plan: ModelPlan,
    request: ChatRequest,
    ticket: Ticket,
    trace: CallTrace,
    render: Callable[[ChatResponse, Route], T],
) -> tuple[T, UsageRecord | None]:
    """One non-streamed call: ``render(response, route)`` and the ticket's record.

    ``render`` runs before the ticket is finished, so a bug while rendering is recorded
    as the 500 the client gets. Raises ``GatewayError`` (the ticket finished) or the
    client's cancellation (recorded as 499)."""
    try:
        response, route = await router.complete(plan, request, trace)
        rendered = render(response, route)
    except GatewayError as error:
        _finish_failed(ticket, trace, error)
        raise
    except (asyncio.CancelledError, ClientGone):
        # The client left: the upstream call is cancelled, the prompt may be billed.
        _finish_failed(ticket, trace, client_closed())
        raise
    except Exception as exc:
        failure = internal_error(exc)
        _finish_failed(ticket, trace, failure)
        raise failure from exc
    record = ticket.finish(
        Outcome(
            route=route,
            usage=response.usage,
            # Not streamed: the first token reached the gateway with the whole answer.
            ttft_ms=(time.monotonic() - ticket.started) * 1000.0,
            produced_text=response.content or "",
            reservations=trace.reservations,
        )
    )
    return rendered, record


def _finish_failed(ticket: Ticket, trace: CallTrace, error: GatewayError) -> None:
    ticket.finish(
        Outcome(
            status=error.status,
            error=error,
            route=trace.route,
            reservations=trace.reservations,
        )
    )


class StreamCall:
    """One admitted stream. Use as ``async with StreamCall(...) as run:``; inside, ``first
    = await run.open()``, relay ``first`` and then ``run.events``, feeding every batch to
    ``run.meter.observe``. A failure the surface handled itself (it wrote an error frame)
    goes in ``run.error``.

    On the way out the upstream stream is closed, the route told how the stream ended, and
    the ticket finished (``run.record``). Exceptions pass through as they came, except a
    bug, which comes out as ``InternalError``. The status is 200 once the stream started
    (its first batch arrived, or ``response`` committed to a 200), whatever came after.
    """

    __slots__ = (
        "_plan",
        "_request",
        "_response",
        "_router",
        "error",
        "events",
        "meter",
        "record",
        "route",
        "ticket",
        "trace",
    )

    def __init__(
        self,
        router: Router,
        plan: ModelPlan,
        request: ChatRequest,
        ticket: Ticket,
        response: Started | None = None,
    ) -> None:
        self._router = router
        self._plan = plan
        self._request = request
        self._response = response
        self.ticket = ticket
        self.trace = CallTrace()
        self.meter = StreamMeter(ticket.started)
        self.route: Route | None = None
        self.events: AsyncIterator[list[StreamEvent]] | None = None
        self.error: GatewayError | None = None
        self.record: UsageRecord | None = None

    async def open(self) -> list[StreamEvent]:
        """Opens the stream on the first route that answers; returns its first batch."""
        route, first, self.events = await self._router.open_stream(
            self._plan, self._request, self.trace
        )
        self.route = route
        return first

    async def __aenter__(self) -> StreamCall:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failure: InternalError | None = None
        if exc is None:
            error = self.error
        elif isinstance(exc, GatewayError):
            error = exc
        elif isinstance(exc, asyncio.CancelledError | ClientGone):
            error = client_closed()
        else:  # a bug (or an interrupt): recorded as ours, answered as a 500
            error = failure = internal_error(exc)
        try:
            if self.events is not None:
                await close_stream(self.events)
        finally:
            self._finish(error)
        if failure is not None and isinstance(exc, Exception):
            raise failure from exc

    def _finish(self, error: GatewayError | None) -> None:
        if error is None or not isinstance(error, ClientClosedError | InternalError):
            # Tells the route (breaker, stats) how its stream ended; a no-op before open.
            # The client leaving or our own bug says nothing about the route.
            self.trace.finished(error)
        meter = self.meter
        status = 200
        if error is not None and meter.first_at is None:
            response = self._response
            if response is None or not response.started:
                status = error.status
        usage = meter.usage
        self.record = self.ticket.finish(
            Outcome(
                status=status,
                error=error,
                route=self.route,
                usage=usage,
                ttft_ms=meter.ttft_ms,
                produced_text=meter.produced_text() if usage is None else "",
                streamed=True,
                reservations=self.trace.reservations,
            )
        )


__all__ = [
    "CLIENT_CLOSED",
    "ClientClosedError",
    "ClientGone",
    "InternalError",
    "Started",
    "StreamCall",
    "client_closed",
    "complete",
    "internal_error",
]
