"""The in-process sliding-window limiter, on a hand-driven clock."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.limits.conftest import FakeClock

from llm_gateway.limits.base import LimitRule, RateLimitExceeded, Reservation
from llm_gateway.limits.memory import MemoryRateLimiter


async def test_sliding_window_counts_any_sixty_seconds(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    rule = (LimitRule("key:a", rpm=3),)
    await limiter.reserve(rule, 0)  # t=0
    clock.advance(30)
    await limiter.reserve(rule, 0)  # t=30
    await limiter.reserve(rule, 0)  # t=30
    clock.advance(29.5)  # t=59.5: a fixed-minute counter would have reset at 60
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve(rule, 0)
    assert refused.value.dimension == "requests"
    assert refused.value.subject == "key:a"
    assert refused.value.retry_after == pytest.approx(0.5)
    assert refused.value.state.limit == 3
    assert refused.value.state.remaining == 0
    clock.advance(0.5)  # t=60: the first entry has left
    admitted = await limiter.reserve(rule, 0)
    assert admitted.requests is not None
    assert admitted.requests.remaining == 0
    # The next slot frees when the t=30 entries leave, 30 s from now.
    assert admitted.requests.reset_seconds == pytest.approx(30)
    with pytest.raises(RateLimitExceeded) as again:
        await limiter.reserve(rule, 0)
    assert again.value.retry_after == pytest.approx(30)


async def test_tokens_reserved_then_settled_to_actual(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    rule = (LimitRule("key:t", tpm=1000),)
    first = await limiter.reserve(rule, 600)
    assert first.tokens_state is not None
    assert (first.tokens_state.limit, first.tokens_state.remaining) == (1000, 400)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve(rule, 500)
    assert refused.value.dimension == "tokens"
    assert refused.value.state.remaining == 400
    assert refused.value.retry_after == pytest.approx(60)
    await limiter.settle(first, 100)  # the call used far less than estimated
    second = await limiter.reserve(rule, 500)
    assert second.tokens_state is not None
    assert second.tokens_state.remaining == 400
    clock.advance(10)
    await limiter.settle(second, 850)  # and this one more: counted as it really was
    with pytest.raises(RateLimitExceeded) as over:
        await limiter.reserve(rule, 100)
    # 950 in the window; 100 more fit once the first (100 tokens) leaves at t=60.
    assert over.value.retry_after == pytest.approx(50)
    assert over.value.state.remaining == 50


async def test_estimate_larger_than_limit_fits_only_an_empty_window(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    rule = (LimitRule("key:big", tpm=100),)
    big = await limiter.reserve(rule, 5000)
    assert big.tokens_state is not None
    assert big.tokens_state.remaining == -4900
    with pytest.raises(RateLimitExceeded):
        await limiter.reserve(rule, 1)
    clock.advance(60)
    await limiter.reserve(rule, 5000)


async def test_all_or_nothing_across_rules(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    key = LimitRule("key:k", rpm=10, tpm=1000)
    route = LimitRule("route:openai/gpt", rpm=2)
    both = (key, route)
    await limiter.reserve(both, 10)
    await limiter.reserve(both, 10)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve(both, 10)
    assert refused.value.subject == "route:openai/gpt"
    # The refusal reserved nothing under the key: 8 requests and 980 tokens remain.
    alone = await limiter.reserve((key,), 10)
    assert alone.requests is not None and alone.tokens_state is not None
    assert alone.requests.remaining == 7
    assert alone.tokens_state.remaining == 970


async def test_headers_name_the_tightest_rule(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    rules = (LimitRule("key:h", rpm=100, tpm=50_000), LimitRule("route:r", rpm=5, tpm=90_000))
    reservation = await limiter.reserve(rules, 1000)
    assert reservation.requests is not None and reservation.tokens_state is not None
    assert (reservation.requests.limit, reservation.requests.remaining) == (5, 4)
    assert (reservation.tokens_state.limit, reservation.tokens_state.remaining) == (50_000, 49_000)
    assert reservation.requests.reset_seconds == pytest.approx(60)
    unlimited = await limiter.reserve((LimitRule("key:none"),), 10)
    assert unlimited.requests is None and unlimited.tokens_state is None


async def test_zero_limit_refuses_with_a_full_window(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve((LimitRule("key:z", rpm=0),), 1)
    assert refused.value.retry_after == 60


async def test_memory_is_bounded_by_one_window(clock: FakeClock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    for index in range(500):
        reservation = await limiter.reserve((LimitRule(f"key:{index}", rpm=5),), 1)
        await limiter.settle(reservation, 2)
    assert limiter.subjects() == 500
    clock.advance(61)
    await limiter.reserve((LimitRule("key:new", rpm=5),), 1)
    assert limiter.subjects() == 1
    # A settle that arrives after its entry left is a no-op, not an error.
    await limiter.settle(reservation, 10)


async def test_concurrent_reserves_admit_exactly_the_limit() -> None:
    limiter = MemoryRateLimiter()
    rule = (LimitRule("key:burst", rpm=60),)

    async def one() -> bool:
        await asyncio.sleep(0)
        try:
            await limiter.reserve(rule, 1)
        except RateLimitExceeded:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(200)))
    assert sum(results) == 60


async def test_reserve_and_settle_cost_microseconds() -> None:
    limiter = MemoryRateLimiter()
    rules = (LimitRule("key:bench", rpm=10**9, tpm=10**12),)
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        reservation = await limiter.reserve(rules, 100)
        await limiter.settle(reservation, 80)
    per_call = (time.perf_counter() - started) / rounds * 1e6
    print(f"memory reserve+settle: {per_call:.2f} us")
    assert per_call < 100  # generous: a busy CI machine, not a benchmark


# -- property: the limiter agrees with a brute-force model of the sliding window ---------

WINDOW = 60.0

step = st.tuples(
    st.sampled_from([0.0, 0.5, 1.0, 7.0, 29.5, 30.0, 59.0, 60.0, 61.0]),  # time advance
    st.sampled_from(["reserve", "settle"]),
    st.integers(min_value=0, max_value=400),  # tokens: estimate, or actual on settle
    st.integers(min_value=0, max_value=50),  # which earlier reservation to settle
)


@settings(max_examples=200, deadline=None)
@given(
    rpm=st.one_of(st.none(), st.integers(min_value=0, max_value=6)),
    tpm=st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
    steps=st.lists(step, max_size=60),
)
async def test_matches_brute_force_model(
    rpm: int | None, tpm: int | None, steps: list[tuple[float, str, int, int]]
) -> None:
    clock = FakeClock(0.0)
    limiter = MemoryRateLimiter(clock=clock, window=WINDOW)
    rule = (LimitRule("key:p", rpm=rpm, tpm=tpm),)
    model: list[list[float]] = []  # every admission ever: [time, tokens]
    reservations: list[Reservation] = []
    for advance, action, tokens, pick in steps:
        clock.advance(advance)
        now = clock.now
        if action == "settle":
            if reservations:
                index = pick % len(reservations)
                await limiter.settle(reservations[index], tokens)
                if model[index][0] > now - WINDOW:  # still in the window: adjusted
                    model[index][1] = tokens
            continue
        live = [entry for entry in model if entry[0] > now - WINDOW]
        used = sum(int(entry[1]) for entry in live)
        admit = (rpm is None or len(live) < rpm) and (
            tpm is None or used + tokens <= tpm or (used == 0 and tpm > 0)
        )
        if rpm is None and tpm is None:
            await limiter.reserve(rule, tokens)
            continue
        try:
            reservation = await limiter.reserve(rule, tokens)
        except RateLimitExceeded as exc:
            assert not admit
            assert 0 < exc.retry_after <= WINDOW
            # Waiting retry_after is enough (and needed) for this very request.
            later = [e for e in live if e[0] > now + exc.retry_after - WINDOW]
            later_used = sum(int(e[1]) for e in later)
            limit = rpm if exc.dimension == "requests" else tpm
            assert limit is not None
            if limit == 0:  # nothing ever fits: a whole window
                assert exc.retry_after == WINDOW
            elif exc.dimension == "requests":
                assert len(later) < limit
            else:
                assert later_used + tokens <= limit or later_used == 0
            continue
        assert admit
        model.append([now, float(tokens)])
        reservations.append(reservation)
        if rpm is not None:
            assert reservation.requests is not None
            assert reservation.requests.remaining == rpm - len(live) - 1
        if tpm is not None:
            assert reservation.tokens_state is not None
            assert reservation.tokens_state.remaining == tpm - used - tokens
