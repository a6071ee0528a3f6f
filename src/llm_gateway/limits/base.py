"""The interfaces of rate limiting and budget accounting.

Both follow reserve-then-settle: before the upstream call the gate reserves an estimate
(one request, the estimated tokens, the estimated cost); after it, ``settle`` replaces the
estimate with what was really used. Reservations that are never settled (a crash) expire
with their window, so they cannot leak capacity forever.

Implementations: ``limits.memory`` (one process) and ``limits.redis`` (exact across
replicas: every check-and-reserve is one atomic Lua script).
"""

from __future__ import annotations

from typing import Protocol

import msgspec


class LimitRule(msgspec.Struct, frozen=True):
    """Per-minute limits of one subject: ``key:<id>`` or ``route:<provider>/<model>``."""

    subject: str
    rpm: int | None = None
    tpm: int | None = None


class LimitState(msgspec.Struct):
    """One limit's figures after a decision, for ``x-ratelimit-*`` headers."""

    limit: int
    remaining: int
    reset_seconds: float  # until enough capacity frees up for one more unit


class RateLimitExceeded(Exception):
    """A rule refused the reservation; nothing was reserved for any rule."""

    def __init__(
        self,
        subject: str,
        dimension: str,  # "requests" | "tokens"
        retry_after: float,
        state: LimitState,
    ) -> None:
        super().__init__(f"{dimension} per minute limit of {subject} reached")
        self.subject = subject
        self.dimension = dimension
        self.retry_after = retry_after
        self.state = state


class Reservation(msgspec.Struct):
    """What ``reserve`` took; hand it back to ``settle``."""

    id: str
    rules: tuple[LimitRule, ...]
    tokens: int
    at: float
    # Figures of the tightest rule per dimension, for response headers (None: no limit).
    requests: LimitState | None = None
    tokens_state: LimitState | None = None


class RateLimiter(Protocol):
    async def reserve(self, rules: tuple[LimitRule, ...], tokens: int) -> Reservation:
        """Reserve one request and ``tokens`` under every rule, all or nothing.

        Raises ``RateLimitExceeded`` naming the first rule that refused. In any 60-second
        window a rule admits at most ``rpm`` requests and ``tpm`` tokens (counting settled
        actual tokens, and reservations not yet settled).
        """

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the reserved token estimate with the real count."""

    async def aclose(self) -> None: ...


class BudgetExceeded(Exception):
    def __init__(self, key_id: str, budget: float, spent: float) -> None:
        super().__init__(f"budget of key {key_id} exhausted")
        self.key_id = key_id
        self.budget = budget
        self.spent = spent


class SpendReservation(msgspec.Struct):
    key_id: str
    period: str  # the budget period's id, e.g. "total", "d2026-11-22", "m2026-11"
    amount: float


class SpendCounter(Protocol):
    """Spend per key per budget period, with in-flight reservations.

    ``reserve`` admits a request iff spent + reserved < budget (something is left), then
    adds its amount to reserved. So concurrent requests overshoot the budget by at most
    one request's reservation (when estimates hold), and the first request of a small
    budget is never refused for its estimate alone.
    """

    async def seed(self, key_id: str, period: str, spent: float) -> None:
        """Set a period's spend from the ledger where the counter may lack it; never lower
        it (the counter may count settles the ledger has not written yet). Redis seeds
        each counter once, and again only after losing it; memory raises to the ledger's
        figure every time (it holds this process's spend only)."""

    async def reserve(
        self, key_id: str, period: str, budget: float, amount: float
    ) -> SpendReservation:
        """Raises ``BudgetExceeded`` when the key's budget for the period is used up."""

    async def settle(self, reservation: SpendReservation, actual: float) -> None: ...

    async def spent(self, key_id: str, period: str) -> float: ...

    async def aclose(self) -> None: ...


__all__ = [
    "BudgetExceeded",
    "LimitRule",
    "LimitState",
    "RateLimitExceeded",
    "RateLimiter",
    "Reservation",
    "SpendCounter",
    "SpendReservation",
]
