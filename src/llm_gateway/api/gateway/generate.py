"""One generation through the gate and the router, measured: the core of /api/llm and /ws.

Transport-neutral on purpose: the HTTP endpoints (``generate_routes``) and the WebSocket
chat (``api/ws/chat``) differ only in how they frame the text and the final stats, so
both drive a ``Call`` from here:

- ``Generator.admit`` turns a ``CallSpec`` (prompt or messages, model or provider,
  sampling parameters) into a routed ``ChatRequest`` and admits it through the gate
  (model allow-list, rate limits, budget). Errors before this point cost nothing.
- ``Call.complete()`` or ``Call.stream(emit)`` runs it. Either way ``Ticket.finish`` is
  called exactly once: on success, on an upstream failure, on a bug, and when the client
  goes away (the task is cancelled; the upstream is closed on the way out).

The stats come from the ``UsageRecord`` the gate returns, so the numbers a client sees
are the numbers the ledger keeps (provider usage, or local counts with
``tokens_estimated``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec

from llm_gateway.api.gateway.generate_model import default_models, model_name
from llm_gateway.core.errors import GatewayError, InvalidRequestError
from llm_gateway.core.events import (
    ErrorEvent,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
)
from llm_gateway.core.records import UsageRecord
from llm_gateway.core.types import ChatRequest, FinishReason, Message
from llm_gateway.gate import Caller, Gate, Outcome, StreamMeter, Ticket
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import CallTrace, ModelPlan, Router, close_stream

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

log = logging.getLogger("llm_gateway.api.gateway")

ChunkKind = Literal["text", "reasoning"]
# Receives each batch's text as one piece (events that arrived together leave together).
Emit = Callable[[ChunkKind, str], Awaitable[None]]


class ClientClosedError(GatewayError):
    """The client went away before the answer was complete (nginx's 499)."""

    status = 499
    openai_type = "invalid_request_error"
    default_code = "client_closed_request"


class ClientGone(Exception):
    """Raised by an ``Emit`` that can no longer reach its client."""


def internal_error(exc: BaseException) -> GatewayError:
    """A bug still answers in the error shape, without leaking internals."""
    log.error("unexpected error while generating", exc_info=exc)
    error = GatewayError("The gateway hit an internal error while serving this request.")
    error.status = 500
    error.code = "internal_error"
    return error


@dataclass(frozen=True, slots=True)
class CallSpec:
    """What a client asked for, already parsed from its wire format."""

    messages: list[Message]
    model: str | None = None
    provider: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


class Stats(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    tokens_estimated: bool
    tokens_per_second: float  # completion tokens over the whole elapsed time
    time_to_first_token_ms: float | None
    elapsed_ms: float


class Result(msgspec.Struct):
    text: str
    model: str  # the provider's model id that answered
    requested_model: str  # the name the call was routed by
    provider: str | None
    request_id: str
    finish_reason: FinishReason | None
    stats: Stats


def stats_of(record: UsageRecord | None, ttft_ms: float | None, started: float) -> Stats:
    if record is None:  # finish was already called: cannot happen on the paths below
        elapsed = (time.monotonic() - started) * 1000.0
        return Stats(0, 0, 0, True, 0.0, ttft_ms, round(elapsed, 3))
    elapsed = record.latency_ms
    completion = record.completion_tokens
    rate = completion / (elapsed / 1000.0) if elapsed > 0 and completion > 0 else 0.0
    return Stats(
        prompt_tokens=record.prompt_tokens,
        completion_tokens=completion,
        total_tokens=record.prompt_tokens + completion,
        tokens_estimated=record.tokens_estimated,
        tokens_per_second=round(rate, 3),
        time_to_first_token_ms=round(ttft_ms, 3) if ttft_ms is not None else None,
        elapsed_ms=round(elapsed, 3),
    )


class Generator:
    def __init__(
        self,
        router: Router,
        gate: Gate,
        provider_models: Mapping[str, list[str]],
        *,
        max_messages: int | None = None,
    ) -> None:
        self._router = router
        self._gate = gate
        self._provider_models = provider_models
        self._max_messages = max_messages

    @classmethod
    def for_state(cls, state: GatewayState) -> Generator:
        config = state.config
        return cls(
            state.router,
            state.gate,
            default_models(config),
            max_messages=config.server.max_messages,
        )

    async def admit(
        self,
        caller: Caller,
        spec: CallSpec,
        *,
        endpoint: str,
        request_id: str,
        started: float,
        stream: bool,
    ) -> Call:
        """Resolve and admit; raises the gateway's 400/403/404/429 before any upstream call."""
        limit = self._max_messages
        if limit is not None and len(spec.messages) > limit:
            raise InvalidRequestError(
                f"Too many messages: {len(spec.messages)}; the limit is {limit} "
                "(server.max_messages).",
                param="messages",
            )
        name = model_name(spec.model, spec.provider, self._provider_models)
        plan = self._router.resolve(name)
        messages = spec.messages
        if spec.system:
            messages = [Message(role="system", content=spec.system), *messages]
        request = plan.prepare(
            ChatRequest(
                model=name,
                messages=messages,
                temperature=spec.temperature,
                max_tokens=spec.max_tokens,
                stream=stream,
            )
        )
        ticket = await self._gate.admit(
            caller, plan, request, endpoint=endpoint, request_id=request_id, started=started
        )
        return Call(self._router, plan, request, ticket, started)


class Call:
    """One admitted generation; run it once with ``complete`` or ``stream``."""

    def __init__(
        self, router: Router, plan: ModelPlan, request: ChatRequest, ticket: Ticket, started: float
    ) -> None:
        self._router = router
        self.plan = plan
        self.request = request
        self.ticket = ticket
        self.started = started

    def rate_limit_headers(self) -> list[tuple[bytes, bytes]]:
        return self.ticket.headers()

    def _result(
        self,
        text: str,
        route: Route,
        finish: FinishReason | None,
        record: UsageRecord | None,
        ttft_ms: float | None,
    ) -> Result:
        return Result(
            text=text,
            model=route.model,
            requested_model=self.request.model,
            provider=route.provider_name,
            request_id=self.ticket.request_id,
            finish_reason=finish,
            stats=stats_of(record, ttft_ms, self.started),
        )

    async def complete(self) -> Result:
        trace = CallTrace()
        try:
            response, route = await self._router.complete(self.plan, self.request, trace)
        except GatewayError as error:
            self.ticket.finish(Outcome(status=error.status, error=error))
            raise
        except asyncio.CancelledError:
            self.ticket.finish(Outcome(status=499, error=ClientClosedError("client went away")))
            raise
        except Exception as exc:
            failure = internal_error(exc)
            self.ticket.finish(Outcome(status=failure.status, error=failure))
            raise failure from exc
        ttft_ms = (time.monotonic() - self.started) * 1000.0
        text = response.content or ""
        record = self.ticket.finish(
            Outcome(
                status=200, route=route, usage=response.usage, ttft_ms=ttft_ms, produced_text=text
            )
        )
        return self._result(text, route, response.finish_reason, record, ttft_ms)

    async def stream(self, emit: Emit) -> Result:
        """Relays the stream through ``emit``; raises ``GatewayError`` on failure (before
        or after the first ``emit``: the caller knows which), re-raises ``ClientGone`` and
        cancellation. The upstream is closed on every way out."""
        trace = CallTrace()
        meter = StreamMeter(self.started)
        route: Route | None = None
        events = None
        text: list[str] = []
        finish: FinishReason | None = None

        def end(error: GatewayError) -> None:
            # A stream that started answered 200 whatever happened later (see UsageRecord).
            status = 200 if meter.first_at is not None else error.status
            self.ticket.finish(
                Outcome(
                    status=status,
                    error=error,
                    route=route,
                    usage=meter.usage,
                    ttft_ms=meter.ttft_ms,
                    produced_text=meter.produced_text(),
                    streamed=True,
                )
            )

        try:
            route, first, events = await self._router.open_stream(self.plan, self.request, trace)
            batch = first
            while True:
                meter.observe(batch)
                finish = await _relay(batch, emit, text) or finish
                try:
                    batch = await anext(events)
                except StopAsyncIteration:
                    break
        except GatewayError as error:
            if route is not None:
                trace.finished(error)
            end(error)
            raise
        except (asyncio.CancelledError, ClientGone):
            end(ClientClosedError("client went away"))
            raise
        except Exception as exc:
            failure = internal_error(exc)
            end(failure)
            raise failure from exc
        finally:
            if events is not None:
                await close_stream(events)
        trace.finished(None)
        record = self.ticket.finish(
            Outcome(
                status=200,
                route=route,
                usage=meter.usage,
                ttft_ms=meter.ttft_ms,
                produced_text=meter.produced_text(),
                streamed=True,
            )
        )
        return self._result("".join(text), route, finish, record, meter.ttft_ms)


async def _relay(batch: list[StreamEvent], emit: Emit, text: list[str]) -> FinishReason | None:
    """Emits one batch (reasoning, then text); returns its finish reason if it has one."""
    pieces: list[str] = []
    thoughts: list[str] = []
    finish: FinishReason | None = None
    failure: GatewayError | None = None
    for event in batch:
        if isinstance(event, TextDelta):
            pieces.append(event.text)
        elif isinstance(event, ReasoningDelta):
            if event.text:
                thoughts.append(event.text)
        elif isinstance(event, FinishEvent):
            finish = event.reason
        elif isinstance(event, ErrorEvent):
            failure = event.error
    if thoughts:
        await emit("reasoning", "".join(thoughts))
    if pieces:
        chunk = "".join(pieces)
        if chunk:
            text.append(chunk)
            await emit("text", chunk)
    if failure is not None:
        raise failure
    return finish


__all__ = [
    "Call",
    "CallSpec",
    "ClientClosedError",
    "ClientGone",
    "Emit",
    "Generator",
    "Result",
    "Stats",
    "internal_error",
    "stats_of",
]
