"""A route's open circuit makes its provider UNHEALTHY on /health; recovery makes it HEALTHY."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import GatewayFactory
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import ErrorSpec, Scenario
from tests.fakes.server import run_server


def test_breaker_state_feeds_provider_state(gateway_factory: GatewayFactory) -> None:
    upstream = OpenAIUpstream("openai_compatible")
    with run_server(upstream) as fake:
        config: dict[str, Any] = {
            "providers": {
                "up": {"type": "openai_compatible", "base_url": f"{fake.url}/v1"},
                "off": {"type": "openai"},  # no key: NOT_CONFIGURED
            },
            "models": {
                "m": {
                    "routes": ["up/x"],
                    "retries": {"attempts": 1},
                    "breaker": {"failures": 2, "cooldown_seconds": 0.5},
                }
            },
        }
        with gateway_factory(config) as gw:
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            # The SQLite ledger opens just behind start-up: wait for it to report ok.
            deadline = time.monotonic() + 10
            while True:
                first = httpx.get(f"{gw.url}/health").json()
                if first["components"]["database"]["status"] == "ok":
                    break
                assert time.monotonic() < deadline, first
                time.sleep(0.1)
            assert {k: first[k] for k in ("status", "providers")} == {
                "status": "healthy",
                "providers": {"up": "HEALTHY", "off": "NOT_CONFIGURED"},
            }
            upstream.queue(*[Scenario(error=ErrorSpec("server", "boom"))] * 2)
            for _ in range(2):
                assert httpx.post(f"{gw.url}/v1/chat/completions", json=body).status_code == 502
            health = httpx.get(f"{gw.url}/health").json()
            assert {k: health[k] for k in ("status", "providers")} == {
                "status": "unhealthy",
                "providers": {"up": "UNHEALTHY", "off": "NOT_CONFIGURED"},
            }
            # While open, the gateway fails fast without calling the upstream.
            calls = len(upstream.requests)
            fast = httpx.post(f"{gw.url}/v1/chat/completions", json=body)
            assert fast.status_code == 503 and fast.json()["error"]["code"] == "circuit_open"
            assert int(fast.headers["retry-after"]) >= 1
            assert len(upstream.requests) == calls
            # After the cooldown one probe goes through; its success closes the circuit.
            time.sleep(0.6)
            ok = httpx.post(f"{gw.url}/v1/chat/completions", json=body)
            assert ok.status_code == 200
            assert httpx.get(f"{gw.url}/health").json()["providers"]["up"] == "HEALTHY"
