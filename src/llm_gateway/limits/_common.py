"""Pieces shared by the in-process and Redis limiters: reservation ids and admission rules.

Reservation ids carry their backend in the first letter (``m`` memory, ``r`` Redis, ``a``
admitted without a check) so the failover wrapper can send a settle back to the backend
that made the reservation without remembering every reservation it handed out.
"""

from __future__ import annotations

import itertools
import os

from llm_gateway.limits.base import SpendReservation

MEMORY = "m"
REDIS = "r"
UNCHECKED = "a"


class IdSource:
    """Unique, cheap ids: a random per-process prefix and a counter (no syscall per id)."""

    __slots__ = ("_counter", "_prefix")

    def __init__(self, backend: str) -> None:
        # 48 random bits per instance keep ids of different processes apart.
        self._prefix = f"{backend}{os.urandom(6).hex()}."
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter)}"


class HeldSpend(SpendReservation):
    """A spend reservation with the id the counter tracks it by (to release it on settle
    or when it expires) and the settled spend the counter saw when it admitted it."""

    id: str
    spent_seen: float = 0.0


def tokens_fit(used: int, tokens: int, tpm: int) -> bool:
    """Whether ``tokens`` more fit under ``tpm`` when ``used`` are already in the window.

    A request whose estimate alone exceeds the limit is admitted into an empty window
    rather than refused forever: the caller cannot shrink an estimate it does not control
    (the completion estimate), and the limit is then exceeded by that one request only.
    """
    return used + tokens <= tpm or (used <= 0 < tpm)


__all__ = ["MEMORY", "REDIS", "UNCHECKED", "HeldSpend", "IdSource", "tokens_fit"]
