"""An admitted call (``Ticket``) and how it ended (``Outcome``), with the limit headers."""

from __future__ import annotations

from typing import Protocol

import msgspec

from llm_gateway.core.errors import GatewayError, RateLimitError
from llm_gateway.core.records import UsageRecord
from llm_gateway.core.types import ChatRequest, Usage
from llm_gateway.gate.auth import Caller
from llm_gateway.limits.base import LimitState, RateLimitExceeded, Reservation, SpendReservation
from llm_gateway.routing.route import Route


class Outcome(msgspec.Struct, kw_only=True):
    """How a call ended, as the surface saw it."""

    status: int = 200
    error: GatewayError | None = None
    route: Route | None = None
    usage: Usage | None = None
    ttft_ms: float | None = None
    produced_text: str = ""  # counted locally when ``usage`` is None
    streamed: bool = False
    cache_hit: bool = False
    # The routes' own rate-limit reservations (``CallTrace.reservations``).
    reservations: list[Reservation] = msgspec.field(default_factory=list)


class Finisher(Protocol):
    def _finish(self, ticket: Ticket, outcome: Outcome) -> UsageRecord: ...


def limit_headers(prefix: bytes, state: LimitState) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit-" + prefix, str(state.limit).encode()),
        (b"x-ratelimit-remaining-" + prefix, str(max(state.remaining, 0)).encode()),
        (b"x-ratelimit-reset-" + prefix, f"{state.reset_seconds:.3f}s".encode()),
    ]


def rate_limit_error(exc: RateLimitExceeded, *, route: bool = False) -> RateLimitError:
    who = "this route" if route else "this API key"
    error = RateLimitError(
        f"Rate limit reached for {who}: {exc.state.limit} {exc.dimension} per minute. "
        f"Retry after {exc.retry_after:.1f}s.",
        retry_after=exc.retry_after,
    )
    error.extra_headers = tuple(limit_headers(exc.dimension.encode(), exc.state))
    return error


class Ticket:
    """One admitted call. ``finish`` exactly once, whatever happened."""

    __slots__ = (
        "_done",
        "_gate",
        "_limit",
        "_spend",
        "caller",
        "endpoint",
        "model",
        "request",
        "request_id",
        "started",
    )

    def __init__(
        self,
        gate: Finisher,
        caller: Caller,
        request: ChatRequest,
        *,
        endpoint: str,
        request_id: str,
        started: float,
        limit: Reservation | None = None,
        spend: SpendReservation | None = None,
    ) -> None:
        self._gate = gate
        self.caller = caller
        self.request = request
        self.model = request.model
        self.endpoint = endpoint
        self.request_id = request_id
        self.started = started
        self._limit = limit
        self._spend = spend
        self._done = False

    @property
    def limit(self) -> Reservation | None:
        return self._limit

    @property
    def spend(self) -> SpendReservation | None:
        return self._spend

    @property
    def finished(self) -> bool:
        return self._done

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``x-ratelimit-*`` of the key's limits, for a successful response."""
        reservation = self._limit
        if reservation is None:
            return []
        headers: list[tuple[bytes, bytes]] = []
        if reservation.requests is not None:
            headers += limit_headers(b"requests", reservation.requests)
        if reservation.tokens_state is not None:
            headers += limit_headers(b"tokens", reservation.tokens_state)
        return headers

    def finish(self, outcome: Outcome) -> UsageRecord | None:
        if self._done:
            return None
        self._done = True
        return self._gate._finish(self, outcome)


__all__ = ["Finisher", "Outcome", "Ticket", "limit_headers", "rate_limit_error"]
