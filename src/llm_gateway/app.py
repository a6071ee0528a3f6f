"""Builds the ASGI application from one validated config.

``create_app(config)`` builds every provider, the router and the HTTP surfaces once and
keeps them on the app; nothing lives in module globals. The returned app is a thin
dispatcher: the hot endpoints (chat completions) are raw ASGI handlers looked up in a
dict, everything else is served by FastAPI (docs, models, health, later the gateway and
admin APIs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response

from llm_gateway import __version__
from llm_gateway.api.asgi import ASGIApp, Receive, Scope, Send
from llm_gateway.api.errors import error_headers, openai_error_body
from llm_gateway.api.openai.handlers import ChatCompletions
from llm_gateway.api.openai.models import ModelCatalog, models_routes
from llm_gateway.api.openai.stream import error_payload
from llm_gateway.api.openai.wire import request_schema
from llm_gateway.api.sse import HeartbeatTicker
from llm_gateway.config.schema import GatewayConfig
from llm_gateway.core.errors import GatewayError, InvalidRequestError
from llm_gateway.providers.base import Provider
from llm_gateway.providers.registry import build_providers
from llm_gateway.routing.router import Router, build_plans
from llm_gateway.runtime import tune_gc

log = logging.getLogger("llm_gateway")

CONFIG_PATH_ENV = "LLM_GATEWAY_CONFIG"


class GatewayState:
    """Everything built from one config load."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.providers, self.unavailable = build_providers(config.providers)
        plans = build_plans(
            {n: [(r.provider, r.model) for r in m.routes] for n, m in config.models.items()},
            self.providers,
            self.unavailable,
            defaults={n: m.defaults for n, m in config.models.items()},
            caps={n: m.max_tokens_cap for n, m in config.models.items()},
        )
        self.router = Router(self.providers, self.unavailable, plans)
        self.ticker = HeartbeatTicker(config.server.heartbeat_seconds)
        self.catalog = ModelCatalog(self.router, self.providers)

    async def aclose(self) -> None:
        await self.ticker.stop()
        providers: list[Provider] = list(self.providers.values())
        await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)


class GatewayApp:
    """Dispatches hot (method, path) pairs to raw handlers, the rest to FastAPI."""

    def __init__(self, state: GatewayState, fast: dict[tuple[str, str], ASGIApp], api: FastAPI):
        self.state = state
        self._fast = fast
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self._fast.get((scope["method"], scope["path"]))
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.api(scope, receive, send)


def _openapi(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the raw chat endpoint, whose schema msgspec generates."""
    if api.openapi_schema:
        return api.openapi_schema
    doc = get_openapi(title=api.title, version=api.version, routes=api.routes)
    schemas = request_schema()
    doc.setdefault("components", {}).setdefault("schemas", {}).update(schemas["components"])
    error = {"$ref": "#/components/schemas/OpenAIError"}
    doc["components"]["schemas"]["OpenAIError"] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
                "required": ["message", "type"],
            }
        },
    }
    doc["paths"]["/v1/chat/completions"] = {
        "post": {
            "tags": ["OpenAI-compatible"],
            "summary": "Create a chat completion",
            "description": "OpenAI's chat completions API. With `stream: true` the answer is "
            "a `text/event-stream` of `chat.completion.chunk` objects ending in `[DONE]`.",
            "operationId": "create_chat_completion",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schemas["schema"]}},
            },
            "responses": {
                "200": {
                    "description": "A chat.completion object, or an SSE stream of chunks.",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **{
                    str(code): {
                        "description": text,
                        "content": {"application/json": {"schema": error}},
                    }
                    for code, text in [
                        (400, "Invalid request"),
                        (404, "Unknown model"),
                        (413, "Body too large"),
                        (429, "Rate limited upstream"),
                        (502, "Provider failed"),
                        (503, "Provider unavailable or overloaded"),
                        (504, "Provider timed out"),
                    ]
                },
            },
        }
    }
    api.openapi_schema = doc
    return doc


def _fastapi(state: GatewayState) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tune_gc()
        state.ticker.start()
        try:
            yield
        finally:
            await state.aclose()

    api = FastAPI(
        title="LLM Gateway",
        version=__version__,
        description="One OpenAI-compatible API in front of every LLM provider.",
        lifespan=lifespan,
    )

    @api.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        rid = request.headers.get("x-request-id", "")
        headers = dict((k.decode(), v.decode()) for k, v in error_headers(exc, rid))
        return Response(openai_error_body(exc), status_code=exc.status, headers=headers)

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        err = InvalidRequestError(f"Invalid value for '{param}': {first.get('msg')}", param=param)
        return JSONResponse(error_payload(err), status_code=400)

    api.include_router(models_routes(state.catalog))

    @api.get("/health", tags=["Gateway"], summary="Liveness and provider summary")
    async def health() -> dict[str, Any]:
        return {
            "status": "healthy" if state.providers else "unhealthy",
            "providers": {
                **{name: "CONFIGURED" for name in state.providers},
                **{name: "NOT_CONFIGURED" for name in state.unavailable},
            },
        }

    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api


def create_app(config: GatewayConfig) -> GatewayApp:
    state = GatewayState(config)
    chat = ChatCompletions(
        state.router,
        max_body_bytes=config.server.max_body_bytes,
        max_messages=config.server.max_messages,
        ticker=state.ticker,
    )
    fast: dict[tuple[str, str], ASGIApp] = {
        ("POST", "/v1/chat/completions"): chat,
        # Clients configured with a base URL without /v1 still work.
        ("POST", "/chat/completions"): chat,
    }
    return GatewayApp(state, fast, _fastapi(state))


def app_from_env() -> GatewayApp:
    """Factory for ``uvicorn --factory`` and multi-worker serving: config from the env."""
    from llm_gateway.config.loader import load_config

    return create_app(load_config(os.environ.get(CONFIG_PATH_ENV) or None))


__all__ = ["GatewayApp", "GatewayState", "app_from_env", "create_app"]
