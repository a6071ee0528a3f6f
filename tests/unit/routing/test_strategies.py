"""Route-ordering strategies, against a fake stats view and a small model table."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Literal, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_gateway.core.types import ChatRequest, ImagePart, Message, ResponseFormat, TextPart, Tool
from llm_gateway.providers.base import Provider
from llm_gateway.routing.model_table import Capabilities, ModelInfo, ModelTable, Prices
from llm_gateway.routing.route import Route
from llm_gateway.routing.strategies import (
    STRATEGY_NAMES,
    AutoStrategy,
    LeastLatencyStrategy,
    LowestCostStrategy,
    OrderedStrategy,
    WeightedStrategy,
    larger_context_routes,
    make_strategy,
)

PROVIDER = cast(Provider, object())
REQ = ChatRequest(model="m", messages=[Message(role="user", content="hello " * 100)])


def route(model: str, *, ptype: str = "openai", weight: float = 1.0, up: bool = True) -> Route:
    return Route(
        provider_name=f"p-{model}",
        model=model,
        provider=PROVIDER if up else None,
        unavailable_reason=None if up else "no key",
        weight=weight,
        provider_type=ptype,
    )


class FakeStats:
    def __init__(self) -> None:
        self.ewma: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.used: dict[str, float] = {}

    def set(self, r: Route, ewma: float | None, samples: int, used: float | None) -> None:
        if ewma is not None:
            self.ewma[r.label] = ewma
        self.count[r.label] = samples
        if used is not None:
            self.used[r.label] = used

    def ttft_ewma(self, label: str) -> float | None:
        return self.ewma.get(label)

    def samples(self, label: str) -> int:
        return self.count.get(label, 0)

    def last_used(self, label: str) -> float | None:
        return self.used.get(label)


NO_STATS = FakeStats()

ALL = Capabilities(tools=True, vision=True, json_mode=True, reasoning=False)
TABLE = ModelTable(
    [
        ModelInfo("openai", "cheap", 16_000, 4_000, Prices(0.1, 0.4), ALL),
        ModelInfo("openai", "mid", 128_000, 16_000, Prices(1.0, 4.0), ALL),
        ModelInfo("openai", "dear", 1_000_000, 32_000, Prices(10.0, 40.0), ALL),
        ModelInfo(
            "openai",
            "textonly",
            128_000,
            None,
            Prices(0.05, 0.1),
            Capabilities(tools=False, vision=False, json_mode=False),
        ),
        ModelInfo("openai", "unpriced", 64_000, None, Prices(), ALL),
        ModelInfo("openai", "vague", None, None, Prices(0.01, 0.01), Capabilities()),
    ]
)


# --- factory ---------------------------------------------------------------------------------


def test_make_strategy() -> None:
    kinds = {
        "ordered": OrderedStrategy,
        "weighted": WeightedStrategy,
        "least_latency": LeastLatencyStrategy,
        "lowest_cost": LowestCostStrategy,
        "auto": AutoStrategy,
    }
    assert set(kinds) == set(STRATEGY_NAMES)
    for name, cls in kinds.items():
        strategy = make_strategy(name, TABLE, random.Random(1))
        assert isinstance(strategy, cls) and strategy.name == name
    with pytest.raises(ValueError, match="unknown routing strategy 'fastest'; valid: ordered"):
        make_strategy("fastest", TABLE)


def test_config_strategies_are_all_known() -> None:
    from typing import get_args

    from llm_gateway.config.schema import Strategy as ConfigStrategy

    assert set(get_args(ConfigStrategy)) <= set(STRATEGY_NAMES)


# --- ordered ---------------------------------------------------------------------------------


def test_ordered_is_the_configured_order() -> None:
    routes = (route("a"), route("b", up=False), route("c"))
    ordered = OrderedStrategy().order(routes, REQ, NO_STATS)
    assert ordered == list(routes)
    ordered.pop()  # the caller owns the list
    assert len(routes) == 3


# --- weighted --------------------------------------------------------------------------------


def test_weighted_single_and_empty() -> None:
    strategy = WeightedStrategy(random.Random(0))
    assert strategy.order((), REQ, NO_STATS) == []
    only = (route("a"),)
    assert strategy.order(only, REQ, NO_STATS) == [only[0]]


def test_weighted_is_reproducible_with_a_seed() -> None:
    routes = (route("a", weight=1), route("b", weight=2), route("c", weight=3))
    first = [WeightedStrategy(random.Random(7)).order(routes, REQ, NO_STATS) for _ in range(1)]
    again = [WeightedStrategy(random.Random(7)).order(routes, REQ, NO_STATS) for _ in range(1)]
    assert first == again


def test_weighted_puts_unusable_routes_last() -> None:
    routes = (route("down", weight=100, up=False), route("a"), route("b"))
    strategy = WeightedStrategy(random.Random(3))
    for _ in range(50):
        ordered = strategy.order(routes, REQ, NO_STATS)
        assert ordered[-1] is routes[0]


@settings(max_examples=25, deadline=None)
@given(
    weights=st.lists(st.floats(0.1, 10.0), min_size=2, max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_weighted_first_pick_converges_to_weights(weights: list[float], seed: int) -> None:
    routes = tuple(route(f"r{i}", weight=w) for i, w in enumerate(weights))
    strategy = WeightedStrategy(random.Random(seed))
    draws = 4000
    firsts = Counter(strategy.order(routes, REQ, NO_STATS)[0].model for _ in range(draws))
    total = sum(weights)
    for i, w in enumerate(weights):
        share = firsts[f"r{i}"] / draws
        # 4000 draws: the standard error of a share is at most ~0.008; allow ~5 sigma.
        assert share == pytest.approx(w / total, abs=0.04)


def test_weighted_second_pick_is_weighted_without_replacement() -> None:
    # Weights 6:3:1. Given "a" first, "b" should be second with probability 3/4.
    routes = (route("a", weight=6), route("b", weight=3), route("c", weight=1))
    strategy = WeightedStrategy(random.Random(11))
    seconds: Counter[str] = Counter()
    for _ in range(20_000):
        ordered = strategy.order(routes, REQ, NO_STATS)
        if ordered[0].model == "a":
            seconds[ordered[1].model] += 1
    share_b = seconds["b"] / sum(seconds.values())
    assert share_b == pytest.approx(0.75, abs=0.02)


@given(
    weights=st.lists(st.floats(0.1, 10.0), min_size=0, max_size=6),
    seed=st.integers(0, 1000),
)
def test_weighted_returns_a_permutation(weights: list[float], seed: int) -> None:
    routes = tuple(route(f"r{i}", weight=w) for i, w in enumerate(weights))
    ordered = WeightedStrategy(random.Random(seed)).order(routes, REQ, NO_STATS)
    assert sorted(r.model for r in ordered) == sorted(r.model for r in routes)


# --- least latency ---------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _latency(epsilon: float = 0.0, seed: int = 0) -> tuple[LeastLatencyStrategy, Clock]:
    clock = Clock()
    strategy = LeastLatencyStrategy(
        random.Random(seed), epsilon=epsilon, explore_after=30.0, clock=clock
    )
    return strategy, clock


def test_least_latency_orders_by_ewma() -> None:
    strategy, clock = _latency()
    a, b, c = route("a"), route("b"), route("c")
    stats = FakeStats()
    stats.set(a, 0.9, 10, clock.now - 1)
    stats.set(b, 0.2, 10, clock.now - 1)
    stats.set(c, 0.5, 10, clock.now - 1)
    assert strategy.order((a, b, c), REQ, stats) == [b, c, a]


def test_least_latency_probes_never_used_routes_first() -> None:
    strategy, clock = _latency()
    a, b, new = route("a"), route("b"), route("new")
    stats = FakeStats()
    stats.set(a, 0.9, 10, clock.now - 1)
    stats.set(b, 0.2, 10, clock.now - 1)
    assert strategy.order((a, b, new), REQ, stats) == [new, b, a]


def test_least_latency_probes_stale_routes_so_a_recovered_route_gets_traffic() -> None:
    strategy, clock = _latency()
    fast, slow_once = route("fast"), route("slow-once")
    stats = FakeStats()
    stats.set(fast, 0.2, 10, clock.now - 1)
    stats.set(slow_once, 5.0, 10, clock.now - 10)  # was slow; tried 10 s ago
    assert strategy.order((fast, slow_once), REQ, stats) == [fast, slow_once]
    clock.now += 25  # now 35 s since it was last tried: stale
    stats.set(fast, 0.2, 10, clock.now - 1)
    assert strategy.order((fast, slow_once), REQ, stats) == [slow_once, fast]
    # The probe succeeds quickly: its EWMA drops and it is no longer stale.
    stats.set(slow_once, 0.1, 11, clock.now)
    assert strategy.order((fast, slow_once), REQ, stats) == [slow_once, fast]


def test_least_latency_recently_failing_route_is_not_first() -> None:
    strategy, clock = _latency()
    ok, failing = route("ok"), route("failing")
    stats = FakeStats()
    stats.set(ok, 1.5, 10, clock.now - 1)
    stats.set(failing, None, 0, clock.now - 1)  # tried lately, never succeeded
    assert strategy.order((failing, ok), REQ, stats) == [ok, failing]


def test_least_latency_unusable_last_and_single() -> None:
    strategy, clock = _latency()
    down, a = route("down", up=False), route("a")
    stats = FakeStats()
    stats.set(a, 0.5, 3, clock.now)
    assert strategy.order((down, a), REQ, stats) == [a, down]
    assert strategy.order((a,), REQ, stats) == [a]


def test_least_latency_epsilon_explores_occasionally() -> None:
    strategy, clock = _latency(epsilon=0.1, seed=5)
    a, b, c = route("a"), route("b"), route("c")
    stats = FakeStats()
    stats.set(a, 0.1, 10, clock.now)
    stats.set(b, 0.2, 10, clock.now)
    stats.set(c, 0.3, 10, clock.now)
    firsts = Counter(strategy.order((a, b, c), REQ, stats)[0].model for _ in range(10_000))
    assert firsts["a"] / 10_000 == pytest.approx(0.9, abs=0.02)
    assert firsts["b"] / 10_000 == pytest.approx(0.05, abs=0.015)
    assert firsts["c"] / 10_000 == pytest.approx(0.05, abs=0.015)


def test_least_latency_rejects_bad_epsilon() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        LeastLatencyStrategy(epsilon=1.5)


# --- lowest cost ------------------------------------------------------------------------------


def test_lowest_cost_cheapest_first_unknown_last_in_configured_order() -> None:
    strategy = LowestCostStrategy(TABLE)
    dear, unknown1, mid, cheap = route("dear"), route("nope"), route("mid"), route("cheap")
    unpriced = route("unpriced")
    ordered = strategy.order((dear, unknown1, unpriced, mid, cheap), REQ, NO_STATS)
    assert ordered == [cheap, mid, dear, unknown1, unpriced]


def test_lowest_cost_weighs_output_by_max_tokens() -> None:
    # "in-heavy" is cheaper on output, "out-heavy" on input: the completion budget decides.
    table = ModelTable(
        [
            ModelInfo("openai", "in-heavy", prices=Prices(10.0, 1.0)),
            ModelInfo("openai", "out-heavy", prices=Prices(1.0, 10.0)),
        ]
    )
    strategy = LowestCostStrategy(table)
    a, b = route("in-heavy"), route("out-heavy")
    short = ChatRequest(model="m", messages=[Message(role="user", content="x" * 40_000)])
    long = ChatRequest(model="m", messages=[Message(role="user", content="x")], max_tokens=50_000)
    assert strategy.order((a, b), short, NO_STATS) == [b, a]
    assert strategy.order((a, b), long, NO_STATS) == [a, b]


def test_lowest_cost_unusable_last() -> None:
    strategy = LowestCostStrategy(TABLE)
    cheap_down, dear = route("cheap", up=False), route("dear")
    assert strategy.order((cheap_down, dear), REQ, NO_STATS) == [dear, cheap_down]


# --- auto --------------------------------------------------------------------------------------

TOOL = Tool(name="f", parameters={"type": "object"})
IMAGE = Message(role="user", content=[TextPart("what is this"), ImagePart("https://x/i.png")])


def test_auto_cheapest_route_that_meets_the_needs() -> None:
    auto = AutoStrategy(TABLE)
    routes = (route("dear"), route("mid"), route("textonly"), route("cheap"))
    assert auto.order(routes, REQ, NO_STATS)[0].model == "textonly"
    with_tools = ChatRequest(model="auto", messages=REQ.messages, tools=[TOOL])
    assert [r.model for r in auto.order(routes, with_tools, NO_STATS)] == ["cheap", "mid", "dear"]
    with_image = ChatRequest(model="auto", messages=[IMAGE])
    assert auto.order(routes, with_image, NO_STATS)[0].model == "cheap"
    json_req = ChatRequest(
        model="auto", messages=REQ.messages, response_format=ResponseFormat(type="json_object")
    )
    assert "textonly" not in [r.model for r in auto.order(routes, json_req, NO_STATS)]
    text_fmt = ChatRequest(
        model="auto", messages=REQ.messages, response_format=ResponseFormat(type="text")
    )
    assert auto.order(routes, text_fmt, NO_STATS)[0].model == "textonly"


def test_auto_context_window_and_output_cap() -> None:
    auto = AutoStrategy(TABLE)
    routes = (route("cheap"), route("mid"), route("dear"))
    big = ChatRequest(model="auto", messages=[Message(role="user", content="x" * 400_000)])
    assert [r.model for r in auto.order(routes, big, NO_STATS)] == ["mid", "dear"]
    huge = ChatRequest(model="auto", messages=[Message(role="user", content="x" * 2_000_000)])
    assert [r.model for r in auto.order(routes, huge, NO_STATS)] == ["dear"]
    long_out = ChatRequest(model="auto", messages=REQ.messages, max_tokens=20_000)
    assert [r.model for r in auto.order(routes, long_out, NO_STATS)] == ["dear"]
    gaps = auto.unmet_needs(routes[0], long_out)
    assert gaps[0].startswith("context window 16000 < ~201")
    assert gaps[1:] == ["max output 4000 < max_tokens 20000"]
    assert auto.unmet_needs(routes[1], long_out) == ["max output 16000 < max_tokens 20000"]


def test_auto_unknown_routes_only_when_no_known_route_qualifies() -> None:
    auto = AutoStrategy(TABLE)
    unknown, vague, cheap = route("not-in-table"), route("vague"), route("cheap")
    routes = (unknown, vague, cheap)
    assert auto.order(routes, REQ, NO_STATS) == [cheap]
    with_tools = ChatRequest(model="auto", messages=REQ.messages, tools=[TOOL])
    textonly = route("textonly")
    # No known route has tools: the unknown ones are kept, in configured order.
    assert auto.order((unknown, textonly, vague), with_tools, NO_STATS) == [unknown, vague]


def test_auto_nothing_qualifies_and_reasons() -> None:
    auto = AutoStrategy(TABLE)
    textonly = route("textonly")
    request = ChatRequest(model="auto", messages=[IMAGE], tools=[TOOL])
    assert auto.order((textonly,), request, NO_STATS) == []
    assert auto.unmet_needs(textonly, request) == ["tools", "images"]
    assert auto.unmet_needs(route("not-in-table"), request) == []
    big = ChatRequest(model="auto", messages=[Message(role="user", content="x" * 100_000)])
    assert auto.unmet_needs(route("cheap"), big)[0].startswith("context window 16000 < ~")


def test_auto_unusable_routes_last() -> None:
    auto = AutoStrategy(TABLE)
    cheap_down, mid = route("cheap", up=False), route("mid")
    assert auto.order((cheap_down, mid), REQ, NO_STATS) == [mid, cheap_down]
    unknown_down, unknown_up = route("x", up=False), route("y")
    assert auto.order((unknown_down, unknown_up), REQ, NO_STATS) == [unknown_up, unknown_down]


_CAPS = st.sampled_from([True, False, None])


@st.composite
def _table_and_routes(draw: st.DrawFn) -> tuple[ModelTable, list[Route]]:
    n = draw(st.integers(1, 6))
    infos: list[ModelInfo] = []
    routes: list[Route] = []
    for i in range(n):
        if draw(st.booleans()):
            infos.append(
                ModelInfo(
                    "openai",
                    f"m{i}",
                    context_window=draw(st.one_of(st.none(), st.integers(1, 400_000))),
                    max_output_tokens=draw(st.one_of(st.none(), st.integers(1, 100_000))),
                    prices=Prices(
                        draw(st.one_of(st.none(), st.floats(0, 50))),
                        draw(st.one_of(st.none(), st.floats(0, 50))),
                    ),
                    capabilities=Capabilities(
                        tools=draw(_CAPS), vision=draw(_CAPS), json_mode=draw(_CAPS)
                    ),
                )
            )
        routes.append(route(f"m{i}", up=draw(st.booleans())))
    return ModelTable(infos), routes


@st.composite
def _requests(draw: st.DrawFn) -> ChatRequest:
    content: Any = "x" * draw(st.integers(0, 800_000))
    if draw(st.booleans()):
        content = [TextPart(content), ImagePart("https://x/i.png")]
    formats: list[Literal["text", "json_object", "json_schema"] | None] = [
        None,
        "text",
        "json_object",
        "json_schema",
    ]
    fmt = draw(st.sampled_from(formats))
    return ChatRequest(
        model="auto",
        messages=[Message(role="user", content=content)],
        tools=[TOOL] if draw(st.booleans()) else None,
        response_format=None if fmt is None else ResponseFormat(type=fmt),
        max_tokens=draw(st.one_of(st.none(), st.integers(1, 50_000))),
    )


@settings(max_examples=200, deadline=None)
@given(data=_table_and_routes(), request=_requests())
def test_auto_never_returns_a_route_known_to_lack_a_need(
    data: tuple[ModelTable, list[Route]], request: ChatRequest
) -> None:
    table, routes = data
    auto = AutoStrategy(table)
    ordered = auto.order(routes, request, NO_STATS)
    assert len(set(map(id, ordered))) == len(ordered)
    assert all(r in routes for r in ordered)
    qualified_known = False
    for r in ordered:
        info = table.get(r.provider_type, r.model)
        assert auto.unmet_needs(r, request) == []
        if info is None:
            continue
        caps = info.capabilities
        assert not (request.needs_tools() and caps.tools is False)
        assert not (request.needs_images() and caps.vision is False)
        wants_json = request.response_format is not None and request.response_format.type != "text"
        assert not (wants_json and caps.json_mode is False)
        known = (
            (not request.needs_tools() or caps.tools)
            and (not request.needs_images() or caps.vision)
            and (not wants_json or caps.json_mode)
            and info.context_window is not None
        )
        qualified_known = qualified_known or bool(known)
    # Known and unknown routes are never mixed: unknown ones only when none is known.
    if qualified_known:
        assert all(table.get(r.provider_type, r.model) is not None for r in ordered)
    # Usable routes come before unusable ones.
    ups = [r.provider is not None for r in ordered]
    assert ups == sorted(ups, reverse=True)


@settings(max_examples=100, deadline=None)
@given(data=_table_and_routes(), request=_requests(), seed=st.integers(0, 100))
def test_every_strategy_returns_a_permutation_with_usable_first(
    data: tuple[ModelTable, list[Route]], request: ChatRequest, seed: int
) -> None:
    table, routes = data
    stats = FakeStats()
    for name in ("weighted", "least_latency", "lowest_cost"):
        ordered = make_strategy(name, table, random.Random(seed)).order(routes, request, stats)
        assert sorted(map(id, ordered)) == sorted(map(id, routes)), name
        if len(routes) > 1:
            ups = [r.provider is not None for r in ordered]
            assert ups == sorted(ups, reverse=True), name


@settings(max_examples=100, deadline=None)
@given(data=_table_and_routes(), request=_requests())
def test_lowest_cost_is_sorted_by_estimated_cost(
    data: tuple[ModelTable, list[Route]], request: ChatRequest
) -> None:
    from llm_gateway.routing.estimate import estimate_completion_tokens, estimate_prompt_tokens

    table, routes = data
    ordered = LowestCostStrategy(table).order(routes, request, NO_STATS)
    prompt, completion = estimate_prompt_tokens(request), estimate_completion_tokens(request)

    def cost(r: Route) -> float:
        info = table.get(r.provider_type, r.model)
        value = None if info is None else info.estimate_cost(prompt, completion)
        return float("inf") if value is None else value

    usable = [r for r in ordered if r.provider is not None]
    costs = [cost(r) for r in usable]
    assert costs == sorted(costs)
    # Unknown prices keep the configured order.
    unknown = [r for r in usable if cost(r) == float("inf")]
    assert unknown == [r for r in routes if r in unknown]


# --- larger context ------------------------------------------------------------------------


def test_larger_context_routes() -> None:
    cheap, mid, dear, unknown = route("cheap"), route("mid"), route("dear"), route("x")
    textonly = route("textonly")  # 128k, same as mid: not larger
    routes = [cheap, unknown, dear, textonly, mid]
    assert larger_context_routes(routes, after=mid, table=TABLE) == [dear, unknown]
    assert larger_context_routes(routes, after=cheap, table=TABLE) == [dear, textonly, mid, unknown]
    assert larger_context_routes(routes, after=dear, table=TABLE) == [unknown]
    # After a route of unknown window, every known window counts as larger.
    assert larger_context_routes(routes, after=unknown, table=TABLE) == [cheap, dear, textonly, mid]
    down = route("dear", up=False)
    assert larger_context_routes([down, cheap], after=mid, table=TABLE) == []
