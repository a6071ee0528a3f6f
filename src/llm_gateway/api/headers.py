"""Response headers that say how the gateway served a completion."""

from __future__ import annotations

import time

from llm_gateway.routing.route import Route
from llm_gateway.routing.router import CallTrace


def gateway_headers(route: Route, trace: CallTrace, started: float) -> list[tuple[bytes, bytes]]:
    """Route, attempts, and the gateway's own added time.

    The added time is the request's time in the gateway so far, less the time spent
    waiting on upstreams and in deliberate backoff sleeps: what the gateway itself cost.
    """
    elapsed = time.monotonic() - started
    overhead = max(0.0, elapsed - trace.upstream_seconds - trace.sleep_seconds)
    return [
        (b"x-gateway-provider", route.provider_name.encode()),
        (b"x-gateway-model", route.model.encode()),
        (b"x-gateway-attempts", str(trace.attempts).encode()),
        (b"x-gateway-overhead-ms", f"{overhead * 1000:.3f}".encode()),
    ]
