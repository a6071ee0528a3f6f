"""Resolves a requested model name to routes and runs them reliably.

A configured model name maps to its routes; ``provider/model`` addresses a provider
directly; ``auto`` considers every configured route. For one request the router:

1. orders the candidate routes with the model's strategy (ordered, weighted,
   least_latency, lowest_cost, auto);
2. skips routes whose circuit breaker is open (failing fast: no retry time is paid on a
   route known to be down, even for a single-route model);
3. tries a route, retrying retryable failures with full-jitter backoff (honouring
   Retry-After) while attempts remain and the wait fits in the request's one deadline,
   then falls back to the next route; a context-window overflow goes to a route with a
   larger window; the caller's own 4xx is returned at once;
4. for streams, all of this happens before the first event: the first batch is awaited
   under the first-token timeout, and once it is in hand the route is committed; later
   failures become in-stream errors (never a second, spliced answer). For the rest of
   the stream the transport enforces the idle gap and the overall deadline, both carried
   to it in the attempt's ``core.context.CallLimits``;
5. optionally hedges: if the first route has produced nothing after the hedge delay, the
   next route starts too; the first to answer wins and the other is cancelled.

Every attempt's outcome feeds the route's breaker and latency statistics. When every
route fails the caller gets one error listing what each route returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from llm_gateway.config.schema import BreakerConfig, HedgeConfig, RetryConfig
from llm_gateway.core.context import CALL_LIMITS, CallLimits
from llm_gateway.core.errors import (
    AllRoutesFailedError,
    CircuitOpenError,
    ContextWindowExceededError,
    FirstTokenTimeoutError,
    GatewayError,
    ModelNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    TotalTimeoutError,
    UpstreamError,
)
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse
from llm_gateway.limits.base import LimitRule, RateLimiter, RateLimitExceeded, Reservation
from llm_gateway.providers.base import Provider
from llm_gateway.routing.backoff import retry_delay, should_retry
from llm_gateway.routing.breaker import CircuitBreaker
from llm_gateway.routing.estimate import (
    COMPLETION_CEILING,
    estimate_completion_tokens,
    estimate_prompt_tokens,
)
from llm_gateway.routing.hedging import hedge_delay
from llm_gateway.routing.route import Route
from llm_gateway.routing.stats import StatsBook
from llm_gateway.routing.strategies import Strategy, larger_context_routes, make_strategy

T = TypeVar("T")

AUTO_MODEL = "auto"
DEFAULT_FIRST_TOKEN_TIMEOUT = 60.0


class ModelPolicy(msgspec.Struct, frozen=True):
    """Reliability settings of one model (config ``models.<name>``; defaults otherwise)."""

    timeout: float = 300.0
    first_token_timeout: float | None = None
    idle_timeout: float | None = None
    retries: RetryConfig = msgspec.field(default_factory=RetryConfig)
    breaker: BreakerConfig = msgspec.field(default_factory=BreakerConfig)
    hedge: HedgeConfig | None = None


class ModelPlan(msgspec.Struct, frozen=True):
    """Everything needed to serve one requested model name, built once per config load."""

    name: str
    routes: tuple[Route, ...]
    defaults: Mapping[str, Any] = msgspec.field(default_factory=dict)
    max_tokens_cap: int | None = None
    policy: ModelPolicy = msgspec.field(default_factory=ModelPolicy)
    strategy: str = "ordered"

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """Applies the model's default parameters where the caller set none, and its cap."""
        if not self.defaults and self.max_tokens_cap is None:
            return request
        changes: dict[str, Any] = {}
        extra = request.extra
        for key, value in self.defaults.items():
            if key in ChatRequest.__struct_fields__:
                if getattr(request, key) is None:
                    changes[key] = value
            elif key not in extra:
                extra = {**extra, key: value}
        if extra is not request.extra:
            changes["extra"] = extra
        cap = self.max_tokens_cap
        if cap is not None:
            asked = changes.get("max_tokens", request.max_tokens)
            changes["max_tokens"] = cap if asked is None else min(asked, cap)
        return msgspec.structs.replace(request, **changes)


class CallTrace:
    """What one request cost upstream, for response headers and logs.

    For a stream, the API layer calls ``finished`` once when the stream ends: a failure
    after the first byte still says something about the route's health.
    """

    __slots__ = (
        "_on_finished",
        "attempts",
        "reservations",
        "route",
        "sleep_seconds",
        "upstream_seconds",
    )

    def __init__(self) -> None:
        self.attempts = 0
        self.upstream_seconds = 0.0
        self.sleep_seconds = 0.0
        self.route: Route | None = None
        # Route rate-limit reservations taken for this call; the gate settles the one of
        # the route that answered with the real usage, and releases the others.
        self.reservations: list[Reservation] = []
        self._on_finished: Callable[[GatewayError | None], None] | None = None

    def finished(self, error: GatewayError | None) -> None:
        callback = self._on_finished
        if callback is not None:
            self._on_finished = None
            callback(error)


class _Failures:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[str, GatewayError]] = []

    def add(self, route: Route, error: GatewayError) -> None:
        self.items.append((route.label, error))

    def raise_for(self, plan: ModelPlan) -> GatewayError:
        if not self.items:
            return ProviderUnavailableError(f"model '{plan.name}' has no usable route")
        if len(self.items) == 1:
            return self.items[0][1]
        return AllRoutesFailedError(plan.name, self.items)


class Router:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        unavailable: Mapping[str, str],
        models: Mapping[str, ModelPlan],
        *,
        strategies: Mapping[str, Strategy] | None = None,
        table: Any = None,
        stats: StatsBook | None = None,
        rng: random.Random | None = None,
        on_breaker_change: Callable[[Route, str, str], None] | None = None,
        provider_routes: Mapping[str, Route] | None = None,
        on_outcome: Callable[[Route, GatewayError | None, float], None] | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._unavailable = dict(unavailable)
        self._models = dict(models)
        self._direct: dict[str, ModelPlan] = {}
        self._table = table
        self._rng = rng or random.Random()
        self._strategies: dict[str, Strategy] = dict(strategies or {})
        self.stats = stats or StatsBook()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._on_breaker_change = on_breaker_change
        # Told how every upstream attempt ended (error or None, seconds): provider state.
        self._on_outcome = on_outcome
        # A template route per provider (type and timeouts), for direct addressing.
        self._provider_routes = dict(provider_routes or {})
        self._limiter: RateLimiter | None = None

    def attach_limiter(self, limiter: RateLimiter | None) -> None:
        """Enforce routes' rpm/tpm with ``limiter`` (set once limits are built at start-up)."""
        self._limiter = limiter

    async def _route_admits(
        self, route: Route, request: ChatRequest, trace: CallTrace, failures: _Failures
    ) -> bool:
        """Reserves the route's own rate limit; a route at its limit is skipped like an
        upstream 429, so fallback to the next route still happens."""
        limiter = self._limiter
        if limiter is None or (route.rpm is None and route.tpm is None):
            return True
        rule = LimitRule(f"route:{route.label}", route.rpm, route.tpm)
        completion = min(estimate_completion_tokens(request), COMPLETION_CEILING)
        tokens = estimate_prompt_tokens(request) + completion
        try:
            trace.reservations.append(await limiter.reserve((rule,), tokens))
        except RateLimitExceeded as exc:
            failures.add(
                route,
                RateLimitError(
                    f"route {route.label} is at its own {exc.dimension} per minute limit "
                    f"({exc.state.limit})",
                    retry_after=exc.retry_after,
                    code="route_rate_limited",
                ),
            )
            return False
        return True

    # -- resolution ------------------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    @property
    def provider_names(self) -> list[str]:
        return [*self._providers, *self._unavailable]

    def resolve(self, name: str) -> ModelPlan:
        plan = self._models.get(name) or self._direct.get(name)
        if plan is not None:
            return plan
        if name == AUTO_MODEL:
            return self._auto_plan()
        provider_name, sep, model = name.partition("/")
        if sep and model:
            provider = self._providers.get(provider_name)
            reason = self._unavailable.get(provider_name)
            if provider is not None or reason is not None:
                template = self._provider_routes.get(provider_name)
                route = Route(
                    provider_name,
                    model,
                    provider,
                    reason,
                    provider_type=template.provider_type if template else "",
                    first_token_timeout=template.first_token_timeout if template else None,
                    idle_timeout=template.idle_timeout if template else None,
                )
                plan = ModelPlan(name=name, routes=(route,))
                if len(self._direct) < 4096:  # bounded: names come from clients
                    self._direct[name] = plan
                return plan
        raise self._not_found(name)

    def _auto_plan(self) -> ModelPlan:
        seen: dict[str, Route] = {}
        for plan in self._models.values():
            for route in plan.routes:
                seen.setdefault(route.label, route)
        plan = ModelPlan(name=AUTO_MODEL, routes=tuple(seen.values()), strategy=AUTO_MODEL)
        self._direct[AUTO_MODEL] = plan
        return plan

    def _not_found(self, name: str) -> ModelNotFoundError:
        known = ", ".join(self._models) or "none configured"
        providers = ", ".join(self.provider_names)
        return ModelNotFoundError(
            f"The model '{name}' does not exist. Configured models: {known}. "
            f"Or address a provider directly as 'provider/model' (providers: {providers}), "
            "or use 'auto'.",
            param="model",
        )

    # -- per-route state ---------------------------------------------------------------------

    def breaker(self, route: Route, config: BreakerConfig) -> CircuitBreaker:
        breaker = self._breakers.get(route.label)
        if breaker is None:
            callback = None
            if self._on_breaker_change is not None:
                notify = self._on_breaker_change

                def callback(old: Any, new: Any, route: Route = route) -> None:
                    notify(route, str(getattr(old, "value", old)), str(getattr(new, "value", new)))

            breaker = CircuitBreaker(config, on_change=callback)
            self._breakers[route.label] = breaker
        return breaker

    def _strategy(self, name: str) -> Strategy:
        strategy = self._strategies.get(name)
        if strategy is None:
            strategy = self._strategies[name] = make_strategy(name, self._table, self._rng)
        return strategy

    def _candidates(self, plan: ModelPlan, request: ChatRequest) -> list[Route]:
        if plan.strategy == "ordered" or len(plan.routes) == 1:
            return list(plan.routes)
        return self._strategy(plan.strategy).order(plan.routes, request, self.stats)

    # -- the attempt loop ----------------------------------------------------------------

    async def _run(
        self,
        plan: ModelPlan,
        request: ChatRequest,
        trace: CallTrace,
        attempt: Callable[[Route, Provider, float], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]] | None = None,
    ) -> tuple[T, Route]:
        """Tries candidates in order with retries; returns the first success and its route.

        ``discard`` releases a successful result that lost a hedging race (a stream's
        open upstream connection).
        """
        policy = plan.policy
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.timeout
        failures = _Failures()
        candidates = self._candidates(plan, request)
        hedge = policy.hedge
        index = 0
        while index < len(candidates):
            route = candidates[index]
            index += 1
            if route.provider is None:
                failures.add(route, _not_configured(route))
                continue
            breaker = self.breaker(route, policy.breaker)
            if not breaker.allow():
                failures.add(route, _circuit_open(route, breaker.retry_in()))
                continue
            if not await self._route_admits(route, request, trace, failures):
                continue
            if hedge is not None and index < len(candidates):
                hedged, partner_started = await self._hedged(
                    plan, route, candidates[index], trace, attempt, deadline, failures, discard
                )
                if hedged is not None:
                    return hedged
                if partner_started:
                    index += 1  # the partner already had its attempt in the race
                continue
            tries = 0
            while True:
                time_left = deadline - loop.time()
                if time_left <= 0:
                    failures.add(route, _deadline(plan))
                    raise failures.raise_for(plan)
                tries += 1
                try:
                    result = await self._attempt(
                        route, breaker, trace, attempt, time_left, _limits(policy, deadline)
                    )
                    return result, route
                except GatewayError as error:
                    failures.add(route, error)
                    if isinstance(error, ContextWindowExceededError):
                        remaining = larger_context_routes(
                            candidates[index:], after=route, table=self._table
                        )
                        candidates = candidates[:index] + remaining
                        break
                    if isinstance(error, TotalTimeoutError):
                        raise failures.raise_for(plan) from None  # the deadline is spent
                    if not error.retryable:
                        raise error  # the caller's own mistake: no other route will differ
                    delay = retry_delay(tries - 1, policy.retries, error.retry_after, self._rng)
                    time_left = deadline - loop.time()
                    if not should_retry(error, tries - 1, policy.retries, time_left, delay):
                        break
                    if not breaker.allow():
                        break
                    trace.sleep_seconds += delay
                    await asyncio.sleep(delay)
        raise failures.raise_for(plan)

    async def _attempt(
        self,
        route: Route,
        breaker: CircuitBreaker,
        trace: CallTrace,
        attempt: Callable[[Route, Provider, float], Awaitable[T]],
        time_left: float,
        limits: CallLimits | None = None,
    ) -> T:
        assert route.provider is not None
        trace.attempts += 1
        started = time.monotonic()
        token = CALL_LIMITS.set(limits) if limits is not None else None
        try:
            result = await attempt(route, route.provider, time_left)
        except GatewayError as error:
            elapsed = time.monotonic() - started
            trace.upstream_seconds += elapsed
            if _counts_against_route(error):
                breaker.record_failure()
                self.stats.record(route.label, ttft=None, latency=elapsed, ok=False)
            if self._on_outcome is not None:
                self._on_outcome(route, error, elapsed)
            raise
        except asyncio.CancelledError:
            trace.upstream_seconds += time.monotonic() - started
            raise
        finally:
            if token is not None:
                CALL_LIMITS.reset(token)
        elapsed = time.monotonic() - started
        trace.upstream_seconds += elapsed
        trace.route = route
        breaker.record_success()
        self.stats.record(route.label, ttft=elapsed, latency=elapsed, ok=True)
        if self._on_outcome is not None:
            self._on_outcome(route, None, elapsed)
        return result

    async def _hedged(
        self,
        plan: ModelPlan,
        route: Route,
        partner: Route,
        trace: CallTrace,
        attempt: Callable[[Route, Provider, float], Awaitable[T]],
        deadline: float,
        failures: _Failures,
        discard: Callable[[T], Awaitable[None]] | None,
    ) -> tuple[tuple[T, Route] | None, bool]:
        """Races ``route`` against ``partner`` once the hedge delay passes.

        Returns the winner (or None when every raced attempt failed) and whether the
        partner was started. Raced routes are not retried; the caller falls back to the
        routes after them.
        """
        assert plan.policy.hedge is not None
        loop = asyncio.get_running_loop()
        delay = hedge_delay(plan.policy.hedge, self.stats.ttft_p95(route.label))

        def start(r: Route) -> asyncio.Task[T]:
            breaker = self.breaker(r, plan.policy.breaker)
            time_left = max(0.0, deadline - loop.time())
            return loop.create_task(
                self._attempt(r, breaker, trace, attempt, time_left, _limits(plan.policy, deadline))
            )

        # Raced attempts overlap: upstream time is the race's wall time, not their sum.
        upstream_before = trace.upstream_seconds
        race_started = time.monotonic()
        tasks: dict[asyncio.Task[T], Route] = {start(route): route}
        partner_started = False
        winner: asyncio.Task[T] | None = None
        try:
            done, _ = await asyncio.wait(
                tasks, timeout=max(0.0, min(delay, deadline - loop.time()))
            )
            if (
                not done
                and partner.provider is not None
                and self.breaker(partner, plan.policy.breaker).allow()
            ):
                tasks[start(partner)] = partner
                partner_started = True
            while tasks:
                if not done:
                    done, _ = await asyncio.wait(
                        tasks,
                        timeout=max(0.0, deadline - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if not done:
                        failures.add(route, _deadline(plan))
                        return None, partner_started
                for task in done:
                    task_route = tasks.pop(task)
                    error = task.exception()
                    if error is None:
                        if winner is None:
                            winner = task
                            result = (task.result(), task_route)
                        elif discard is not None:
                            await discard(task.result())  # finished in the same instant
                        continue
                    if not isinstance(error, GatewayError):
                        raise error
                    failures.add(task_route, error)
                    if not error.retryable and not isinstance(error, ContextWindowExceededError):
                        raise error
                if winner is not None:
                    return result, partner_started
                done = set()
            return None, partner_started
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    value = await task
                    if discard is not None:
                        await discard(value)  # completed despite the cancel: release it
            trace.upstream_seconds = upstream_before + (time.monotonic() - race_started)

    # -- public calls -------------------------------------------------------------------------

    async def complete(
        self, plan: ModelPlan, request: ChatRequest, trace: CallTrace | None = None
    ) -> tuple[ChatResponse, Route]:
        trace = trace or CallTrace()

        async def attempt(route: Route, provider: Provider, time_left: float) -> ChatResponse:
            # The deadline travels in the attempt's CallLimits and the transport enforces
            # it (see core/context.py): no timer of our own per attempt.
            return await provider.complete(request, route.model)

        return await self._run(plan, request, trace, attempt)

    async def open_stream(
        self, plan: ModelPlan, request: ChatRequest, trace: CallTrace | None = None
    ) -> tuple[Route, list[StreamEvent], AsyncIterator[list[StreamEvent]]]:
        """Starts a stream on the first route that yields events.

        Returns the route, its first batch of events and the iterator for the rest. The
        caller reports how the stream ended with ``trace.finished(error)``.
        """
        trace = trace or CallTrace()
        policy = plan.policy
        loop = asyncio.get_running_loop()

        async def attempt(
            route: Route, provider: Provider, time_left: float
        ) -> tuple[list[StreamEvent], AsyncIterator[list[StreamEvent]]]:
            first_limit = (
                policy.first_token_timeout
                or route.first_token_timeout
                or DEFAULT_FIRST_TOKEN_TIMEOUT
            )
            limit = min(first_limit, time_left)
            iterator = aiter(provider.stream(request, route.model))
            # One timer that cancels this task if no first event comes in time: cheaper
            # than asyncio.timeout (measured), and the only timer a stream needs here; the
            # transport enforces the idle gap and the deadline for the rest of the stream.
            task = asyncio.current_task()
            assert task is not None
            expired: list[bool] = []

            def expire() -> None:
                expired.append(True)
                task.cancel()

            timer = loop.call_at(loop.time() + limit, expire)
            try:
                first = await anext(iterator)
            except StopAsyncIteration:
                raise UpstreamError(
                    f"provider '{route.provider_name}' ended the stream without any event",
                    provider=route.provider_name,
                ) from None
            except asyncio.CancelledError:
                await close_stream(iterator)
                if not expired or not task.cancelling():
                    raise
                task.uncancel()
                if first_limit < time_left:
                    raise FirstTokenTimeoutError(
                        f"no first token within {first_limit:g} s",
                        provider=route.provider_name,
                    ) from None
                raise TotalTimeoutError(
                    f"no first token within the request's deadline of {policy.timeout:g} s",
                    provider=route.provider_name,
                ) from None
            except BaseException:
                await close_stream(iterator)
                raise
            finally:
                timer.cancel()
            return first, iterator

        async def discard(
            result: tuple[list[StreamEvent], AsyncIterator[list[StreamEvent]]],
        ) -> None:
            await close_stream(result[1])

        (first, iterator), route = await self._run(plan, request, trace, attempt, discard)
        breaker = self.breaker(route, policy.breaker)
        label = route.label
        stats = self.stats
        started = loop.time()
        on_outcome = self._on_outcome

        def on_finished(error: GatewayError | None) -> None:
            # A failure after the first byte still says something about the route.
            if error is not None and _counts_against_route(error):
                breaker.record_failure()
            stats.record(label, ttft=None, latency=loop.time() - started, ok=error is None)
            if error is not None and on_outcome is not None:
                on_outcome(route, error, loop.time() - started)

        trace._on_finished = on_finished
        return route, first, iterator


def _limits(policy: ModelPolicy, deadline: float) -> CallLimits:
    """What the transport enforces for one attempt: the request's deadline, and the
    model's idle timeout where it overrides the providers' own."""
    return CallLimits(idle_timeout=policy.idle_timeout, deadline=deadline)


def _counts_against_route(error: GatewayError) -> bool:
    """The caller's own mistakes say nothing about a route's health; upstream trouble does."""
    return error.retryable and not isinstance(error, CircuitOpenError)


def _not_configured(route: Route) -> GatewayError:
    return ProviderUnavailableError(
        f"provider '{route.provider_name}' is not configured: {route.unavailable_reason}",
        provider=route.provider_name,
    )


def _circuit_open(route: Route, retry_in: float) -> GatewayError:
    return CircuitOpenError(
        f"route {route.label} is failing; its circuit is open and the next probe is in "
        f"{retry_in:.1f} s",
        provider=route.provider_name,
        retry_after=retry_in,
    )


def _deadline(plan: ModelPlan) -> GatewayError:
    return TotalTimeoutError(
        f"the request's deadline of {plan.policy.timeout:g} s passed (model '{plan.name}')"
    )


async def close_stream(iterator: AsyncIterator[list[StreamEvent]]) -> None:
    """Closes a provider stream (and so its upstream connection), ignoring late errors."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def build_plans(
    configured: Mapping[str, Sequence[Route]],
    *,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    caps: Mapping[str, int | None] | None = None,
    policies: Mapping[str, ModelPolicy] | None = None,
    strategies: Mapping[str, str] | None = None,
) -> dict[str, ModelPlan]:
    """ModelPlans for configured model names: name → its routes, in configured order."""
    return {
        name: ModelPlan(
            name=name,
            routes=tuple(routes),
            defaults=dict((defaults or {}).get(name) or {}),
            max_tokens_cap=(caps or {}).get(name),
            policy=(policies or {}).get(name) or ModelPolicy(),
            strategy=(strategies or {}).get(name) or "ordered",
        )
        for name, routes in configured.items()
    }
