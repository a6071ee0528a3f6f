"""A circuit breaker per route: fail fast while a route is down, probe it after a cooldown.

States and transitions (each reported once through ``on_change(old, new)``):

``closed``
    Every call is allowed. Outcomes are counted: ``failures`` consecutive failures open
    the breaker; when ``failure_ratio`` is set, so does a window of the last ``window``
    outcomes (judged only once ``window`` calls have been seen) whose failed share is at
    or above the ratio. A success resets the consecutive count.
``open``
    Calls are refused until ``cooldown_seconds`` have passed since the breaker opened.
    The first ``allow()`` after that moves to ``half_open`` and is admitted as the probe.
    Outcomes reported while open come from calls started before it opened; they are
    ignored (a late failure must not extend the cooldown, a late success must not close
    the breaker without a probe).
``half_open``
    Exactly one probe is in flight; everybody else is refused. The probe's success closes
    the breaker (and resets every counter); its failure re-opens it for another cooldown.
    A probe that never reports (its caller was cancelled) does not wedge the breaker: once
    another cooldown has passed since it was admitted, the next ``allow()`` admits a new
    probe (no transition: the breaker stays half-open).

With ``enabled: false`` the breaker always allows, ignores outcomes and stays closed.

The breaker does no I/O and takes no locks: it is meant for one event loop, where each
method runs to completion without interleaving. The clock is injectable for tests; it
must be monotonic. ``allow()`` in the closed state is a single attribute check, and the
``record_*`` methods are a few integer updates. ``on_change`` is called synchronously after
the state has changed; an exception it raises propagates to the caller (it is a bug in the
callback, not a routing failure), and the breaker's state is already consistent.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable

from llm_gateway.config.schema import BreakerConfig

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN


class CircuitBreaker:
    """One route's breaker. See the module docstring for the rules."""

    __slots__ = (
        "_clock",
        "_consecutive",
        "_cooldown",
        "_enabled",
        "_failures",
        "_on_change",
        "_ratio_threshold",
        "_since",
        "_state",
        "_win",
        "_win_fails",
        "_win_idx",
        "_win_seen",
        "_window",
    )

    def __init__(
        self,
        config: BreakerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self._enabled = config.enabled
        self._failures = config.failures
        self._cooldown = config.cooldown_seconds
        self._clock = clock
        self._on_change = on_change
        self._state = _CLOSED
        # When the breaker opened (open) or the current probe was admitted (half-open).
        self._since = 0.0
        self._consecutive = 0
        # The failure-ratio window: a ring of outcomes (1 = failed) and its failure count.
        # The threshold is an integer count, so no float comparison runs per call.
        self._window = config.window
        if config.failure_ratio is not None:
            self._ratio_threshold = max(1, math.ceil(config.failure_ratio * config.window - 1e-9))
            self._win: bytearray | None = bytearray(config.window)
        else:
            self._ratio_threshold = 0
            self._win = None
        self._win_idx = 0
        self._win_seen = 0
        self._win_fails = 0

    # --- queries ------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state (``open`` is reported until an ``allow()`` admits a probe)."""
        return self._state

    @property
    def disabled(self) -> bool:
        return not self._enabled

    def retry_in(self) -> float:
        """Seconds until ``allow()`` would admit a call: 0 when closed or a probe is due."""
        if self._state is _CLOSED:
            return 0.0
        return max(0.0, self._since + self._cooldown - self._clock())

    # --- the request path ---------------------------------------------------------------

    def allow(self) -> bool:
        """Whether a call may go to the route now (in half-open: whether it is the probe)."""
        state = self._state
        if state is _CLOSED:
            return True
        now = self._clock()
        if now < self._since + self._cooldown:
            return False  # open and cooling down, or half-open with a live probe
        # Cooldown over (open), or the last probe was abandoned (half-open): admit a probe.
        self._since = now
        if state is _OPEN:
            self._set(_HALF_OPEN)
        return True

    def record_success(self) -> None:
        state = self._state
        if state is _CLOSED:
            if not self._enabled:
                return
            self._consecutive = 0
            if self._win is not None:
                self._push(0)
        elif state is _HALF_OPEN:
            self._reset_counts()
            self._set(_CLOSED)
        # open: a late answer from before the breaker opened; ignored.

    def record_failure(self) -> None:
        state = self._state
        if state is _CLOSED:
            if not self._enabled:
                return
            self._consecutive += 1
            tripped = self._consecutive >= self._failures
            if self._win is not None:
                self._push(1)
                if self._win_seen >= self._window and self._win_fails >= self._ratio_threshold:
                    tripped = True
            if tripped:
                self._since = self._clock()
                self._set(_OPEN)
        elif state is _HALF_OPEN:
            self._since = self._clock()
            self._set(_OPEN)
        # open: a late failure from before the breaker opened; ignored.

    def reset(self) -> None:
        """Closes the breaker and forgets every outcome (an operator's manual override)."""
        self._reset_counts()
        if self._state is not _CLOSED:
            self._set(_CLOSED)

    # --- internals ----------------------------------------------------------------------

    def _push(self, failed: int) -> None:
        win = self._win
        assert win is not None
        idx = self._win_idx
        self._win_fails += failed - win[idx]
        win[idx] = failed
        idx += 1
        self._win_idx = 0 if idx == self._window else idx
        if self._win_seen < self._window:
            self._win_seen += 1

    def _reset_counts(self) -> None:
        self._consecutive = 0
        if self._win is not None:
            self._win[:] = bytes(self._window)
        self._win_idx = 0
        self._win_seen = 0
        self._win_fails = 0

    def _set(self, new: BreakerState) -> None:
        old = self._state
        self._state = new
        if self._on_change is not None:
            self._on_change(old, new)

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state.value}, retry_in={self.retry_in():.3f})"
