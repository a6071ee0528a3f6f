"""GET /api/models and /api/models/categories over a real socket, with a fake OpenAI upstream.

The gateway's FastAPI app is assembled by ``fastapi_app.build_api``; these tests mount the
catalog router on an app of their own so they exercise exactly these endpoints.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from llm_gateway.api.gateway.catalog_schema import Categories, ModelsList
from llm_gateway.api.gateway.model_routes import catalog_routes
from llm_gateway.api.gateway.models_catalog import ModelsCatalog
from llm_gateway.api.openai.models import ModelCatalog
from llm_gateway.app import GatewayState
from llm_gateway.config.schema import GatewayConfig
from llm_gateway.core.errors import GatewayError
from llm_gateway.gate.keys import KeyRing, mint_key
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.server import RunningServer, run_server

LISTED = ("gpt-4o-mini", "text-embedding-3-small", "qwen2.5-coder-32b", "mystery-model")


def _config(upstream_url: str) -> dict[str, Any]:
    return {
        "providers": {
            "oa": {"type": "openai", "api_key": "k", "base_url": f"{upstream_url}/v1"},
            "mock": {"type": "mock", "chunk_delay_ms": 0},
            "claude": {"type": "anthropic"},  # no key: NOT_CONFIGURED, so not servable
        },
        "models": {
            "fast": {"routes": ["oa/gpt-4o-mini"]},
            "mixed": {"routes": ["oa/gpt-4o", "mock/mock-1"]},
            "sonnet": {"routes": ["claude/claude-sonnet-4-5"]},
        },
        "model_table": {"openai/gpt-4o": {"prices": {"output": 12.0}}},
    }


@contextmanager
def serve_catalog(
    config: dict[str, Any], ttl: float = 600.0, keys: KeyRing | None = None
) -> Iterator[RunningServer]:
    state = GatewayState(GatewayConfig.model_validate(config))
    if keys is not None:
        state.gate.set_keys(keys)
    listings = ModelCatalog(state.router, state.providers, ttl=ttl)
    catalog = ModelsCatalog(state.config, state.table, listings, state.providers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await state.aclose()

    api = FastAPI(lifespan=lifespan)

    @api.exception_handler(GatewayError)
    async def _error(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code}}, status_code=exc.status)

    api.include_router(catalog_routes(state, catalog))
    with run_server(api, lifespan="on") as server:
        yield server


def _listing_calls(upstream: OpenAIUpstream) -> int:
    return sum(1 for r in upstream.requests if r.method == "GET" and r.path.endswith("/models"))


def test_models_and_categories_content() -> None:
    upstream = OpenAIUpstream("openai", api_key="k", models=LISTED)
    with run_server(upstream) as up, serve_catalog(_config(up.url)) as gw:
        r = httpx.get(f"{gw.url}/api/models", timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = ModelsList.model_validate(r.json())  # the documented schema, exactly
        assert body.prices_as_of == "2025-10-15" and body.currency == "USD"
        by_id = {m.id: m for m in body.data}
        assert list(by_id) == [
            "fast",
            "mixed",
            "oa/gpt-4o-mini",
            "oa/text-embedding-3-small",
            "oa/qwen2.5-coder-32b",
            "oa/mystery-model",
            "oa/gpt-4o",  # a configured route the provider did not list
            "mock/mock-1",
        ]
        fast = by_id["fast"]
        assert (fast.kind, fast.providers, fast.routes) == ("model", ["oa"], ["oa/gpt-4o-mini"])
        assert (fast.context_window, fast.max_output_tokens) == (128000, 16384)
        assert (fast.prices.input, fast.prices.output, fast.prices.cached_input) == (
            0.15,
            0.6,
            0.075,
        )
        assert fast.capabilities == ["chat", "tools", "vision"]
        assert (fast.cost_tier, fast.price_source, fast.prices_as_of) == (
            "low",
            "table",
            "2025-10-15",
        )
        # Two routes: what holds on both, at the dearer route's prices (config's $12 output).
        mixed = by_id["mixed"]
        assert mixed.providers == ["oa", "mock"] and mixed.listed is False
        assert (mixed.prices.input, mixed.prices.output) == (2.5, 12.0)
        assert mixed.price_source == "config" and mixed.prices_as_of is None
        assert mixed.context_window == 128000 and mixed.cost_tier == "medium"
        assert mixed.capabilities == ["chat", "tools", "vision"]
        embed = by_id["oa/text-embedding-3-small"]
        assert embed.capabilities == ["embeddings"] and embed.cost_tier == "low"
        coder = by_id["oa/qwen2.5-coder-32b"]  # not in the table: guessed from its name
        assert coder.capabilities == ["chat", "coding"] and coder.cost_tier == "unknown"
        assert coder.price_source == "unknown" and coder.context_window is None
        mock = by_id["mock/mock-1"]
        assert mock.cost_tier == "free" and mock.listed is True
        assert "sonnet" not in by_id and not any(i.startswith("claude/") for i in by_id)

        r = httpx.get(f"{gw.url}/api/models/categories", timeout=10)
        assert r.status_code == 200
        cats = Categories.model_validate(r.json())
        assert cats.count == 8
        assert cats.capabilities["embeddings"] == ["oa/text-embedding-3-small"]
        assert cats.capabilities["coding"] == ["oa/qwen2.5-coder-32b"]
        assert "oa/text-embedding-3-small" not in cats.capabilities["chat"]
        assert cats.capabilities["reasoning"] == []
        assert cats.cost_tiers["free"] == ["mock/mock-1"]
        assert cats.cost_tiers["low"] == ["fast", "oa/gpt-4o-mini", "oa/text-embedding-3-small"]
        assert cats.cost_tiers["medium"] == ["mixed", "oa/gpt-4o"]
        assert cats.cost_tiers["high"] == []
        assert cats.cost_tiers["unknown"] == ["oa/qwen2.5-coder-32b", "oa/mystery-model"]


def test_upstream_listing_is_fetched_once_across_many_requests() -> None:
    upstream = OpenAIUpstream("openai", api_key="k", models=LISTED)
    with run_server(upstream) as up, serve_catalog(_config(up.url)) as gw:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
                paths = ["/api/models", "/api/models/categories"] * 25
                return await asyncio.gather(*(client.get(p) for p in paths))

        # A cold cache hit by 50 concurrent requests still asks the upstream once.
        responses = asyncio.run(burst())
        assert all(r.status_code == 200 for r in responses)
        assert len({r.content for r in responses[0::2]}) == 1  # one cached view
        for _ in range(20):
            assert httpx.get(f"{gw.url}/api/models", timeout=10).status_code == 200
        assert _listing_calls(upstream) == 1


def test_listing_is_refetched_after_the_ttl_and_changes_show() -> None:
    upstream = OpenAIUpstream("openai", api_key="k", models=("gpt-4o-mini",))
    with run_server(upstream) as up, serve_catalog(_config(up.url), ttl=0.3) as gw:
        first = httpx.get(f"{gw.url}/api/models", timeout=10).json()
        assert "oa/gpt-4.1" not in {m["id"] for m in first["data"]}
        upstream.models = ("gpt-4o-mini", "gpt-4.1")
        assert httpx.get(f"{gw.url}/api/models", timeout=10).json() == first  # still cached
        time.sleep(0.4)
        later = {m["id"]: m for m in httpx.get(f"{gw.url}/api/models", timeout=10).json()["data"]}
        assert later["oa/gpt-4.1"]["capabilities"] == ["chat", "tools", "vision", "coding"]
        assert later["oa/gpt-4.1"]["context_window"] == 1047576
        assert _listing_calls(upstream) == 2


def test_a_failing_listing_still_serves_configured_routes() -> None:
    upstream = OpenAIUpstream("openai", api_key="other", models=LISTED)  # answers 401
    with run_server(upstream) as up, serve_catalog(_config(up.url)) as gw:
        r = httpx.get(f"{gw.url}/api/models", timeout=10)
        assert r.status_code == 200
        ids = [m["id"] for m in r.json()["data"]]
        assert ids == ["fast", "mixed", "oa/gpt-4o-mini", "oa/gpt-4o", "mock/mock-1"]
        assert all(m["listed"] is False for m in r.json()["data"][:2])


def test_keys_authenticate_and_see_only_their_models() -> None:
    upstream = OpenAIUpstream("openai", api_key="k", models=LISTED)
    secret, record = mint_key("app", allowed_models=["fast", "oa/gpt-4o*"])
    with run_server(upstream) as up, serve_catalog(_config(up.url), keys=KeyRing([record])) as gw:
        for path in ("/api/models", "/api/models/categories"):
            missing = httpx.get(f"{gw.url}{path}", timeout=10)
            assert missing.status_code == 401
            assert missing.json()["error"]["code"] == "missing_api_key"
        auth = {"Authorization": f"Bearer {secret}"}
        r = httpx.get(f"{gw.url}/api/models", headers=auth, timeout=10)
        assert r.status_code == 200
        assert [m["id"] for m in r.json()["data"]] == ["fast", "oa/gpt-4o-mini", "oa/gpt-4o"]
        cats = httpx.get(f"{gw.url}/api/models/categories", headers=auth, timeout=10).json()
        assert cats["count"] == 3
        assert cats["cost_tiers"]["low"] == ["fast", "oa/gpt-4o-mini"]
        assert cats["capabilities"]["embeddings"] == []


def test_openapi_documents_both_endpoints_with_schemas() -> None:
    upstream = OpenAIUpstream("openai", api_key="k", models=LISTED)
    with run_server(upstream) as up, serve_catalog(_config(up.url)) as gw:
        doc = httpx.get(f"{gw.url}/openapi.json", timeout=10).json()
    for path, schema in [("/api/models", "ModelsList"), ("/api/models/categories", "Categories")]:
        ok = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"] == {"$ref": f"#/components/schemas/{schema}"}
        # A response example that is a valid answer (the schema's own model accepts it).
        model = ModelsList if schema == "ModelsList" else Categories
        assert model.model_validate(ok["example"]).model_dump(mode="json") == ok["example"]
        assert doc["components"]["schemas"][schema]["examples"] == [ok["example"]]
    schemas = doc["components"]["schemas"]
    assert schemas["CatalogModel"]["examples"][0]["id"] == "anthropic/claude-sonnet-4-5"
    assert schemas["Categories"]["examples"][0]["capabilities"]["embeddings"]
    assert set(schemas["CatalogModel"]["properties"]["capabilities"]["items"]["enum"]) == {
        "chat",
        "tools",
        "vision",
        "reasoning",
        "coding",
        "embeddings",
    }
