"""Route-ordering strategies: which route of a model to try first, and the fallback order.

A strategy returns every candidate route in the order the router should try them; the
router falls back along that sequence. Strategies are built once per config load
(``make_strategy``) and hold no per-request state, so one instance serves all requests.

Common rules:

* ``order`` returns a new list the caller owns (it may splice it during fallback);
  ``ordered`` just copies the configured sequence.
* The other strategies move routes whose provider is not usable (``Route.provider is
  None``) to the end, keeping them so the caller's error can still say why each failed.
* Ties keep the configured order (every sort here is stable).

``least_latency`` — routes are ranked by the EWMA of their time to first token, lowest
first, with exploration so a route that was slow, or down, gets traffic again:

1. *Probes* come first, in configured order: routes never used (``last_used`` None),
   then routes not used for ``explore_after`` seconds. A stale route thus gets about one
   request every ``explore_after`` seconds, which is what refreshes its EWMA after it
   recovers (if the stats stamp ``last_used`` only when a call ends, concurrent requests
   arriving before then may all probe it).
2. Otherwise, with probability ``epsilon`` a random non-best measured route is moved to
   the front, so the ranking keeps being checked under steady traffic.
3. The rest follow by EWMA ascending; routes used lately but without a usable measurement
   (fewer than ``min_samples`` successful samples, e.g. a route that keeps failing) come
   after the measured ones, so a failing route is not retried first on every request.

``lowest_cost`` — estimated cost = estimated prompt tokens x input price + completion
budget (``max_tokens`` or a default) x output price, from the model table (long-context
tier applied). Routes without a known price follow the priced ones, in configured order.

``auto`` (``model: auto``) — keeps the routes known to meet the request's needs: tools if
the request has tools, vision if it has images, JSON mode if ``response_format`` asks for
JSON, a context window of at least the prompt estimate plus the completion budget, and an
output cap of at least ``max_tokens`` when the caller sets it. A route is *known* to qualify
only when the table has its row and every needed fact is known and sufficient; it is
*excluded* when any needed fact is known to fall short. Routes with an unknown needed fact
are kept only when no route is known to qualify (then in configured order) — an unknown
route may work, but a known one is preferred. Known routes are ordered cheapest first as in
``lowest_cost``; unknown ones keep the configured order. No route at all is returned when
every route is known to fall short; ``unmet_needs`` says why, for the error message.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from llm_gateway.core.types import ChatRequest
from llm_gateway.routing.estimate import (
    DEFAULT_COMPLETION_TOKENS,
    estimate_completion_tokens,
    estimate_prompt_tokens,
)
from llm_gateway.routing.model_table import ModelInfo, ModelTable
from llm_gateway.routing.route import Route

_UNPRICED: Final = 1e300  # after every real cost, before unusable routes
_UNUSABLE: Final = math.inf


class StatsView(Protocol):
    """The read side of per-route statistics that strategies need; keyed by ``Route.label``.

    Times are seconds; ``last_used`` is on the same clock the strategy is given
    (``time.monotonic`` by default).
    """

    def ttft_ewma(self, label: str) -> float | None:
        """Exponentially weighted mean time to first token, or None without samples."""
        ...

    def samples(self, label: str) -> int:
        """How many time-to-first-token samples the EWMA has seen."""
        ...

    def last_used(self, label: str) -> float | None:
        """When a request was last sent to the route, or None if never."""
        ...


class Strategy(Protocol):
    name: str

    def order(self, routes: Sequence[Route], request: ChatRequest, stats: StatsView) -> list[Route]:
        """Every candidate in ``routes``, in the order to try them."""
        ...


class OrderedStrategy:
    """As configured (a copy: the caller may modify the list)."""

    name = "ordered"

    def order(self, routes: Sequence[Route], request: ChatRequest, stats: StatsView) -> list[Route]:
        return list(routes)


class WeightedStrategy:
    """First route drawn at random in proportion to ``Route.weight``; the rest likewise,
    without replacement.

    Each route draws an exponential variate with rate ``weight`` and routes are sorted by
    it: the smallest of independent exponentials is route *i* with probability
    ``weight_i / sum(weights)``, and the order of the rest is the same weighted draw among
    the remaining routes (Efraimidis-Spirakis sampling). One draw per route, one sort.
    """

    name = "weighted"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def order(self, routes: Sequence[Route], request: ChatRequest, stats: StatsView) -> list[Route]:
        if len(routes) < 2:
            return list(routes)
        draw = self._rng.expovariate

        def key(route: Route) -> float:
            if route.provider is None or route.weight <= 0:
                return _UNUSABLE
            return draw(route.weight)

        return sorted(routes, key=key)


class LeastLatencyStrategy:
    """Lowest time-to-first-token EWMA first, with probes and epsilon exploration."""

    name = "least_latency"

    def __init__(
        self,
        rng: random.Random | None = None,
        *,
        epsilon: float = 0.05,
        explore_after: float = 30.0,
        min_samples: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= epsilon <= 1:
            raise ValueError("epsilon must be within [0, 1]")
        self._rng = rng or random.Random()
        self.epsilon = epsilon
        self.explore_after = explore_after
        self.min_samples = min_samples
        self._clock = clock

    def order(self, routes: Sequence[Route], request: ChatRequest, stats: StatsView) -> list[Route]:
        if len(routes) < 2:
            return list(routes)
        now = self._clock()
        stale_before = now - self.explore_after
        min_samples = self.min_samples
        probing = False

        def key(route: Route) -> float:
            nonlocal probing
            if route.provider is None:
                return _UNUSABLE
            label = route.label
            last = stats.last_used(label)
            if last is None:
                probing = True
                return -2.0  # never tried: first
            if last < stale_before:
                probing = True
                return -1.0  # not tried for explore_after: next
            ewma = stats.ttft_ewma(label)
            if ewma is None or stats.samples(label) < min_samples:
                return _UNPRICED  # tried lately without a usable measurement
            return ewma

        ranked = sorted(routes, key=key)
        if not probing and self.epsilon and self._rng.random() < self.epsilon:
            usable = sum(1 for r in ranked if r.provider is not None)
            if usable > 1:
                pick = self._rng.randrange(1, usable)
                ranked.insert(0, ranked.pop(pick))
        return ranked


class LowestCostStrategy:
    """Cheapest estimated cost first; unknown prices after, in configured order."""

    name = "lowest_cost"

    def __init__(self, table: ModelTable, default_completion: int = DEFAULT_COMPLETION_TOKENS):
        self._table = table
        self._default_completion = default_completion

    def order(self, routes: Sequence[Route], request: ChatRequest, stats: StatsView) -> list[Route]:
        if len(routes) < 2:
            return list(routes)
        prompt = estimate_prompt_tokens(request)
        completion = estimate_completion_tokens(request, self._default_completion)
        get = self._table.get

        def key(route: Route) -> float:
            if route.provider is None:
                return _UNUSABLE
            info = get(route.provider_type, route.model)
            cost = None if info is None else info.estimate_cost(prompt, completion)
            return _UNPRICED if cost is None else cost

        return sorted(routes, key=key)


class AutoStrategy:
    """Routes that meet the request's needs, cheapest first (see the module docs)."""

    name = "auto"

    def __init__(self, table: ModelTable, default_completion: int = DEFAULT_COMPLETION_TOKENS):
        self._table = table
        self._default_completion = default_completion

    def order(self, routes: Sequence[Route], request: ChatRequest, stats: StatsView) -> list[Route]:
        prompt = estimate_prompt_tokens(request)
        completion = estimate_completion_tokens(request, self._default_completion)
        needs = _Needs(request, prompt + completion)
        get = self._table.get
        known: list[tuple[float, Route]] = []
        unknown: list[Route] = []
        for route in routes:
            info = get(route.provider_type, route.model)
            verdict = needs.verdict(info)
            if verdict is False:
                continue
            if verdict is None or info is None:
                unknown.append(route)
                continue
            cost = info.estimate_cost(prompt, completion)
            rank = _UNPRICED if cost is None else cost
            known.append((_UNUSABLE if route.provider is None else rank, route))
        if not known:
            unknown.sort(key=_unusable_last)
            return unknown
        known.sort(key=_first)
        return [route for _, route in known]

    def unmet_needs(self, route: Route, request: ChatRequest) -> list[str]:
        """What ``route`` is known to lack for ``request`` (empty: nothing known to lack)."""
        prompt = estimate_prompt_tokens(request)
        completion = estimate_completion_tokens(request, self._default_completion)
        info = self._table.get(route.provider_type, route.model)
        return _Needs(request, prompt + completion).gaps(info)


def _first(item: tuple[float, Route]) -> float:
    return item[0]


def _unusable_last(route: Route) -> bool:
    return route.provider is None


class _Needs:
    """What a request needs from a route, checked against a table row."""

    __slots__ = ("json", "max_tokens", "tokens", "tools", "vision")

    def __init__(self, request: ChatRequest, tokens: int) -> None:
        fmt = request.response_format
        self.tools = request.needs_tools()
        self.vision = request.needs_images()
        self.json = fmt is not None and fmt.type != "text"
        self.tokens = tokens
        self.max_tokens = request.max_tokens

    def verdict(self, info: ModelInfo | None) -> bool | None:
        """True: known to qualify; False: known to fall short; None: cannot tell."""
        if info is None:
            return None
        caps = info.capabilities
        unknown = False
        if self.tools:
            if caps.tools is False:
                return False
            unknown = caps.tools is None
        if self.vision:
            if caps.vision is False:
                return False
            unknown = unknown or caps.vision is None
        if self.json:
            if caps.json_mode is False:
                return False
            unknown = unknown or caps.json_mode is None
        window = info.context_window
        if window is None:
            unknown = True
        elif window < self.tokens:
            return False
        cap, asked = info.max_output_tokens, self.max_tokens
        if asked is not None and cap is not None and cap < asked:
            return False
        return None if unknown else True

    def gaps(self, info: ModelInfo | None) -> list[str]:
        if info is None:
            return []
        caps = info.capabilities
        found: list[str] = []
        if self.tools and caps.tools is False:
            found.append("tools")
        if self.vision and caps.vision is False:
            found.append("images")
        if self.json and caps.json_mode is False:
            found.append("JSON mode")
        window = info.context_window
        if window is not None and window < self.tokens:
            found.append(f"context window {window} < ~{self.tokens} tokens")
        cap = info.max_output_tokens
        if self.max_tokens is not None and cap is not None and cap < self.max_tokens:
            found.append(f"max output {cap} < max_tokens {self.max_tokens}")
        return found


STRATEGY_NAMES: Final = ("ordered", "weighted", "least_latency", "lowest_cost", "auto")


def make_strategy(name: str, table: ModelTable, rng: random.Random | None = None) -> Strategy:
    """The strategy called ``name`` (one of ``STRATEGY_NAMES``)."""
    if name == "ordered":
        return OrderedStrategy()
    if name == "weighted":
        return WeightedStrategy(rng)
    if name == "least_latency":
        return LeastLatencyStrategy(rng)
    if name == "lowest_cost":
        return LowestCostStrategy(table)
    if name == "auto":
        return AutoStrategy(table)
    raise ValueError(f"unknown routing strategy {name!r}; valid: {', '.join(STRATEGY_NAMES)}")


def larger_context_routes(routes: Sequence[Route], after: Route, table: ModelTable) -> list[Route]:
    """Routes to fall back to after ``after`` overflowed its context window.

    Routes whose known window is larger than ``after``'s, in the given order, then routes
    whose window is unknown. When ``after``'s own window is unknown, every other route with
    a known window counts as larger. ``after`` itself and unusable routes are left out.
    """
    own_info = table.get(after.provider_type, after.model)
    own = None if own_info is None else own_info.context_window
    larger: list[Route] = []
    unknown: list[Route] = []
    for route in routes:
        if route is after or route == after or route.provider is None:
            continue
        info = table.get(route.provider_type, route.model)
        window = None if info is None else info.context_window
        if window is None:
            unknown.append(route)
        elif own is None or window > own:
            larger.append(route)
    larger.extend(unknown)
    return larger
