"""Per-route latency statistics: EWMA math, counters, and the ring-buffer p95."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_gateway.routing.stats import RouteStats, StatsBook


def nearest_rank_p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def test_ewma_seeds_with_the_first_sample_then_smooths() -> None:
    book = StatsBook(alpha=0.5)
    book.record("a", ttft=1.0, latency=10.0, ok=True, now=1.0)
    assert book.ttft_ewma("a") == 1.0
    assert book.latency_ewma("a") == 10.0
    book.record("a", ttft=3.0, latency=20.0, ok=True, now=2.0)
    assert book.ttft_ewma("a") == pytest.approx(2.0)
    assert book.latency_ewma("a") == pytest.approx(15.0)
    book.record("a", ttft=0.0, latency=15.0, ok=True, now=3.0)
    assert book.ttft_ewma("a") == pytest.approx(1.0)
    assert book.latency_ewma("a") == pytest.approx(15.0)


@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=50), st.floats(0.01, 1.0))
def test_ewma_matches_the_reference_recurrence(samples: list[float], alpha: float) -> None:
    stats = RouteStats(alpha=alpha)
    expected = samples[0]
    for i, x in enumerate(samples):
        stats.record(ttft=x, latency=x, ok=True, now=float(i))
        if i:
            expected = alpha * x + (1 - alpha) * expected
    assert stats.ttft_ewma == pytest.approx(expected, abs=1e-9)
    assert stats.latency_ewma == pytest.approx(expected, abs=1e-9)
    assert min(samples) - 1e-9 <= (stats.ttft_ewma or 0.0) <= max(samples) + 1e-9


def test_default_alpha_is_point_two() -> None:
    book = StatsBook()
    book.record("a", ttft=1.0, latency=1.0, ok=True, now=0.0)
    book.record("a", ttft=2.0, latency=1.0, ok=True, now=0.0)
    assert book.ttft_ewma("a") == pytest.approx(1.2)


def test_failures_count_but_do_not_feed_latency() -> None:
    book = StatsBook()
    book.record("a", ttft=None, latency=0.001, ok=False, now=5.0)
    stats = book.get("a")
    assert stats is not None
    assert stats.failures == 1 and stats.successes == 0
    assert book.samples("a") == 0 and book.ttft_ewma("a") is None and book.ttft_p95("a") is None
    assert book.last_used("a") == 5.0
    book.record("a", ttft=0.5, latency=2.0, ok=True, now=6.0)
    book.record("a", ttft=0.3, latency=2.0, ok=False, now=7.0)
    assert stats.successes == 1 and stats.failures == 2 and book.samples("a") == 1
    assert book.ttft_ewma("a") == 0.5 and book.last_used("a") == 7.0


def test_success_without_ttft_updates_latency_only() -> None:
    book = StatsBook()
    book.record("a", ttft=None, latency=2.0, ok=True, now=0.0)
    assert book.samples("a") == 1 and book.latency_ewma("a") == 2.0
    assert book.ttft_ewma("a") is None and book.ttft_p95("a") is None


def test_unknown_routes_answer_empty_without_being_created() -> None:
    book = StatsBook()
    assert book.ttft_ewma("x") is None
    assert book.latency_ewma("x") is None
    assert book.samples("x") == 0
    assert book.last_used("x") is None
    assert book.ttft_p95("x") is None
    assert book.get("x") is None
    assert "x" not in book and len(book) == 0


def test_routes_are_kept_apart_and_created_on_first_use() -> None:
    book = StatsBook()
    book.record("a", ttft=1.0, latency=1.0, ok=True, now=0.0)
    book.record("b", ttft=9.0, latency=9.0, ok=True, now=0.0)
    assert book.ttft_ewma("a") == 1.0 and book.ttft_ewma("b") == 9.0
    assert sorted(book.labels()) == ["a", "b"] and "a" in book and len(book) == 2


def test_now_defaults_to_the_injected_clock() -> None:
    book = StatsBook(clock=lambda: 42.0)
    book.record("a", ttft=None, latency=1.0, ok=True)
    assert book.last_used("a") == 42.0


@given(st.lists(st.floats(0.0, 60.0, allow_nan=False), min_size=1, max_size=400))
def test_p95_matches_a_sorted_reference_over_the_last_window(values: list[float]) -> None:
    stats = RouteStats(window=128)
    for i, v in enumerate(values):
        stats.record(ttft=v, latency=v, ok=True, now=float(i))
    last = values[-128:]
    assert stats.ttft_samples() == last
    assert stats.ttft_p95() == nearest_rank_p95(last)


def test_p95_is_cached_until_the_next_sample() -> None:
    stats = RouteStats(window=4)
    for v in (1.0, 2.0, 3.0, 4.0):
        stats.record(ttft=v, latency=v, ok=True, now=0.0)
    assert stats.ttft_p95() == 4.0
    stats._ring[0] = 100.0  # tamper: a cached answer does not re-read the ring
    assert stats.ttft_p95() == 4.0
    stats.record(ttft=0.5, latency=0.5, ok=True, now=0.0)  # evicts 100.0 (the oldest)
    assert stats.ttft_samples() == [2.0, 3.0, 4.0, 0.5]
    assert stats.ttft_p95() == 4.0
    stats.record(ttft=9.0, latency=9.0, ok=True, now=0.0)
    assert stats.ttft_p95() == 9.0


def test_p95_of_a_known_distribution() -> None:
    rng = random.Random(5)
    values = list(range(1, 101))
    rng.shuffle(values)
    stats = RouteStats(window=100)
    for v in values:
        stats.record(ttft=float(v), latency=0.0, ok=True, now=0.0)
    assert stats.ttft_p95() == 95.0


@pytest.mark.parametrize(("alpha", "window"), [(0.0, 8), (1.5, 8), (0.2, 0)])
def test_bad_parameters_are_refused(alpha: float, window: int) -> None:
    with pytest.raises(ValueError):
        RouteStats(alpha=alpha, window=window)
    with pytest.raises(ValueError):
        StatsBook(alpha=alpha, window=window)
