"""Per-call limits that travel from the router to the transport.

The provider interface carries a request and a model id, not transport settings, yet a
model may override its providers' idle timeout. The router sets ``CALL_LIMITS`` for the
duration of one upstream attempt (only when a model overrides something); the HTTP
client reads it once when an exchange starts. A context variable is used because it
follows the attempt's task, including hedged attempts running side by side, without
widening every adapter's signature.
"""

from __future__ import annotations

from contextvars import ContextVar

import msgspec


class CallLimits(msgspec.Struct, frozen=True):
    idle_timeout: float | None = None  # longest silent gap once the answer has started
    # The request's overall deadline, in event-loop time. The transport enforces it with
    # the timer it arms for every exchange anyway, which is far cheaper per request than
    # an ``asyncio.timeout`` around each attempt (measured: ~4.5 µs of ~8 µs routing).
    deadline: float | None = None


CALL_LIMITS: ContextVar[CallLimits | None] = ContextVar("llm_gateway_call_limits", default=None)
