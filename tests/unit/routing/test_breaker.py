"""The circuit breaker: deterministic scenarios and a state-machine property test."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from llm_gateway.config.schema import BreakerConfig
from llm_gateway.routing.breaker import BreakerState, CircuitBreaker

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    clock: FakeClock, **config: object
) -> tuple[CircuitBreaker, list[tuple[BreakerState, BreakerState]]]:
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        BreakerConfig.model_validate({"cooldown_seconds": 10.0, **config}),
        clock=clock,
        on_change=lambda old, new: changes.append((old, new)),
    )
    return breaker, changes


def test_closed_allows_and_successes_reset_the_consecutive_count() -> None:
    clock = FakeClock()
    b, changes = make(clock, failures=3)
    for _ in range(10):
        assert b.allow()
        b.record_failure()
        b.record_failure()
        b.record_success()
    assert b.state is CLOSED and b.retry_in() == 0.0 and changes == []


def test_opens_after_consecutive_failures_and_refuses_until_cooldown() -> None:
    clock = FakeClock()
    b, changes = make(clock, failures=3)
    for _ in range(3):
        b.record_failure()
    assert b.state is OPEN and changes == [(CLOSED, OPEN)]
    assert b.retry_in() == pytest.approx(10.0)
    assert not b.allow()
    clock.advance(9.999)
    assert not b.allow()
    assert b.retry_in() == pytest.approx(0.001)
    assert b.state is OPEN and changes == [(CLOSED, OPEN)]


def test_half_open_admits_exactly_one_probe_and_its_success_closes() -> None:
    clock = FakeClock()
    b, changes = make(clock, failures=1)
    b.record_failure()
    clock.advance(10.0)
    assert b.retry_in() == 0.0
    assert b.allow()  # the probe
    assert b.state is HALF
    assert not b.allow() and not b.allow()  # concurrent callers wait for the probe
    assert b.retry_in() == pytest.approx(10.0)
    b.record_success()
    assert b.state is CLOSED and b.allow()
    assert changes == [(CLOSED, OPEN), (OPEN, HALF), (HALF, CLOSED)]
    # Counters were reset: one failure (failures=1) opens again, it was not carried over.
    b.record_failure()
    assert b.state is OPEN


def test_a_failed_probe_reopens_for_another_cooldown() -> None:
    clock = FakeClock()
    b, changes = make(clock, failures=2)
    b.record_failure()
    b.record_failure()
    clock.advance(10.0)
    assert b.allow()
    clock.advance(2.0)
    b.record_failure()
    assert b.state is OPEN
    assert b.retry_in() == pytest.approx(10.0)  # counted from the probe's failure
    clock.advance(9.0)
    assert not b.allow()
    clock.advance(1.0)
    assert b.allow()
    assert changes == [(CLOSED, OPEN), (OPEN, HALF), (HALF, OPEN), (OPEN, HALF)]


def test_an_abandoned_probe_does_not_wedge_the_breaker() -> None:
    clock = FakeClock()
    b, changes = make(clock, failures=1)
    b.record_failure()
    clock.advance(10.0)
    assert b.allow()  # the probe's caller is cancelled and never reports
    clock.advance(9.0)
    assert not b.allow()
    clock.advance(1.0)
    assert b.allow()  # a fresh probe, still half-open: no transition to report
    assert not b.allow()
    assert b.state is HALF
    b.record_success()
    assert changes == [(CLOSED, OPEN), (OPEN, HALF), (HALF, CLOSED)]


def test_late_outcomes_while_open_are_ignored() -> None:
    clock = FakeClock()
    b, changes = make(clock, failures=1)
    b.record_failure()
    clock.advance(5.0)
    b.record_failure()  # an in-flight call from before: must not extend the cooldown
    b.record_success()  # nor close the breaker without a probe
    assert b.state is OPEN and b.retry_in() == pytest.approx(5.0)
    assert changes == [(CLOSED, OPEN)]


def test_failure_ratio_opens_on_a_full_window_at_or_above_the_ratio() -> None:
    clock = FakeClock()
    b, _ = make(clock, failures=100, failure_ratio=0.5, window=4)
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.state is CLOSED  # only 3 calls seen: the window is not full yet
    b.record_success()
    assert b.state is CLOSED  # a success never opens the breaker (it is judged on failures)
    b.record_failure()
    assert b.state is OPEN  # last 4: ok, failed, ok, failed: 0.5 >= 0.5


def test_failure_ratio_only_counts_the_last_window() -> None:
    clock = FakeClock()
    b, _ = make(clock, failures=100, failure_ratio=0.6, window=5)
    for ok in [False, False, True, True, True, True, False, True, False]:
        (b.record_success if ok else b.record_failure)()
        assert b.state is CLOSED  # never 3 failures among any last 5
    b.record_failure()  # last 5: T, F, T, F, F
    assert b.state is OPEN


def test_ratio_threshold_is_exact_for_awkward_floats() -> None:
    # 0.3 * 10 is 3.0000000000000004 in binary floats; three failures must still trip it.
    clock = FakeClock()
    b, _ = make(clock, failures=100, failure_ratio=0.3, window=10)
    for _ in range(7):
        b.record_success()
    for _ in range(3):
        b.record_failure()
    assert b.state is OPEN


def test_disabled_breaker_always_allows() -> None:
    clock = FakeClock()
    b, changes = make(clock, enabled=False, failures=1, failure_ratio=0.1, window=2)
    assert b.disabled
    for _ in range(50):
        b.record_failure()
        assert b.allow()
    assert b.state is CLOSED and b.retry_in() == 0.0 and changes == []


def test_reset_closes_and_forgets() -> None:
    clock = FakeClock()
    b, changes = make(clock, failures=2)
    b.record_failure()
    b.record_failure()
    b.reset()
    assert b.state is CLOSED and b.allow()
    b.record_failure()
    assert b.state is CLOSED
    assert changes == [(CLOSED, OPEN), (OPEN, CLOSED)]


def test_works_without_on_change_and_with_the_real_clock() -> None:
    b = CircuitBreaker(BreakerConfig(failures=1, cooldown_seconds=60.0))
    b.record_failure()
    assert b.state is OPEN and not b.allow() and 59.0 < b.retry_in() <= 60.0
    assert "open" in repr(b)


# --- a state-machine property test --------------------------------------------------------

COOLDOWN = 10.0


class BreakerMachine(RuleBasedStateMachine):
    """Random allow/success/failure/clock sequences against a small reference model.

    Invariants: no more than one live probe in half-open; open never allows before the
    cooldown; a success in half-open closes; a failure in half-open reopens; the closed
    state opens exactly when the consecutive or ratio rule says so; every transition is
    reported once through on_change and nothing else is; ``allow()`` is True exactly when
    ``retry_in()`` was 0.
    """

    @initialize(
        failures=st.integers(1, 4),
        ratio=st.none() | st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        window=st.integers(2, 5),
    )
    def setup(self, failures: int, ratio: float | None, window: int) -> None:
        self.clock = FakeClock(0.0)
        self.changes: list[tuple[BreakerState, BreakerState]] = []
        self.failures = failures
        self.ratio = ratio
        self.window = window
        self.b = CircuitBreaker(
            BreakerConfig(
                failures=failures,
                failure_ratio=ratio,
                window=window,
                cooldown_seconds=COOLDOWN,
            ),
            clock=self.clock,
            on_change=lambda old, new: self.changes.append((old, new)),
        )
        self.state = CLOSED  # the model's view of the state
        self.opened_at = 0.0
        self.probe_at: float | None = None  # when the outstanding probe was admitted
        self.consecutive = 0
        self.outcomes: deque[bool] = deque(maxlen=window)  # True = failed
        self._changes_before: list[tuple[BreakerState, BreakerState]] = []

    def _expect_transition(self, before: BreakerState, after: BreakerState) -> None:
        if before is after:
            assert self.changes == self._changes_before, "a non-transition was reported"
        else:
            assert self.changes == [*self._changes_before, (before, after)], (
                "transition not reported exactly once"
            )
        assert self.b.state is after
        self.state = after

    def _snapshot(self) -> BreakerState:
        self._changes_before = list(self.changes)
        assert self.b.state is self.state
        return self.state

    @rule(seconds=st.sampled_from([0.0, 0.5, 3.0, 9.99, 10.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def allow(self) -> None:
        before = self._snapshot()
        now = self.clock.now
        waited = self.b.retry_in()
        allowed = self.b.allow()
        assert allowed == (waited == 0.0)
        if before is CLOSED:
            assert allowed
            self._expect_transition(CLOSED, CLOSED)
        elif before is OPEN:
            assert allowed == (now >= self.opened_at + COOLDOWN), "open allowed too early"
            if allowed:
                self.probe_at = now
            self._expect_transition(OPEN, HALF if allowed else OPEN)
        else:
            assert self.probe_at is not None
            live = now < self.probe_at + COOLDOWN
            assert allowed == (not live), "a second probe while one is outstanding"
            if allowed:
                self.probe_at = now  # the abandoned probe is replaced
            self._expect_transition(HALF, HALF)

    @rule()
    def success(self) -> None:
        before = self._snapshot()
        self.b.record_success()
        if before is CLOSED:
            self.consecutive = 0
            self.outcomes.append(False)
            self._expect_transition(CLOSED, CLOSED)
        elif before is HALF:
            self.consecutive = 0
            self.outcomes.clear()
            self.probe_at = None
            self._expect_transition(HALF, CLOSED)
        else:
            self._expect_transition(OPEN, OPEN)

    @rule()
    def failure(self) -> None:
        before = self._snapshot()
        self.b.record_failure()
        if before is CLOSED:
            self.consecutive += 1
            self.outcomes.append(True)
            trips = self.consecutive >= self.failures
            if self.ratio is not None and len(self.outcomes) == self.window:
                trips = trips or sum(self.outcomes) / self.window >= self.ratio
            if trips:
                self.opened_at = self.clock.now
            self._expect_transition(CLOSED, OPEN if trips else CLOSED)
        elif before is HALF:
            self.opened_at = self.clock.now
            self.probe_at = None
            self._expect_transition(HALF, OPEN)
        else:
            self._expect_transition(OPEN, OPEN)

    @precondition(lambda self: self.state is OPEN)
    @rule()
    def open_refuses_before_cooldown(self) -> None:
        if self.clock.now < self.opened_at + COOLDOWN:
            assert self.b.retry_in() > 0.0
            before = self._snapshot()
            assert not self.b.allow()
            self._expect_transition(before, OPEN)

    @invariant()
    def closed_means_no_wait(self) -> None:
        if self.b.state is CLOSED:
            assert self.b.retry_in() == 0.0

    @invariant()
    def transitions_chain(self) -> None:
        # Every reported transition starts where the previous one ended, from closed.
        state = CLOSED
        for old, new in self.changes:
            assert old is state and new is not old
            state = new
        assert state is self.b.state


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
