"""The gate: admit a call (allow-list, rate limits, budget) and account for it.

Authentication lives in ``gate.auth`` (``Gate`` inherits it), the ticket and outcome of a
call in ``gate.ticket``, the settlement workers in ``gate.settle``.

Everything here runs on the request path, so it touches only memory: the key snapshot
(``KeyRing``), the limiter and spend counter (in-process dicts, or one Redis round trip
each), and the observers that take the finished ``UsageRecord`` (the ledger writer only
appends to a buffer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from llm_gateway.accounting.tokens import count_prompt, count_text
from llm_gateway.core.errors import GatewayError, InsufficientQuotaError
from llm_gateway.core.records import BudgetPeriod, UsageRecord
from llm_gateway.core.types import ChatRequest, Usage
from llm_gateway.gate.auth import ADMIN, OPEN, Authenticator, Caller
from llm_gateway.gate.keys import KeyRing
from llm_gateway.gate.settle import Settlements
from llm_gateway.gate.ticket import Outcome, Ticket, rate_limit_error
from llm_gateway.limits.base import (
    BudgetExceeded,
    LimitRule,
    RateLimiter,
    RateLimitExceeded,
    Reservation,
    SpendCounter,
    SpendReservation,
)
from llm_gateway.routing.estimate import (
    COMPLETION_CEILING,
    estimate_completion_tokens,
    estimate_prompt_tokens,
)
from llm_gateway.routing.model_table import ModelTable, usage_cost
from llm_gateway.routing.router import ModelPlan

log = logging.getLogger("llm_gateway.gate")

UsageObserver = Callable[[UsageRecord], None]

# A completion is never reserved above this many tokens when the model table does not
# know the routes' output limit: a caller's max_tokens of 10**12 must not reserve (or
# overflow) anything absurd. Generous: the largest outputs offered today are 128k.
# Only requests asking for more than this look their routes up in the model table.
_CAP_CHECK_ABOVE = 4096
# Dollars: keeps every reservation far inside a 64-bit nano-dollar counter.
MAX_RESERVED_COST = 1e9


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


class Gate(Authenticator):
    """Authentication (``Authenticator``), then admission and accounting of each call."""

    def __init__(
        self,
        *,
        admin_key: str | None,
        table: ModelTable,
        limiter: RateLimiter | None = None,
        spend: SpendCounter | None = None,
        keys: KeyRing | None = None,
        settlements: Settlements | None = None,
    ) -> None:
        super().__init__(admin_key=admin_key, keys=keys)
        self._table = table
        self._limiter = limiter
        self._spend = spend
        self._observers: list[UsageObserver] = []
        self._settlements = settlements or Settlements()

    def attach_limits(self, limiter: RateLimiter | None, spend: SpendCounter | None) -> None:
        self._limiter = limiter
        self._spend = spend

    def add_observer(self, observer: UsageObserver) -> None:
        self._observers.append(observer)

    # -- may they -------------------------------------------------------------------------

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
        """Check and reserve; raises 403 (model), 429 (rate) or 402 insufficient_quota.

        Whatever ends admission early (a refusal, an unreachable counter, a bug, the
        client going away) gives back what was already reserved.
        """
        started = time.monotonic() if started is None else started
        key = caller.key
        if key is None:
            return Ticket(
                self, caller, request, endpoint=endpoint, request_id=request_id, started=started
            )
        self.check_model(caller, request.model)
        limit: Reservation | None = None
        spend: SpendReservation | None = None
        # Reservations use the sub-microsecond estimate; exact counting (tens of
        # microseconds) is kept for recording usage the provider did not report.
        prompt = estimate_prompt_tokens(request)
        completion = estimate_completion_tokens(request)
        if completion > _CAP_CHECK_ABOVE:
            completion = min(completion, self.completion_cap(plan))
        try:
            if self._limiter is not None and (key.rpm is not None or key.tpm is not None):
                rule = LimitRule(f"key:{key.id}", key.rpm, key.tpm)
                try:
                    limit = await self._limiter.reserve((rule,), prompt + completion)
                except RateLimitExceeded as exc:
                    raise rate_limit_error(exc) from None
            if self._spend is not None and key.budget is not None:
                amount = min(self._estimate_cost(plan, prompt, completion), MAX_RESERVED_COST)
                period, _ = period_id(key.budget_period, time.time())
                try:
                    spend = await self._spend.reserve(key.id, period, key.budget, amount)
                except BudgetExceeded as exc:
                    raise InsufficientQuotaError(
                        f"This API key's {key.budget_period} budget of ${exc.budget:.2f} is "
                        f"used up (spent ${exc.spent:.4f}).",
                    ) from None
        except BaseException:
            # Refused, the counter unreachable under the 'deny' policy, a bug, or
            # cancelled: give back the tokens the rate limiter reserved for this request.
            if limit is not None and self._limiter is not None:
                self._settlements.put(self._limiter.settle(limit, 0))
            raise
        return Ticket(
            self,
            caller,
            request,
            endpoint=endpoint,
            request_id=request_id,
            started=started,
            limit=limit,
            spend=spend,
        )

    def completion_cap(self, plan: ModelPlan) -> int:
        """The most completion tokens any of ``plan``'s routes can produce: the model
        table's output limit (else context window) of the largest, within the ceiling."""
        cap = 0
        for route in plan.routes:
            info = self._table.get(route.provider_type, route.model)
            known = None if info is None else (info.max_output_tokens or info.context_window)
            if known is None:
                return COMPLETION_CEILING
            cap = max(cap, known)
        return min(cap, COMPLETION_CEILING) if cap > 0 else COMPLETION_CEILING

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

    def _estimate_cost(self, plan: ModelPlan, prompt: int, completion: int) -> float:
        """The dearest route's price for the prompt and the expected completion."""
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
        settle = self._settlements.put
        limiter = self._limiter
        if limiter is not None:
            used = usage.prompt_tokens + usage.completion_tokens
            limit = ticket._limit  # the package's own ticket: no property call per request
            if limit is not None:
                settle(limiter.settle(limit, used))
            if outcome.reservations:
                answered = f"route:{route.label}" if route is not None else None
                for taken in outcome.reservations:
                    tokens = used if taken.rules[0].subject == answered else 0
                    settle(limiter.settle(taken, tokens))
        spend = ticket._spend
        if spend is not None and self._spend is not None:
            settle(self._spend.settle(spend, min(cost, MAX_RESERVED_COST)))
        self._emit(record)
        return record

    async def drain(self) -> None:
        """Wait for pending settlements (shutdown)."""
        await self._settlements.drain()


__all__ = [
    "ADMIN",
    "COMPLETION_CEILING",
    "OPEN",
    "Caller",
    "Gate",
    "Outcome",
    "Ticket",
    "period_id",
    "rate_limit_error",
]
