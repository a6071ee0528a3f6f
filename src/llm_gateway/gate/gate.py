"""The gate: authenticate, admit (allow-list, rate limits, budget), and account for a call.

Everything here runs on the request path, so it touches only memory: the key snapshot
(``KeyRing``), the limiter and spend counter (in-process dicts, or one Redis round trip
each), and the observers that take the finished ``UsageRecord`` (the ledger writer only
appends to a buffer).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from llm_gateway.accounting.tokens import count_prompt, count_text
from llm_gateway.core.errors import (
    AuthenticationError,
    GatewayError,
    InsufficientQuotaError,
    PermissionDeniedError,
    RateLimitError,
)
from llm_gateway.core.records import BudgetPeriod, UsageRecord, VirtualKey
from llm_gateway.core.types import ChatRequest, Usage
from llm_gateway.gate.keys import KeyRing
from llm_gateway.limits.base import (
    BudgetExceeded,
    LimitRule,
    LimitState,
    RateLimiter,
    RateLimitExceeded,
    Reservation,
    SpendCounter,
    SpendReservation,
)
from llm_gateway.routing.estimate import estimate_completion_tokens, estimate_prompt_tokens
from llm_gateway.routing.model_table import ModelTable, usage_cost
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import ModelPlan

log = logging.getLogger("llm_gateway.gate")

Scope = Mapping[str, Any]
UsageObserver = Callable[[UsageRecord], None]


class Caller(msgspec.Struct, frozen=True):
    """Who is calling: a virtual key, the admin key, or nobody (open mode)."""

    key: VirtualKey | None = None
    admin: bool = False

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None


OPEN = Caller()
ADMIN = Caller(admin=True)


class Outcome(msgspec.Struct, kw_only=True):
    """How a call ended, as the surface saw it."""

    status: int = 200
    error: GatewayError | None = None
    route: Route | None = None
    usage: Usage | None = None
    ttft_ms: float | None = None
    produced_text: str = ""  # counted locally when ``usage`` is None
    streamed: bool = False
    cache_hit: bool = False
    # The routes' own rate-limit reservations (``CallTrace.reservations``).
    reservations: list[Reservation] = msgspec.field(default_factory=list)


def period_id(period: BudgetPeriod, now: float) -> tuple[str, float]:
    """The budget period containing ``now``: its id and its start (epoch seconds, UTC)."""
    if period == "total":
        return "total", 0.0
    moment = datetime.fromtimestamp(now, UTC)
    if period == "daily":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return f"d{start:%Y-%m-%d}", start.timestamp()
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return f"m{start:%Y-%m}", start.timestamp()


def _bearer(scope: Scope) -> str | None:
    authorization: bytes | None = None
    api_key: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"x-api-key":
            api_key = value
    if authorization is not None:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if api_key is not None and api_key.strip():
        return api_key.decode("latin-1").strip()
    if scope.get("type") == "websocket":
        # Browsers cannot set headers on a WebSocket: the key may come as ?token=.
        from urllib.parse import parse_qs

        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token")
        if tokens and tokens[0]:
            return str(tokens[0])
    return None


def _limit_headers(prefix: bytes, state: LimitState) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit-" + prefix, str(state.limit).encode()),
        (b"x-ratelimit-remaining-" + prefix, str(max(state.remaining, 0)).encode()),
        (b"x-ratelimit-reset-" + prefix, f"{state.reset_seconds:.3f}s".encode()),
    ]


def rate_limit_error(exc: RateLimitExceeded, *, route: bool = False) -> RateLimitError:
    who = "this route" if route else "this API key"
    error = RateLimitError(
        f"Rate limit reached for {who}: {exc.state.limit} {exc.dimension} per minute. "
        f"Retry after {exc.retry_after:.1f}s.",
        retry_after=exc.retry_after,
    )
    error.extra_headers = tuple(_limit_headers(exc.dimension.encode(), exc.state))
    return error


class Ticket:
    """One admitted call. ``finish`` exactly once, whatever happened."""

    __slots__ = (
        "_done",
        "_gate",
        "_limit",
        "_spend",
        "caller",
        "endpoint",
        "model",
        "request",
        "request_id",
        "started",
    )

    def __init__(
        self,
        gate: Gate,
        caller: Caller,
        request: ChatRequest,
        *,
        endpoint: str,
        request_id: str,
        started: float,
        limit: Reservation | None = None,
        spend: SpendReservation | None = None,
    ) -> None:
        self._gate = gate
        self.caller = caller
        self.request = request
        self.model = request.model
        self.endpoint = endpoint
        self.request_id = request_id
        self.started = started
        self._limit = limit
        self._spend = spend
        self._done = False

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``x-ratelimit-*`` of the key's limits, for a successful response."""
        reservation = self._limit
        if reservation is None:
            return []
        headers: list[tuple[bytes, bytes]] = []
        if reservation.requests is not None:
            headers += _limit_headers(b"requests", reservation.requests)
        if reservation.tokens_state is not None:
            headers += _limit_headers(b"tokens", reservation.tokens_state)
        return headers

    def finish(self, outcome: Outcome) -> UsageRecord | None:
        if self._done:
            return None
        self._done = True
        return self._gate._finish(self, outcome)


class Gate:
    def __init__(
        self,
        *,
        admin_key: str | None,
        table: ModelTable,
        limiter: RateLimiter | None = None,
        spend: SpendCounter | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self._admin_key = admin_key
        self._table = table
        self._limiter = limiter
        self._spend = spend
        self.keys = keys or KeyRing()
        self._observers: list[UsageObserver] = []
        self._queue: deque[Coroutine[Any, Any, None]] = deque()
        self._runner: asyncio.Future[None] | None = None

    # -- who is calling -------------------------------------------------------------------

    @property
    def open_mode(self) -> bool:
        """No admin key and no keys: anyone may call (the server refuses non-loopback)."""
        return self._admin_key is None and len(self.keys) == 0

    def set_keys(self, keys: KeyRing) -> None:
        self.keys = keys

    def attach_limits(self, limiter: RateLimiter | None, spend: SpendCounter | None) -> None:
        self._limiter = limiter
        self._spend = spend

    def add_observer(self, observer: UsageObserver) -> None:
        self._observers.append(observer)

    def authenticate(self, scope: Scope) -> Caller:
        """The caller of a request; ``AuthenticationError`` when a key is required and bad."""
        secret = _bearer(scope)
        if secret is None:
            if self.open_mode:
                return OPEN
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                code="missing_api_key",
            )
        admin = self._admin_key
        if admin is not None and hmac.compare_digest(secret.encode(), admin.encode()):
            return ADMIN
        key = self.keys.find(secret)
        if key is None:
            if self.open_mode:
                return OPEN  # open mode ignores whatever key an SDK sends
            raise AuthenticationError("Invalid API key.", code="invalid_api_key")
        now = time.time()
        if key.revoked_at is not None:
            raise AuthenticationError("This API key has been revoked.", code="revoked_api_key")
        if key.expires_at is not None and now >= key.expires_at:
            raise AuthenticationError("This API key has expired.", code="expired_api_key")
        return Caller(key=key)

    def require_admin(self, scope: Scope) -> Caller:
        caller = self.authenticate(scope)
        if caller.admin or (self.open_mode and caller.key is None):
            return caller
        raise PermissionDeniedError("This endpoint needs the admin key.", code="admin_key_required")

    # -- may they -------------------------------------------------------------------------

    def check_model(self, caller: Caller, model: str) -> None:
        key = caller.key
        if key is None or not key.allowed_models:
            return
        if any(fnmatch.fnmatchcase(model, pattern) for pattern in key.allowed_models):
            return
        raise PermissionDeniedError(
            f"This API key may not use model '{model}'.", param="model", code="model_not_allowed"
        )

    async def admit(
        self,
        caller: Caller,
        plan: ModelPlan,
        request: ChatRequest,
        *,
        endpoint: str,
        request_id: str,
        started: float | None = None,
    ) -> Ticket:
        """Check and reserve; raises 403 (model), 429 (rate) or 429 insufficient_quota."""
        started = time.monotonic() if started is None else started
        key = caller.key
        if key is None:
            return Ticket(
                self, caller, request, endpoint=endpoint, request_id=request_id, started=started
            )
        self.check_model(caller, request.model)
        limit: Reservation | None = None
        # Reservations use the sub-microsecond estimate; exact counting (tens of
        # microseconds) is kept for recording usage the provider did not report.
        prompt = estimate_prompt_tokens(request)
        if self._limiter is not None and (key.rpm is not None or key.tpm is not None):
            estimate = prompt + estimate_completion_tokens(request)
            rule = LimitRule(f"key:{key.id}", key.rpm, key.tpm)
            try:
                limit = await self._limiter.reserve((rule,), estimate)
            except RateLimitExceeded as exc:
                raise rate_limit_error(exc) from None
        spend: SpendReservation | None = None
        if self._spend is not None and key.budget is not None:
            amount = self._estimate_cost(plan, request, prompt)
            period, _ = period_id(key.budget_period, time.time())
            try:
                spend = await self._spend.reserve(key.id, period, key.budget, amount)
            except (BudgetExceeded, GatewayError) as exc:
                # Refused (or the counter is unreachable under the 'deny' policy): give
                # back the tokens the rate limiter reserved for this request.
                if limit is not None:
                    assert self._limiter is not None
                    self._spawn(self._limiter.settle(limit, 0))
                if isinstance(exc, GatewayError):
                    raise
                raise InsufficientQuotaError(
                    f"This API key's {key.budget_period} budget of ${exc.budget:.2f} is used "
                    f"up (spent ${exc.spent:.4f}).",
                ) from None
        ticket = Ticket(
            self,
            caller,
            request,
            endpoint=endpoint,
            request_id=request_id,
            started=started,
            limit=limit,
            spend=spend,
        )
        return ticket

    def reject(
        self,
        caller: Caller,
        model: str,
        error: GatewayError,
        *,
        endpoint: str,
        request_id: str,
        started: float,
    ) -> None:
        """Record a request refused before any upstream call (nothing consumed)."""
        self._emit(
            UsageRecord(
                request_id=request_id,
                created_at=time.time(),
                endpoint=endpoint,
                model=model,
                key_id=caller.key_id,
                latency_ms=(time.monotonic() - started) * 1000.0,
                status=error.status,
                error_code=error.code,
            )
        )

    def _emit(self, record: UsageRecord) -> None:
        for observer in self._observers:
            try:
                observer(record)
            except Exception:  # an observer's bug must not fail the request
                log.exception("usage observer failed")

    def _estimate_cost(self, plan: ModelPlan, request: ChatRequest, prompt: int) -> float:
        """The dearest route's price for the prompt and the expected completion."""
        completion = estimate_completion_tokens(request)
        worst = 0.0
        for route in plan.routes:
            info = self._table.get(route.provider_type, route.model)
            if info is None:
                continue
            price = info.estimate_cost(prompt, completion)
            if price is not None and price > worst:
                worst = price
        return worst

    # -- what it cost ---------------------------------------------------------------------

    def _finish(self, ticket: Ticket, outcome: Outcome) -> UsageRecord:
        usage = outcome.usage
        route = outcome.route
        estimated = False
        if usage is None:
            produced = outcome.produced_text
            prompt = 0
            if route is not None:  # no upstream answered: nothing was consumed
                prompt = count_prompt(ticket.request)
            completion = count_text(produced) if produced else 0
            usage = Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            )
            estimated = route is not None
        cost = 0.0
        if route is not None:
            info = self._table.get(route.provider_type, route.model)
            priced = usage_cost(usage, info)
            cost = priced if priced is not None else 0.0
        error = outcome.error
        record = UsageRecord(
            request_id=ticket.request_id,
            created_at=time.time(),
            endpoint=ticket.endpoint,
            model=ticket.model,
            key_id=ticket.caller.key_id,
            provider=route.provider_name if route is not None else None,
            route_model=route.model if route is not None else None,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost=cost,
            latency_ms=(time.monotonic() - ticket.started) * 1000.0,
            ttft_ms=outcome.ttft_ms,
            status=outcome.status,
            error_code=error.code if error is not None else None,
            cache_hit=outcome.cache_hit,
            streamed=outcome.streamed,
            tokens_estimated=estimated,
        )
        limit = ticket._limit
        if limit is not None and self._limiter is not None:
            self._spawn(self._limiter.settle(limit, usage.prompt_tokens + usage.completion_tokens))
        if outcome.reservations and self._limiter is not None:
            used = usage.prompt_tokens + usage.completion_tokens
            answered = f"route:{route.label}" if route is not None else None
            for taken in outcome.reservations:
                tokens = used if taken.rules[0].subject == answered else 0
                self._spawn(self._limiter.settle(taken, tokens))
        spend = ticket._spend
        if spend is not None and self._spend is not None:
            self._spawn(self._spend.settle(spend, cost))
        self._emit(record)
        return record

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Queue a settlement; one background task runs them in order.

        A task per settlement cost more than the whole gate (measured: ~25 us of task
        creation and scheduling per request); awaiting a queued coroutine that never
        suspends (the in-process limiter) costs about one microsecond.
        """
        self._queue.append(work)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run_settlements())

    async def _run_settlements(self) -> None:
        queue = self._queue
        while queue:
            work = queue.popleft()
            try:
                await work
            except Exception as exc:  # a reservation then simply expires with its window
                log.warning("settling a reservation failed: %s", exc)

    async def drain(self) -> None:
        """Wait for pending settlements (shutdown)."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)


__all__ = [
    "ADMIN",
    "OPEN",
    "Caller",
    "Gate",
    "Outcome",
    "Ticket",
    "period_id",
    "rate_limit_error",
]
