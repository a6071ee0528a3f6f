"""In-process rate limiter (exact sliding window) and spend counter, for one process.

The limiter keeps a sliding log per subject: one entry (time, reservation id, tokens) per
admitted request, oldest first, plus the running token total. A request is admitted at
time ``t`` iff the entries newer than ``t - window`` leave room for it, which bounds every
window of that length, not only aligned minutes. Entries leave the log once they are older
than the window, so memory is bounded by the requests of one window per active subject.

Nothing here awaits, so each call runs to completion on the event loop: reserve checks
every rule and then records under all of them with no interleaving (all or nothing).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from llm_gateway.limits._common import MEMORY, HeldSpend, IdSource, tokens_fit
from llm_gateway.limits.base import (
    BudgetExceeded,
    LimitRule,
    LimitState,
    RateLimitExceeded,
    Reservation,
    SpendReservation,
)

Clock = Callable[[], float]


class _Entry:
    __slots__ = ("at", "id", "tokens")

    def __init__(self, at: float, id: str, tokens: int) -> None:
        self.at = at
        self.id = id
        self.tokens = tokens


class _Log:
    """The admitted requests of one subject still inside the window."""

    __slots__ = ("by_id", "entries", "tokens")

    def __init__(self) -> None:
        self.entries: deque[_Entry] = deque()
        self.by_id: dict[str, _Entry] = {}
        self.tokens = 0

    def prune(self, cutoff: float) -> None:
        entries = self.entries
        while entries and entries[0].at <= cutoff:
            gone = entries.popleft()
            del self.by_id[gone.id]
            self.tokens -= gone.tokens

    def token_wait(self, tokens: int, tpm: int, now: float, window: float) -> float:
        """Seconds until enough tokens leave the window for ``tokens`` more to fit."""
        left = self.tokens
        for entry in self.entries:
            left -= entry.tokens
            if tokens_fit(left, tokens, tpm):
                return entry.at + window - now
        return window  # tpm == 0: nothing ever fits


class MemoryRateLimiter:
    """Requests and tokens per window (60 s by default) per subject, in this process."""

    def __init__(self, *, window: float = 60.0, clock: Clock = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        self._new_id = IdSource(MEMORY)
        self._next_sweep = clock() + window

    async def reserve(self, rules: tuple[LimitRule, ...], tokens: int) -> Reservation:
        now = self._clock()
        window = self._window
        if now >= self._next_sweep:
            self._sweep(now)
        cutoff = now - window
        logs = self._logs
        checked: list[tuple[LimitRule, _Log]] = []
        for rule in rules:
            rpm = rule.rpm
            tpm = rule.tpm
            if rpm is None and tpm is None:
                continue
            log = logs.get(rule.subject)
            if log is None:
                log = logs[rule.subject] = _Log()
            else:
                log.prune(cutoff)
            count = len(log.entries)
            if rpm is not None and count >= rpm:
                wait = log.entries[0].at + window - now if rpm > 0 else window
                state = LimitState(rpm, max(rpm - count, 0), wait)
                raise RateLimitExceeded(rule.subject, "requests", wait, state)
            if tpm is not None and not tokens_fit(log.tokens, tokens, tpm):
                wait = log.token_wait(tokens, tpm, now, window)
                state = LimitState(tpm, max(tpm - log.tokens, 0), wait)
                raise RateLimitExceeded(rule.subject, "tokens", wait, state)
            checked.append((rule, log))
        rid = self._new_id()
        requests: LimitState | None = None
        tokens_state: LimitState | None = None
        for rule, log in checked:
            entry = _Entry(now, rid, tokens)
            log.entries.append(entry)
            log.by_id[rid] = entry
            log.tokens += tokens
            # Until the oldest entry leaves: when one more unit of capacity frees up.
            reset = log.entries[0].at + window - now
            if rule.rpm is not None:
                left = rule.rpm - len(log.entries)
                if requests is None or left < requests.remaining:
                    requests = LimitState(rule.rpm, left, reset)
            if rule.tpm is not None:
                left = rule.tpm - log.tokens
                if tokens_state is None or left < tokens_state.remaining:
                    tokens_state = LimitState(rule.tpm, left, reset)
        return Reservation(rid, rules, tokens, now, requests, tokens_state)

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        actual = max(actual_tokens, 0)
        rid = reservation.id
        for rule in reservation.rules:
            log = self._logs.get(rule.subject)
            if log is None:
                continue
            entry = log.by_id.get(rid)
            if entry is not None:  # None: it already left the window
                log.tokens += actual - entry.tokens
                entry.tokens = actual

    def _sweep(self, now: float) -> None:
        """Drop subjects that have been idle for a whole window (bounded memory)."""
        cutoff = now - self._window
        for subject in list(self._logs):
            log = self._logs[subject]
            log.prune(cutoff)
            if not log.entries:
                del self._logs[subject]
        self._next_sweep = now + self._window

    def subjects(self) -> int:
        """How many subjects hold entries (for tests of bounded memory)."""
        return len(self._logs)

    async def aclose(self) -> None:
        self._logs.clear()


class _Budget:
    __slots__ = ("held", "reserved", "spent")

    def __init__(self) -> None:
        self.spent = 0.0
        self.reserved = 0.0
        self.held: dict[str, tuple[float, float]] = {}  # id -> (expires, amount)


class MemorySpendCounter:
    """Spend per key and period with in-flight reservations, in this process.

    Reservations not settled within ``reservation_ttl`` seconds are released (swept at
    most ``reservation_ttl / 4`` late), so a lost settle cannot hold budget forever. The
    same sweep forgets a key's past daily and monthly periods once a later one of the
    same kind exists and nothing is in flight in them (a period never comes back).
    """

    def __init__(self, *, reservation_ttl: float = 900.0, clock: Clock = time.monotonic) -> None:
        self._ttl = reservation_ttl
        self._clock = clock
        self._budgets: dict[tuple[str, str], _Budget] = {}
        self._new_id = IdSource(MEMORY)
        self._next_sweep = clock() + reservation_ttl / 4

    def _budget(self, key_id: str, period: str) -> _Budget:
        budget = self._budgets.get((key_id, period))
        if budget is None:
            budget = self._budgets[(key_id, period)] = _Budget()
        return budget

    async def seed(self, key_id: str, period: str, spent: float) -> None:
        """Raise the period's spend to the ledger's figure, never lower it: this process
        may have settled spend the ledger has not written yet, and with several workers
        the ledger also holds what the others spent."""
        self.observe(key_id, period, spent)

    def observe(self, key_id: str, period: str, spent: float) -> None:
        """Raise the known spend to a figure seen elsewhere (ledger, Redis)."""
        budget = self._budget(key_id, period)
        if spent > budget.spent:
            budget.spent = spent

    async def reserve(
        self, key_id: str, period: str, budget: float, amount: float
    ) -> SpendReservation:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        state = self._budget(key_id, period)
        if state.spent + state.reserved >= budget:
            raise BudgetExceeded(key_id, budget, state.spent + state.reserved)
        rid = self._new_id()
        state.reserved += amount
        state.held[rid] = (now + self._ttl, amount)
        return HeldSpend(key_id, period, amount, id=rid, spent_seen=state.spent)

    async def settle(self, reservation: SpendReservation, actual: float) -> None:
        state = self._budget(reservation.key_id, reservation.period)
        if isinstance(reservation, HeldSpend):
            held = state.held.pop(reservation.id, None)
            if held is not None:  # None: it expired and was released already
                state.reserved = state.reserved - held[1] if state.held else 0.0
        state.spent += actual

    async def spent(self, key_id: str, period: str) -> float:
        budget = self._budgets.get((key_id, period))
        return budget.spent if budget is not None else 0.0

    async def reserved(self, key_id: str, period: str) -> float:
        budget = self._budgets.get((key_id, period))
        return budget.reserved if budget is not None else 0.0

    def _sweep(self, now: float) -> None:
        for state in self._budgets.values():
            if not state.held:
                continue
            for rid, (expires, amount) in list(state.held.items()):
                if expires <= now:
                    del state.held[rid]
                    state.reserved -= amount
            if not state.held:
                state.reserved = 0.0  # no float residue once nothing is in flight
        self._forget_past_periods()
        self._next_sweep = now + self._ttl / 4

    def _forget_past_periods(self) -> None:
        # Period ids of one kind sort by time ("d2026-11-21" < "d2026-11-22"), so the
        # greatest per key and kind is the current one (or the newest seen); "total" has
        # no successor and stays.
        latest: dict[tuple[str, str], str] = {}
        for key_id, period in self._budgets:
            slot = (key_id, period[:1])
            if period != "total" and period > latest.get(slot, ""):
                latest[slot] = period
        for key_id, period in list(self._budgets):
            newest = latest.get((key_id, period[:1]))
            if newest is not None and period < newest and not self._budgets[(key_id, period)].held:
                del self._budgets[(key_id, period)]

    def periods(self) -> int:
        """How many (key, period) counters are kept (for tests of bounded memory)."""
        return len(self._budgets)

    async def aclose(self) -> None:
        self._budgets.clear()


__all__ = ["MemoryRateLimiter", "MemorySpendCounter"]
