"""A provider's own rpm/tpm: a route at its limit is skipped like an upstream 429."""

from __future__ import annotations

import httpx

from tests.conftest import serve_gateway

CONFIG = {
    "providers": {
        "small": {"type": "mock", "chunk_delay_ms": 0, "rpm": 2},
        "big": {"type": "mock", "chunk_delay_ms": 0},
    },
    "models": {
        "m": {
            "routes": [
                {"provider": "small", "model": "mock-1"},
                {"provider": "big", "model": "mock-1"},
            ]
        },
        "only-small": {"routes": [{"provider": "small", "model": "mock-1"}]},
    },
}


def _ask(url: str, model: str, stream: bool = False) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def test_route_over_its_limit_falls_back_then_429s_when_nothing_is_left() -> None:
    with serve_gateway(CONFIG) as gateway:
        served = [
            _ask(gateway.url, "m", stream=(i == 1)).headers["x-gateway-provider"] for i in range(4)
        ]
        assert served == ["small", "small", "big", "big"]
        refused = _ask(gateway.url, "only-small")
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "route_rate_limited"
        assert "small/mock-1" in error["message"]
        assert int(refused.headers["retry-after"]) >= 1
