"""Model resolution and ordered fallback (before the first event only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llm_gateway.config.schema import HedgeConfig, RetryConfig
from llm_gateway.core.errors import (
    AllRoutesFailedError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    UpstreamError,
)
from llm_gateway.core.events import FinishEvent, StreamEvent, TextDelta
from llm_gateway.core.types import ChatRequest, ChatResponse, Message, ModelInfo
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import CallTrace, ModelPolicy, Router, build_plans

REQ = ChatRequest(model="m", messages=[Message(role="user", content="hi")])


class Scripted:
    """A provider that fails with ``error`` (if set) or answers with its own name."""

    type = "scripted"

    def __init__(self, name: str, error: GatewayError | None = None, fail_mid_stream: bool = False):
        self.name = name
        self.error = error
        self.fail_mid_stream = fail_mid_stream
        self.calls: list[str] = []
        self.closed = 0

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        self.calls.append(model)
        if self.error:
            raise self.error
        return ChatResponse(id="r", model=model, created=0, content=self.name)

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[list[StreamEvent]]:
        self.calls.append(model)
        try:
            if self.error and not self.fail_mid_stream:
                raise self.error
            yield [TextDelta(self.name)]
            if self.error:
                raise self.error
            yield [FinishEvent("stop")]
        finally:
            self.closed += 1

    async def list_models(self) -> list[ModelInfo]:
        return []

    async def aclose(self) -> None:
        return None


def make_router(*providers: Scripted, unavailable: dict[str, str] | None = None) -> Router:
    by_name = {p.name: p for p in providers}
    routes = [Route(p.name, f"{p.name}-model", p) for p in providers]
    routes += [Route(n, "x", None, reason) for n, reason in (unavailable or {}).items()]
    # No backoff sleeps in unit tests: retries are exercised in tests/reliability.
    policy = ModelPolicy(retries=RetryConfig(attempts=1))
    plans = build_plans(
        {"m": routes},
        defaults={"m": {"temperature": 0.3, "top_k": 5}},
        caps={"m": 100},
        policies={"m": policy},
    )
    return Router(by_name, unavailable or {}, plans)


async def collect(it: AsyncIterator[list[StreamEvent]]) -> list[StreamEvent]:
    return [e async for batch in it for e in batch]


def test_resolve_configured_direct_and_unknown() -> None:
    router = make_router(Scripted("a"))
    assert [r.label for r in router.resolve("m").routes] == ["a/a-model"]
    direct = router.resolve("a/some/model-with-slash")
    assert (
        direct.routes[0].provider_name == "a" and direct.routes[0].model == "some/model-with-slash"
    )
    assert router.resolve("a/some/model-with-slash") is direct  # cached
    with pytest.raises(ModelNotFoundError) as info:
        router.resolve("nope/x")
    assert "Configured models: m" in info.value.message and "providers: a" in info.value.message
    assert info.value.status == 404 and info.value.param == "model"


def test_defaults_fill_only_what_the_caller_left_out_and_cap_applies() -> None:
    plan = make_router(Scripted("a")).resolve("m")
    prepared = plan.prepare(REQ)
    assert (
        prepared.temperature == 0.3
        and prepared.extra == {"top_k": 5}
        and prepared.max_tokens == 100
    )
    import msgspec

    explicit = plan.prepare(
        msgspec.structs.replace(REQ, temperature=1.0, max_tokens=500, extra={"top_k": 1})
    )
    assert (
        explicit.temperature == 1.0
        and explicit.extra == {"top_k": 1}
        and explicit.max_tokens == 100
    )


async def test_complete_falls_back_on_retryable_errors_only() -> None:
    a, b = Scripted("a", RateLimitError("busy")), Scripted("b")
    router = make_router(a, b)
    response, route = await router.complete(router.resolve("m"), REQ)
    assert response.content == "b" and route.provider_name == "b" and a.calls == ["a-model"]

    bad, other = Scripted("a", InvalidRequestError("your fault")), Scripted("b")
    router = make_router(bad, other)
    with pytest.raises(InvalidRequestError):
        await router.complete(router.resolve("m"), REQ)
    assert other.calls == []


async def test_all_routes_failing_lists_each_failure() -> None:
    router = make_router(
        Scripted("a", RateLimitError("too many", retry_after=3)),
        Scripted("b", UpstreamError("boom")),
        unavailable={"c": "no API key"},
    )
    with pytest.raises(AllRoutesFailedError) as info:
        await router.complete(router.resolve("m"), REQ)
    message = info.value.message
    assert "a/a-model: 429 too many" in message and "b/b-model: 502 boom" in message
    assert "c/x: 503 provider 'c' is not configured: no API key" in message
    assert info.value.status == 503


async def test_single_route_error_is_passed_through_unwrapped() -> None:
    router = make_router(Scripted("a", RateLimitError("slow", retry_after=2)))
    with pytest.raises(RateLimitError) as info:
        await router.complete(router.resolve("m"), REQ)
    assert info.value.retry_after == 2


async def test_stream_falls_back_before_first_event_and_closes_the_failed_one() -> None:
    a, b = Scripted("a", UpstreamError("down")), Scripted("b")
    router = make_router(a, b)
    route, first, rest = await router.open_stream(router.resolve("m"), REQ)
    assert route.provider_name == "b" and first == [TextDelta("b")]
    assert await collect(rest) == [FinishEvent("stop")]
    assert a.closed == 1


async def test_stream_failure_after_first_event_is_not_retried() -> None:
    a, b = (
        Scripted(
            "a",
            UpstreamError(
                "cut",
            ),
            fail_mid_stream=True,
        ),
        Scripted("b"),
    )
    router = make_router(a, b)
    route, first, rest = await router.open_stream(router.resolve("m"), REQ)
    assert route.provider_name == "a" and first == [TextDelta("a")]
    with pytest.raises(UpstreamError):
        await collect(rest)
    assert b.calls == []


async def test_unavailable_provider_direct_address() -> None:
    router = make_router(Scripted("a"), unavailable={"c": "no API key"})
    with pytest.raises(ProviderUnavailableError) as info:
        await router.open_stream(router.resolve("c/x"), REQ)
    assert "not configured: no API key" in info.value.message


class Slow(Scripted):
    """Answers after ``delay`` seconds; records whether its stream was closed."""

    def __init__(self, name: str, delay: float, error: GatewayError | None = None) -> None:
        super().__init__(name, error)
        self.delay = delay

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[list[StreamEvent]]:
        self.calls.append(model)
        try:
            await asyncio.sleep(self.delay)
            if self.error:
                raise self.error
            yield [TextDelta(self.name)]
            yield [FinishEvent("stop")]
        finally:
            self.closed += 1


def hedged_router(*providers: Scripted) -> Router:
    by_name = {p.name: p for p in providers}
    routes = [Route(p.name, f"{p.name}-model", p) for p in providers]
    policy = ModelPolicy(retries=RetryConfig(attempts=1), hedge=HedgeConfig(after_ms=50), timeout=5)
    return Router(by_name, {}, build_plans({"m": routes}, policies={"m": policy}))


async def test_hedge_starts_the_partner_when_the_first_route_is_slow() -> None:
    slow, fast = Slow("slow", 2.0), Slow("fast", 0.01)
    router = hedged_router(slow, fast)
    trace = CallTrace()
    started = asyncio.get_running_loop().time()
    route, first, rest = await router.open_stream(router.resolve("m"), REQ, trace)
    took = asyncio.get_running_loop().time() - started
    assert route.provider_name == "fast" and first == [TextDelta("fast")]
    assert 0.05 <= took < 0.5 and trace.attempts == 2
    # The race counts once as upstream time, so the gateway's own time is not hidden.
    assert trace.upstream_seconds <= took + 0.01
    assert slow.closed == 1  # the loser was cancelled and its stream closed
    assert await collect(rest) == [FinishEvent("stop")]


async def test_hedge_falls_back_to_the_partner_when_the_first_fails_early() -> None:
    broken, good = Slow("broken", 0.0, UpstreamError("down")), Slow("good", 0.0)
    router = hedged_router(broken, good)
    route, first, _ = await router.open_stream(router.resolve("m"), REQ)
    assert route.provider_name == "good" and first == [TextDelta("good")]
    assert good.calls == ["good-model"]  # tried after the failure, not skipped
