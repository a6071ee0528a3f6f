"""The FastAPI application behind every endpoint that is not on the hot path.

Docs, models, health (and later the gateway, admin and WebSocket APIs) are served by
FastAPI. Importing FastAPI costs ~0.4 s, so ``GatewayApp`` builds this in a background
thread at start-up: the chat endpoints answer before it is ready (see app.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_gateway import __version__
from llm_gateway.api.admin import admin_routes
from llm_gateway.api.anthropic.openapi import anthropic_openapi
from llm_gateway.api.errors import error_headers, http_error, openai_error_body
from llm_gateway.api.gateway.generate_routes import generate_routes
from llm_gateway.api.gateway.model_routes import catalog_routes
from llm_gateway.api.gateway.status_routes import status_routes
from llm_gateway.api.openai.model_routes import models_routes
from llm_gateway.api.openai.stream import error_payload
from llm_gateway.api.openai.wire import request_schema
from llm_gateway.api.ws.chat import OPENAPI_TAG as WS_CHAT_TAG
from llm_gateway.api.ws.chat import chat_ws_routes
from llm_gateway.api.ws.status import status_ws_routes
from llm_gateway.core.errors import GatewayError, InvalidRequestError

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState


def _chat_completions_doc(schemas: dict[str, Any]) -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/OpenAIError"}
    return {
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


_OPENAI_ERROR_SCHEMA = {
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


def _openapi(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the raw chat endpoint, whose schema msgspec generates."""
    if api.openapi_schema:
        return api.openapi_schema
    doc = get_openapi(title=api.title, version=api.version, routes=api.routes)
    schemas = request_schema()
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(schemas["components"])
    components["OpenAIError"] = _OPENAI_ERROR_SCHEMA
    chat = _chat_completions_doc(schemas)
    doc["paths"]["/v1/chat/completions"] = chat
    paths, anthropic_components = anthropic_openapi()
    components.update(anthropic_components)
    doc["paths"].update(paths)
    # FastAPI leaves WebSocket routes out of OpenAPI: their protocols are described as tags.
    doc.setdefault("tags", []).append(WS_CHAT_TAG)
    api.openapi_schema = doc
    return doc


def build_api(state: GatewayState) -> FastAPI:
    api = FastAPI(
        title="LLM Gateway",
        version=__version__,
        description="One OpenAI-compatible API in front of every LLM provider.",
    )

    @api.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        rid = request.headers.get("x-request-id", "")
        headers = {k.decode(): v.decode() for k, v in error_headers(exc, rid)}
        return Response(openai_error_body(exc), status_code=exc.status, headers=headers)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths and wrong methods answer in the same error shape as everything else.
        err = http_error(exc.status_code, request.method, request.url.path)
        headers = dict(exc.headers or {})
        headers["x-request-id"] = request.headers.get("x-request-id", "")
        return JSONResponse(error_payload(err), status_code=exc.status_code, headers=headers)

    @api.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        err = InvalidRequestError(f"Invalid value for '{param}': {first.get('msg')}", param=param)
        return JSONResponse(error_payload(err), status_code=400)

    api.include_router(models_routes(state.catalog, state.gate))
    api.include_router(admin_routes(state))
    api.include_router(generate_routes(state))
    api.include_router(catalog_routes(state))
    api.include_router(chat_ws_routes(state))

    # /health, /api/llm/providers, /api/llm/health and the live status feed (status/).
    api.include_router(status_routes(state))
    api.include_router(status_ws_routes(state))

    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api
