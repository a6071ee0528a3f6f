"""Provider state rules: outcomes, breakers, checks, subscribers, latency and redaction."""

from __future__ import annotations

from llm_gateway.core.errors import (
    CircuitOpenError,
    ContextWindowExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    UpstreamAuthenticationError,
    UpstreamError,
    UpstreamTimeoutError,
)
from llm_gateway.status import ProviderState, ProviderTracker, StateChange, overall_status
from llm_gateway.status.latency import LatencyWindow
from llm_gateway.status.redact import redact

H, U, N = ProviderState.HEALTHY, ProviderState.UNHEALTHY, ProviderState.NOT_CONFIGURED


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[ProviderTracker, list[StateChange], Clock]:
    clock = Clock()
    tracker = ProviderTracker(
        {"a": "openai", "b": "anthropic", "off": "gemini"},
        {"off": "no api_key (set GEMINI_API_KEY)"},
        clock=clock,
    )
    changes: list[StateChange] = []
    tracker.subscribe(changes.append)
    return tracker, changes, clock


def test_initial_states_and_not_configured_reason() -> None:
    tracker, changes, _ = make()
    assert tracker.states() == {"a": H, "b": H, "off": N}
    off = tracker.snapshot("off")
    assert off.error is not None and off.error.code == "not_configured"
    assert "GEMINI_API_KEY" in off.error.message
    assert tracker.snapshot("a").checked_at is None
    assert tracker.overall() == "healthy"
    assert changes == []


def test_provider_faults_make_it_unhealthy_and_success_heals() -> None:
    tracker, changes, clock = make()
    clock.now = 1005.0
    for _ in range(2):  # below the threshold: still HEALTHY, the error is kept
        tracker.record_outcome("a", UpstreamError("boom 500", upstream_status=500), 0.2)
    assert tracker.states()["a"] == H and changes == []
    tracker.record_outcome("a", UpstreamError("boom 500", upstream_status=500), 0.2)
    assert tracker.states()["a"] == U
    assert tracker.overall() == "degraded"
    change = changes[-1]
    assert (change.provider, change.state, change.previous) == ("a", U, H)
    assert change.changed_at == 1005.0
    assert change.error is not None and change.error.status == 500
    assert change.error.message == "boom 500"
    # Another failure: no new change event.
    tracker.record_outcome("a", UpstreamTimeoutError("slow"), 1.0)
    assert len(changes) == 1
    assert tracker.snapshot("a").error.code == "timeout"  # type: ignore[union-attr]
    clock.now = 1010.0
    tracker.record_outcome("a", None, 0.3)  # one success is not yet a recovery
    assert tracker.states()["a"] == U and len(changes) == 1
    tracker.record_outcome("a", None, 0.3)
    assert tracker.states()["a"] == H
    assert (changes[-1].state, changes[-1].previous, changes[-1].error) == (H, U, None)
    snap = tracker.snapshot("a")
    assert snap.error is None and snap.changed_at == 1010.0
    assert (snap.successes, snap.failures) == (2, 4)


def test_alternating_failures_and_successes_do_not_flap() -> None:
    tracker, changes, _ = make()
    for _ in range(10):  # a 50% error rate: never three failures in a row
        tracker.record_outcome("a", RateLimitError("slow down"), 0.1)
        tracker.record_outcome("a", None, 0.1)
    assert tracker.states()["a"] == H and changes == []
    for _ in range(3):
        tracker.record_outcome("a", RateLimitError("slow down"), 0.1)
    assert tracker.states()["a"] == U
    for _ in range(10):  # mostly failing, an odd success: stays UNHEALTHY
        tracker.record_outcome("a", None, 0.1)
        tracker.record_outcome("a", UpstreamError("x"), 0.1)
    assert tracker.states()["a"] == U and [c.state for c in changes] == [U]


def test_thresholds_are_settable() -> None:
    tracker = ProviderTracker({"a": "openai"}, {}, failures_to_unhealthy=1, successes_to_healthy=1)
    tracker.record_outcome("a", UpstreamError("x"), 0.1)
    assert tracker.states()["a"] == U
    tracker.record_outcome("a", None, 0.1)
    assert tracker.states()["a"] == H


def test_callers_own_mistakes_change_nothing() -> None:
    tracker, changes, _ = make()
    for error in (
        InvalidRequestError("bad temperature"),
        ModelNotFoundError("no such model"),
        ContextWindowExceededError("too long"),
        CircuitOpenError("open"),
    ):
        tracker.record_outcome("a", error, 0.1)
    assert tracker.states()["a"] == H and changes == []
    assert tracker.snapshot("a").failures == 0


def test_upstream_auth_and_rate_limits_are_the_providers_fault() -> None:
    tracker, _, _ = make()
    tracker.record_outcome("a", UpstreamAuthenticationError("bad key"), 0.1)
    assert tracker.states()["a"] == U  # at once: retrying will not fix the gateway's key
    for _ in range(3):
        tracker.record_outcome("b", RateLimitError("slow down"), 0.1)
    assert tracker.states() == {"a": U, "b": U, "off": N}
    assert tracker.overall() == "unhealthy"


def test_open_breaker_is_unhealthy_until_every_route_closes() -> None:
    tracker, changes, _ = make()
    tracker.breaker_changed("a", "a/m1", "open")
    tracker.breaker_changed("a", "a/m2", "open")
    assert tracker.states()["a"] == U and len(changes) == 1
    assert tracker.snapshot("a").open_circuits == ("a/m1", "a/m2")
    assert changes[0].error is not None and changes[0].error.code == "circuit_open"
    # A success on a half-open probe does not hide the other open route.
    tracker.breaker_changed("a", "a/m1", "half_open")
    tracker.record_outcome("a", None, 0.1)
    tracker.breaker_changed("a", "a/m1", "closed")
    assert tracker.states()["a"] == U
    tracker.breaker_changed("a", "a/m2", "closed")
    assert tracker.states()["a"] == H
    assert [c.state for c in changes] == [U, H]


def test_checks_record_models_latency_and_failures() -> None:
    tracker, changes, clock = make()
    clock.now = 1002.0
    tracker.record_check("a", None, 0.05, ["m1", "m2"])
    snap = tracker.snapshot("a")
    assert snap.models == ("m1", "m2") and snap.checked_at == 1002.0
    assert snap.check_ms == 50.0
    assert changes == []
    tracker.record_check("b", UpstreamTimeoutError("no answer"), 3.0)
    assert tracker.states()["b"] == U
    # A 404 from a listing says the endpoint is missing, not that the provider is down.
    tracker.record_check("a", ModelNotFoundError("no /models"), 0.01)
    assert tracker.states()["a"] == H
    # Checks and outcomes for unknown or unconfigured providers are ignored.
    tracker.record_check("off", None, 0.1)
    tracker.record_outcome("nope", None, 0.1)
    assert tracker.states()["off"] == N


def test_latency_percentiles_of_recent_successes() -> None:
    tracker, _, _ = make()
    for ms in range(1, 101):
        tracker.record_outcome("a", None, ms / 1000.0)
    snap = tracker.snapshot("a")
    assert snap.p50_ms == 50.0 and snap.p95_ms == 95.0 and snap.samples == 100
    window = LatencyWindow(window=4)
    assert window.percentile(0.5) is None
    for value in (5.0, 1.0, 9.0, 3.0, 7.0):
        window.add(value)
    assert len(window) == 4 and window.percentile(0.5) == 3.0 and window.percentile(1.0) == 9.0


def test_a_failing_subscriber_does_not_break_the_call() -> None:
    tracker, changes, _ = make()

    def broken(_: StateChange) -> None:
        raise RuntimeError("listener bug")

    tracker.subscribe(broken)
    unsubscribe = tracker.subscribe(changes.append)
    tracker.record_outcome("a", UpstreamAuthenticationError("x"), 0.1)
    assert len(changes) == 2  # the first subscriber and the second one both heard it
    unsubscribe()
    for _ in range(2):
        tracker.record_outcome("a", None, 0.1)
    assert len(changes) == 3


def test_overall_status() -> None:
    assert overall_status([H, H, N]) == "healthy"
    assert overall_status([H, U]) == "degraded"
    assert overall_status([U, N]) == "unhealthy"
    assert overall_status([N]) == "unhealthy"


def test_error_text_never_carries_credentials() -> None:
    tracker, _, _ = make()
    tracker.record_outcome(
        "a",
        UpstreamAuthenticationError(
            "Incorrect API key provided: sk-proj-abcdef123456. Bearer abc.def token=xyz"
        ),
        0.1,
    )
    message = tracker.snapshot("a").error.message  # type: ignore[union-attr]
    assert "sk-proj" not in message and "abc.def" not in message and "xyz" not in message
    assert "Incorrect API key provided" in message
    assert redact("postgresql://user:hunter2@db/x") == "postgresql://[redacted]@db/x"
    assert redact("key AIzaSyA1234567890abc") == "key [redacted]"
    assert len(redact("x" * 1000)) == 300
