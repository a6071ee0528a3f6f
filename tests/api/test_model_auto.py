"""model: auto picks the cheapest configured route whose capabilities meet the request."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import GatewayFactory
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.server import run_server

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def test_auto_takes_the_cheapest_route_that_meets_the_request(
    gateway_factory: GatewayFactory,
) -> None:
    big, small = OpenAIUpstream("openai", api_key="k"), OpenAIUpstream("openai", api_key="k")
    with run_server(big) as big_url, run_server(small) as small_url:
        config: dict[str, Any] = {
            "providers": {
                "a": {"type": "openai", "api_key": "k", "base_url": f"{big_url.url}/v1"},
                "b": {"type": "openai", "api_key": "k", "base_url": f"{small_url.url}/v1"},
            },
            "models": {"big": {"routes": ["a/gpt-4o"]}, "small": {"routes": ["b/gpt-4o-mini"]}},
            # Pretend the cheap model cannot call tools: requests with tools must avoid it.
            "model_table": {"openai/gpt-4o-mini": {"capabilities": {"tools": False}}},
        }
        with gateway_factory(config) as gw:
            plain = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
            r = httpx.post(f"{gw.url}/v1/chat/completions", json=plain)
            assert r.status_code == 200
            assert (r.headers["x-gateway-provider"], r.headers["x-gateway-model"]) == (
                "b",
                "gpt-4o-mini",
            )
            r = httpx.post(f"{gw.url}/v1/chat/completions", json={**plain, "tools": [TOOL]})
            assert r.status_code == 200
            assert r.headers["x-gateway-model"] == "gpt-4o"
            assert big.requests[-1].body["tools"] == [TOOL]
