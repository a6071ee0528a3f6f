"""/api/llm/providers, /api/llm/health, /health components and the start-up check bound,
over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from llm_gateway.app import GatewayApp, create_app
from llm_gateway.config.schema import GatewayConfig
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import ErrorSpec, Scenario
from tests.fakes.server import RunningServer, run_server

pytestmark = pytest.mark.timeout(60)


@contextmanager
def gateway(config: dict[str, Any]) -> Iterator[tuple[RunningServer, GatewayApp]]:
    app = create_app(GatewayConfig.model_validate({"storage": {"url": "memory://"}, **config}))
    with run_server(app, lifespan="on", http="httptools", loop="uvloop") as server:
        yield server, app


def config_for(url: str, **status: Any) -> dict[str, Any]:
    return {
        "providers": {
            "up": {"type": "openai_compatible", "base_url": f"{url}/v1"},
            "mock": {"type": "mock", "chunk_delay_ms": 0},
            "off": {"type": "openai"},  # no key: NOT_CONFIGURED
        },
        "models": {"m": {"routes": ["up/x"], "retries": {"attempts": 1}}},
        "status": status,
    }


def wait_until(predicate: Any, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def providers(url: str) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{url}/api/llm/providers").json()
    return {p["name"]: p for p in body["providers"]}


def chat_posts(upstream: OpenAIUpstream) -> list[Any]:
    return [r for r in upstream.requests if r.path.endswith("/chat/completions")]


def test_providers_endpoint_after_startup_checks_and_calls() -> None:
    upstream = OpenAIUpstream("openai_compatible", models=("x", "y"))
    with run_server(upstream) as fake, gateway(config_for(fake.url)) as (gw, _):
        wait_until(lambda: providers(gw.url)["up"]["checked_at"] is not None)
        listed = providers(gw.url)
        up, mock, off = listed["up"], listed["mock"], listed["off"]
        assert (up["state"], up["type"], up["models"], up["error"]) == (
            "HEALTHY",
            "openai_compatible",
            ["x", "y"],
            None,
        )
        assert up["latency"]["last_check_ms"] > 0 and up["latency"]["p50_ms"] is None
        assert [r.path for r in upstream.requests] == ["/v1/models"]  # listing, no completion
        assert mock["state"] == "HEALTHY" and mock["checked_at"] is not None
        assert off["state"] == "NOT_CONFIGURED" and off["error"]["code"] == "not_configured"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(3):
            assert httpx.post(f"{gw.url}/v1/chat/completions", json=body).status_code == 200
        up = providers(gw.url)["up"]
        assert up["calls"] == {"successes": 3, "failures": 0}
        assert up["latency"]["samples"] == 3 and up["latency"]["p95_ms"] >= up["latency"]["p50_ms"]
        overall = httpx.get(f"{gw.url}/api/llm/providers").json()["status"]
        assert overall == "healthy"


def test_health_check_true_makes_one_real_minimal_completion() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    config = config_for("", check_on_startup=False)
    with run_server(upstream) as fake:
        config["providers"]["up"]["base_url"] = f"{fake.url}/v1"
        with gateway(config) as (gw, app):
            plain = httpx.get(f"{gw.url}/api/llm/health", params={"provider": "up"}).json()
            assert plain["checks"] is None and upstream.requests == []
            checked = httpx.get(
                f"{gw.url}/api/llm/health", params={"provider": "up", "check": "true"}
            ).json()
            assert len(chat_posts(upstream)) == 1
            sent = upstream.last_body
            assert sent["model"] == "x"  # the first configured route's model
            assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 1
            assert checked["status"] == "healthy"
            [check] = checked["checks"]
            assert (check["provider"], check["kind"], check["ok"], check["model"]) == (
                "up",
                "completion",
                True,
                "x",
            )
            assert check["latency_ms"] > 0 and check["error"] is None
            assert [p["name"] for p in checked["providers"]] == ["up"]
            # Within the cache period a check reuses the last result: no second paid call.
            again = httpx.get(
                f"{gw.url}/api/llm/health", params={"provider": "up", "check": "true"}
            ).json()
            assert len(chat_posts(upstream)) == 1 and again["checks"] == checked["checks"]
            app.state.checker.cache_seconds = 0.0
            # A failing check makes the provider UNHEALTHY and says why.
            upstream.queue(Scenario(error=ErrorSpec("server", "model server down")))
            failed = httpx.get(
                f"{gw.url}/api/llm/health", params={"provider": "up", "check": "true"}
            ).json()
            assert len(chat_posts(upstream)) == 2
            assert failed["status"] == "unhealthy"
            assert failed["checks"][0]["ok"] is False
            assert "model server down" in failed["checks"][0]["error"]["message"]
            assert failed["providers"][0]["state"] == "UNHEALTHY"
            # All providers: the unconfigured one is reported, never called.
            every = httpx.get(f"{gw.url}/api/llm/health", params={"check": "true"}).json()
            by_name = {c["provider"]: c for c in every["checks"]}
            assert by_name["off"]["ok"] is False
            assert by_name["off"]["error"]["code"] == "provider_unavailable"
            assert by_name["mock"]["ok"] is True and by_name["up"]["ok"] is True
            assert every["status"] == "healthy"
            unknown = httpx.get(f"{gw.url}/api/llm/health", params={"provider": "nope"})
            assert unknown.status_code == 404
            assert unknown.json()["error"]["code"] == "provider_not_found"


def test_health_reports_components_without_waiting_on_a_hanging_one() -> None:
    config = config_for("http://127.0.0.1:9", check_on_startup=False)
    app = create_app(GatewayConfig.model_validate({"storage": {"url": "memory://"}, **config}))

    async def database() -> None:
        return None

    async def redis() -> None:
        await asyncio.sleep(30)

    async def queue() -> None:
        raise ConnectionRefusedError("redis://:hunter2@cache refused")

    app.state.dependencies.register_dependency("database", database)
    app.state.dependencies.register_dependency("redis", redis)
    app.state.dependencies.register_dependency("queue", queue)
    with run_server(app, lifespan="on") as gw:
        started = time.monotonic()
        health = httpx.get(f"{gw.url}/health")
        assert time.monotonic() - started < 1.5
        body = health.json()
        assert health.status_code == 200 and "hunter2" not in health.text
        assert body["status"] == "healthy"  # components never change the overall status
        assert body["providers"] == {"up": "HEALTHY", "mock": "HEALTHY", "off": "NOT_CONFIGURED"}
        components = body["components"]
        assert components["database"]["status"] == "ok"
        assert components["redis"]["status"] == "timeout"
        assert components["queue"] == {
            "status": "error",
            "latency_ms": components["queue"]["latency_ms"],
            "error": "ConnectionRefusedError",
        }


@contextmanager
def hanging_upstream() -> Iterator[str]:
    """Accepts connections (in the kernel) and never answers a byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


async def test_startup_is_not_held_by_a_hanging_provider() -> None:
    with hanging_upstream() as url:
        config = config_for(url, startup_check_seconds=0.5)
        config["providers"]["up"]["timeout"] = 1.5  # the provider's own limit ends the check
        started = time.monotonic()
        with gateway(config) as (gw, app):
            startup = time.monotonic() - started
            assert startup < 0.5 + 1.0, f"start-up took {startup:.2f}s"
            async with (
                connect(f"ws://127.0.0.1:{gw.port}/api/llm/ws/status") as ws,
                httpx.AsyncClient(base_url=gw.url) as http,
            ):
                status = json.loads(await asyncio.wait_for(ws.recv(), 2))
                up = next(p for p in status["providers"] if p["name"] == "up")
                assert up["checked_at"] is None and up["state"] == "HEALTHY"
                await asyncio.wait_for(app.state.checker.startup_done.wait(), 1.0)
                assert time.monotonic() - started < 0.5 + 1.0
                # The check goes on in the background and reports when it ends.
                change = json.loads(await asyncio.wait_for(ws.recv(), 3))
                assert (change["type"], change["provider"], change["state"]) == (
                    "provider_state",
                    "up",
                    "UNHEALTHY",
                )
                detail = (await http.get("/api/llm/providers")).json()["providers"]
                up = next(p for p in detail if p["name"] == "up")
                assert up["checked_at"] is not None and up["error"]["code"] is not None
                assert (await http.get("/health")).json()["status"] == "degraded"


def test_endpoints_need_a_key_when_keys_exist() -> None:
    config = config_for("http://127.0.0.1:9", check_on_startup=False)
    config["auth"] = {"admin_key": "admin-secret-key-123"}
    with gateway(config) as (gw, _):
        denied = httpx.get(f"{gw.url}/api/llm/providers")
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "missing_api_key"
        assert httpx.get(f"{gw.url}/api/llm/health").status_code == 401
        headers = {"Authorization": "Bearer admin-secret-key-123"}
        assert httpx.get(f"{gw.url}/api/llm/providers", headers=headers).status_code == 200
        assert httpx.get(f"{gw.url}/health").status_code == 200  # load balancers need no key


def test_openapi_documents_the_status_endpoints() -> None:
    config = config_for("http://127.0.0.1:9", check_on_startup=False)
    with gateway(config) as (gw, _):
        doc = httpx.get(f"{gw.url}/openapi.json").json()
        for path in ("/health", "/api/llm/providers", "/api/llm/health"):
            assert "200" in doc["paths"][path]["get"]["responses"]
        schemas = doc["components"]["schemas"]
        assert schemas["ProviderInfo"]["examples"][0]["name"] == "openai"
        assert "examples" in schemas["Health"] and "examples" in schemas["ProviderHealth"]
        params = {p["name"] for p in doc["paths"]["/api/llm/health"]["get"]["parameters"]}
        assert params == {"provider", "check"}
