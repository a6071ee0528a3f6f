"""One generation through the gate and the router, measured: the core of /api/llm and /ws.

Transport-neutral on purpose: the HTTP endpoints (``generate_routes``) and the WebSocket
chat (``api/ws/chat``) differ only in how they frame the text and the final stats, so
both drive a ``Call`` from here:

- ``Generator.admit`` turns a ``CallSpec`` (prompt or messages, model or provider,
  sampling parameters) into a routed ``ChatRequest`` and admits it through the gate
  (model allow-list, rate limits, budget). Errors before this point cost nothing; a
  refusal of a known model is recorded in the ledger (``Gate.reject``), as on /v1.
- ``Call.complete()`` or ``Call.stream(emit)`` runs it through ``gate.run``, shared
  with the /v1 endpoints, which finishes the ticket exactly once on every way out.

The stats come from the ``UsageRecord`` the gate returns, so the numbers a client sees
are the numbers the ledger keeps (provider usage, or local counts with
``tokens_estimated``).
"""

from __future__ import annotations

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
from llm_gateway.core.types import ChatRequest, ChatResponse, FinishReason, Message
from llm_gateway.gate import Caller, Gate, Ticket
from llm_gateway.gate.run import (
    ClientClosedError,
    ClientGone,
    Started,
    StreamCall,
    complete,
    internal_error,
)
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import CallTrace, ModelPlan, Router

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

ChunkKind = Literal["text", "reasoning"]
# Receives each batch's text as one piece (events that arrived together leave together).
Emit = Callable[[ChunkKind, str], Awaitable[None]]


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
        """Resolve and admit; raises the gateway's 400/403/404/429/402 (or a 500 for a
        bug) before any upstream call. A refusal of a known model is in the ledger."""
        name = model_name(spec.model, spec.provider, self._provider_models)
        try:
            return await self._admit(caller, spec, name, endpoint, request_id, started, stream)
        except Exception as exc:  # the client leaving (cancellation) passes
            error = exc if isinstance(exc, GatewayError) else internal_error(exc)
            # Refused for a known caller and model (limit, budget, allow-list, unknown
            # model): the ledger keeps it, as on /v1, so dashboards see rejections too.
            self._gate.reject(
                caller, name, error, endpoint=endpoint, request_id=request_id, started=started
            )
            if error is exc:
                raise
            raise error from exc

    async def _admit(
        self,
        caller: Caller,
        spec: CallSpec,
        name: str,
        endpoint: str,
        request_id: str,
        started: float,
        stream: bool,
    ) -> Call:
        limit = self._max_messages
        if limit is not None and len(spec.messages) > limit:
            raise InvalidRequestError(
                f"Too many messages: {len(spec.messages)}; the limit is {limit} "
                "(server.max_messages).",
                param="messages",
            )
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
        """Raises ``GatewayError`` on failure; the ticket is finished on every way out."""

        def answered(response: ChatResponse, route: Route) -> tuple[ChatResponse, Route]:
            return response, route

        (response, route), record = await complete(
            self._router, self.plan, self.request, self.ticket, CallTrace(), answered
        )
        ttft_ms = record.ttft_ms if record is not None else None
        text = response.content or ""
        return self._result(text, route, response.finish_reason, record, ttft_ms)

    async def stream(self, emit: Emit, response: Started | None = None) -> Result:
        """Relays the stream through ``emit``; raises ``GatewayError`` on failure (before
        or after the first ``emit``: the caller knows which), re-raises ``ClientGone`` and
        cancellation. The upstream is closed and the ticket finished on every way out.
        ``response``: the transport's response, when a heartbeat may commit it to a 200."""
        text: list[str] = []
        finish: FinishReason | None = None
        async with StreamCall(self._router, self.plan, self.request, self.ticket, response) as run:
            batch = await run.open()
            events = run.events
            assert events is not None
            observe = run.meter.observe
            while True:
                observe(batch)
                finish = await _relay(batch, emit, text) or finish
                try:
                    batch = await anext(events)
                except StopAsyncIteration:
                    break
        assert run.route is not None
        return self._result("".join(text), run.route, finish, run.record, run.meter.ttft_ms)


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
