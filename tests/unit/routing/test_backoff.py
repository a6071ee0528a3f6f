"""Full-jitter backoff, Retry-After, and the retry decision."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_gateway.config.schema import RetryConfig
from llm_gateway.core.errors import (
    ContextWindowExceededError,
    GatewayError,
    InvalidRequestError,
    ProviderOverloadedError,
    RateLimitError,
    UpstreamAuthenticationError,
    UpstreamError,
    UpstreamTimeoutError,
)
from llm_gateway.routing.backoff import RETRY_AFTER_JITTER, retry_delay, should_retry

CONFIG = RetryConfig(attempts=5, base_delay=0.2, max_delay=5.0)


@given(
    attempt=st.integers(0, 2000),
    base=st.floats(0.0, 10.0),
    cap=st.floats(0.0, 60.0),
    seed=st.integers(0, 2**32),
)
def test_delay_is_within_zero_and_the_cap(attempt: int, base: float, cap: float, seed: int) -> None:
    config = RetryConfig(attempts=3, base_delay=base, max_delay=cap)
    delay = retry_delay(attempt, config, None, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt, 60))


def test_first_retry_is_bounded_by_the_base_delay() -> None:
    rng = random.Random(1)
    delays = [retry_delay(0, CONFIG, None, rng) for _ in range(2000)]
    assert max(delays) <= 0.2
    assert statistics.fmean(delays) == pytest.approx(0.1, rel=0.1)  # full jitter: mean cap/2


def test_mean_grows_with_the_attempt_until_the_cap() -> None:
    rng = random.Random(42)
    means = [
        statistics.fmean(retry_delay(attempt, CONFIG, None, rng) for _ in range(4000))
        for attempt in range(8)
    ]
    caps = [min(5.0, 0.2 * 2**a) for a in range(8)]  # 0.2 0.4 0.8 1.6 3.2 5 5 5
    for mean, cap in zip(means, caps, strict=True):
        assert mean == pytest.approx(cap / 2, rel=0.08)
    assert means[0] < means[1] < means[2] < means[3] < means[4] < means[5]
    assert means[5] == pytest.approx(means[7], rel=0.08)  # flat once capped


def test_same_seed_same_delays() -> None:
    a = [retry_delay(i, CONFIG, None, random.Random(7)) for i in range(5)]
    b = [retry_delay(i, CONFIG, None, random.Random(7)) for i in range(5)]
    assert a == b


@given(retry_after=st.floats(0.0, 5.0), seed=st.integers(0, 2**32))
def test_retry_after_is_honoured_with_a_small_jitter_never_above_the_cap(
    retry_after: float, seed: int
) -> None:
    delay = retry_delay(3, CONFIG, retry_after, random.Random(seed))
    assert retry_after <= delay <= retry_after * (1 + RETRY_AFTER_JITTER)
    assert delay <= CONFIG.max_delay


def test_retry_after_spreads_clients_out() -> None:
    rng = random.Random(3)
    delays = {retry_delay(0, CONFIG, 1.0, rng) for _ in range(100)}
    assert len(delays) > 90 and min(delays) >= 1.0 and max(delays) <= 1.1


def test_retry_after_of_zero_or_negative_means_now() -> None:
    rng = random.Random(0)
    assert retry_delay(0, CONFIG, 0.0, rng) == 0.0
    assert retry_delay(0, CONFIG, -3.0, rng) == 0.0


def test_retry_after_over_the_cap_is_returned_and_then_refused() -> None:
    delay = retry_delay(0, CONFIG, 60.0, random.Random(0))
    assert 60.0 <= delay <= 66.0
    assert not should_retry(RateLimitError("slow down"), 0, CONFIG, 300.0, delay)


def test_retry_after_equal_to_the_cap_is_still_retried() -> None:
    delay = retry_delay(0, CONFIG, 5.0, random.Random(0))
    assert delay == 5.0
    assert should_retry(RateLimitError("slow down"), 0, CONFIG, 300.0, delay)


@pytest.mark.parametrize(
    "error",
    [
        RateLimitError("429"),
        UpstreamError("500"),
        ProviderOverloadedError("529"),
        UpstreamTimeoutError("timeout"),
    ],
)
def test_retryable_errors_are_retried(error: GatewayError) -> None:
    assert should_retry(error, 0, CONFIG, 30.0, 0.5)


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequestError("bad"),
        ContextWindowExceededError("too long"),
        UpstreamAuthenticationError("bad key"),
        GatewayError("generic"),
    ],
)
def test_the_callers_own_errors_are_never_retried(error: GatewayError) -> None:
    assert not should_retry(error, 0, CONFIG, 30.0, 0.0)


def test_attempts_count_the_first_try() -> None:
    config = RetryConfig(attempts=3, base_delay=0.1, max_delay=1.0)
    error = UpstreamError("500")
    assert should_retry(error, 0, config, 30.0, 0.1)  # after try 1 -> try 2
    assert should_retry(error, 1, config, 30.0, 0.1)  # after try 2 -> try 3
    assert not should_retry(error, 2, config, 30.0, 0.1)  # three tries done
    assert not should_retry(error, 0, RetryConfig(attempts=1), 30.0, 0.0)  # no retries


def test_no_retry_when_the_sleep_reaches_the_deadline() -> None:
    error = UpstreamError("500")
    assert should_retry(error, 0, CONFIG, 2.0, 1.999)
    assert not should_retry(error, 0, CONFIG, 2.0, 2.0)
    assert not should_retry(error, 0, CONFIG, 0.0, 0.0)
    assert not should_retry(error, 0, CONFIG, -1.0, 0.0)


def test_no_retry_when_the_delay_exceeds_max_delay() -> None:
    error = RateLimitError("429", retry_after=6.0)
    assert not should_retry(error, 0, CONFIG, 300.0, 6.0)
    assert should_retry(error, 0, CONFIG, 300.0, 5.0)
