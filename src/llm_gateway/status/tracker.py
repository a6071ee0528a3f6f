"""Each configured provider's state, from real call outcomes, circuit breakers and checks.

The rules (docs/status-api.md):

* a provider without usable credentials is NOT_CONFIGURED, for good;
* a provider with any route whose circuit breaker is not closed is UNHEALTHY;
* otherwise its state follows the evidence, with hysteresis so one stray error (a single
  429) does not flip it back and forth: ``failures_to_unhealthy`` (3) consecutive calls
  failing by the provider's fault (a retryable upstream error) make it UNHEALTHY, and
  then ``successes_to_healthy`` (2) consecutive successful calls make it HEALTHY again.
  The upstream rejecting the gateway's own credentials makes it UNHEALTHY at once (no
  retry will fix that), and so does a failed health check; a successful check makes it
  HEALTHY at once (checks are deliberate probes, not samples of traffic). The caller's
  own mistakes (400, 404, 413, context window) say nothing about the provider and change
  nothing, not even the counts.

A provider starts HEALTHY (with ``checked_at`` None until a check has run): traffic flows
to it until something says otherwise, as it did before any checks existed.

Everything runs on the event loop: no locks. Subscribers are plain callbacks, called
synchronously on every state change; one that raises is logged, never propagated into the
request that caused the change.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from llm_gateway.core.errors import (
    CircuitOpenError,
    GatewayError,
    UpstreamAuthenticationError,
)
from llm_gateway.status.latency import LatencyWindow
from llm_gateway.status.redact import redact

log = logging.getLogger("llm_gateway.status")


class ProviderState(enum.StrEnum):
    NOT_CONFIGURED = "NOT_CONFIGURED"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


@dataclass(frozen=True)
class ErrorInfo:
    """The last provider-side failure: safe to show (credentials redacted)."""

    message: str
    code: str | None = None
    status: int | None = None
    at: float = 0.0  # epoch seconds

    @classmethod
    def of(cls, error: GatewayError, at: float) -> ErrorInfo:
        status = error.upstream_status if error.upstream_status is not None else error.status
        return cls(redact(error.message), error.code, status, at)


@dataclass(frozen=True)
class StateChange:
    provider: str
    state: ProviderState
    previous: ProviderState
    error: ErrorInfo | None
    changed_at: float


@dataclass(frozen=True)
class ProviderStatus:
    """A snapshot of one provider, for the API and the status feed."""

    name: str
    type: str
    state: ProviderState
    error: ErrorInfo | None
    changed_at: float
    checked_at: float | None
    check_ms: float | None
    models: tuple[str, ...]
    p50_ms: float | None
    p95_ms: float | None
    samples: int
    successes: int
    failures: int
    open_circuits: tuple[str, ...]


@dataclass
class _Entry:
    name: str
    type: str
    configured: bool
    changed_at: float
    health: ProviderState = ProviderState.HEALTHY  # from outcomes and checks
    state: ProviderState = ProviderState.HEALTHY  # effective, what everybody sees
    error: ErrorInfo | None = None
    tripped: set[str] = field(default_factory=set)
    checked_at: float | None = None
    check_ms: float | None = None
    models: tuple[str, ...] = ()
    latencies: LatencyWindow = field(default_factory=LatencyWindow)
    successes: int = 0
    failures: int = 0
    fail_streak: int = 0  # consecutive provider-fault failures
    ok_streak: int = 0  # consecutive successes


FAILURES_TO_UNHEALTHY = 3
SUCCESSES_TO_HEALTHY = 2


def provider_at_fault(error: GatewayError) -> bool:
    """Whether a failure says the provider is in trouble (not the caller's own mistake)."""
    if isinstance(error, CircuitOpenError):
        return False  # the breaker's own fast failure: its change is reported separately
    return error.retryable or isinstance(error, UpstreamAuthenticationError)


def overall_status(states: Iterable[ProviderState]) -> str:
    """healthy (every usable provider is), degraded (some are), unhealthy (none is)."""
    usable = [s for s in states if s != ProviderState.NOT_CONFIGURED]
    healthy = sum(1 for s in usable if s == ProviderState.HEALTHY)
    if healthy == 0:
        return "unhealthy"
    return "healthy" if healthy == len(usable) else "degraded"


Subscriber = Callable[[StateChange], None]


class ProviderTracker:
    def __init__(
        self,
        types: Mapping[str, str],
        unavailable: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        failures_to_unhealthy: int = FAILURES_TO_UNHEALTHY,
        successes_to_healthy: int = SUCCESSES_TO_HEALTHY,
    ) -> None:
        """``types``: every configured provider's name and type; ``unavailable``: the
        names (with reasons) of those without usable credentials."""
        self._clock = clock
        self._fail_after = max(1, failures_to_unhealthy)
        self._recover_after = max(1, successes_to_healthy)
        now = clock()
        self._entries: dict[str, _Entry] = {}
        for name, kind in types.items():
            entry = _Entry(name, kind, configured=name not in unavailable, changed_at=now)
            if not entry.configured:
                entry.state = entry.health = ProviderState.NOT_CONFIGURED
                entry.error = ErrorInfo(redact(unavailable[name]), "not_configured", None, now)
            self._entries[name] = entry
        self._subscribers: list[Subscriber] = []

    # -- listeners --------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls ``callback`` on every state change; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    # -- evidence -----------------------------------------------------------------------------

    def record_outcome(self, provider: str, error: GatewayError | None, seconds: float) -> None:
        """One upstream attempt ended (the router's ``on_outcome`` hook)."""
        entry = self._entries.get(provider)
        if entry is None or not entry.configured:
            return
        if error is None:
            entry.successes += 1
            entry.latencies.add(seconds)
            entry.ok_streak += 1
            entry.fail_streak = 0
            if entry.health != ProviderState.UNHEALTHY or entry.ok_streak >= self._recover_after:
                self._update(entry, ProviderState.HEALTHY)
        elif provider_at_fault(error):
            entry.failures += 1
            entry.error = ErrorInfo.of(error, self._clock())
            entry.fail_streak += 1
            entry.ok_streak = 0
            at_once = isinstance(error, UpstreamAuthenticationError)
            if at_once or entry.fail_streak >= self._fail_after:
                self._update(entry, ProviderState.UNHEALTHY)

    def record_check(
        self,
        provider: str,
        error: GatewayError | None,
        seconds: float,
        models: Iterable[str] | None = None,
    ) -> None:
        """A health check ended: a model listing at start-up or a minimal completion."""
        entry = self._entries.get(provider)
        if entry is None or not entry.configured:
            return
        entry.checked_at = self._clock()
        entry.check_ms = seconds * 1000.0
        if models is not None:
            entry.models = tuple(models)
        if error is None:
            entry.fail_streak = 0
            self._update(entry, ProviderState.HEALTHY)
        else:
            entry.error = ErrorInfo.of(error, entry.checked_at)
            if provider_at_fault(error):
                entry.ok_streak = 0
                self._update(entry, ProviderState.UNHEALTHY)

    def breaker_changed(self, provider: str, route: str, new: str) -> None:
        """A route's breaker moved; any route not closed makes its provider UNHEALTHY."""
        entry = self._entries.get(provider)
        if entry is None or not entry.configured:
            return
        if new == "closed":
            entry.tripped.discard(route)
        else:
            if entry.error is None:
                message = f"circuit open on route {route}"
                entry.error = ErrorInfo(message, "circuit_open", None, self._clock())
            entry.tripped.add(route)
        self._update(entry, entry.health)

    def _update(self, entry: _Entry, health: ProviderState) -> None:
        entry.health = health
        state = ProviderState.UNHEALTHY if entry.tripped else health
        previous = entry.state
        if state == previous:
            return
        entry.state = state
        entry.changed_at = self._clock()
        error = entry.error if state == ProviderState.UNHEALTHY else None
        log.warning("provider %s is now %s (was %s)", entry.name, state.value, previous.value)
        change = StateChange(entry.name, state, previous, error, entry.changed_at)
        for callback in list(self._subscribers):
            try:
                callback(change)
            except Exception:  # a listener's bug must not fail the call that caused this
                log.exception("provider state subscriber failed")

    # -- views ------------------------------------------------------------------------------

    def __contains__(self, provider: object) -> bool:
        return provider in self._entries

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def states(self) -> dict[str, ProviderState]:
        return {name: entry.state for name, entry in self._entries.items()}

    def models(self, provider: str) -> tuple[str, ...]:
        entry = self._entries.get(provider)
        return entry.models if entry is not None else ()

    def overall(self) -> str:
        return overall_status(entry.state for entry in self._entries.values())

    def snapshot(self, provider: str) -> ProviderStatus:
        entry = self._entries[provider]
        p50 = entry.latencies.percentile(0.5)
        p95 = entry.latencies.percentile(0.95)
        return ProviderStatus(
            name=entry.name,
            type=entry.type,
            state=entry.state,
            # A healthy provider shows no stale error; the latest one is kept for when the
            # provider is not healthy (and for NOT_CONFIGURED, the reason).
            error=entry.error if entry.state != ProviderState.HEALTHY else None,
            changed_at=entry.changed_at,
            checked_at=entry.checked_at,
            check_ms=entry.check_ms,
            models=entry.models,
            p50_ms=p50 * 1000.0 if p50 is not None else None,
            p95_ms=p95 * 1000.0 if p95 is not None else None,
            samples=len(entry.latencies),
            successes=entry.successes,
            failures=entry.failures,
            open_circuits=tuple(sorted(entry.tripped)),
        )

    def snapshots(self) -> list[ProviderStatus]:
        return [self.snapshot(name) for name in self._entries]
