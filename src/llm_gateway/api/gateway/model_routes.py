"""``GET /api/models`` and ``GET /api/models/categories``.

Both answer from the catalog's cached JSON (see ``models_catalog``). Callers authenticate
as on every user route; a key restricted to some models (``allowed_models`` globs) sees
only those, filtered per request from the cached view.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from llm_gateway.api.gateway.catalog_schema import (
    CATEGORIES_EXAMPLE,
    MODELS_EXAMPLE,
    CatalogModel,
    Categories,
    ModelsList,
)
from llm_gateway.api.gateway.models_catalog import ModelsCatalog, categories_of
from llm_gateway.gate import Caller, Gate

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

_JSON = "application/json"
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
}


def _responses(description: str, example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The routes' OpenAPI responses: an example of the answer, and the errors."""
    ok = {"description": description, "content": {_JSON: {"example": example}}}
    return {200: ok, **_ERRORS}


def _allowed(caller: Caller) -> list[str] | None:
    """The caller's model globs, or None when it may use every model."""
    key = caller.key
    if key is None or not key.allowed_models:
        return None
    return list(key.allowed_models)


def _visible(entries: list[CatalogModel], patterns: list[str]) -> list[CatalogModel]:
    return [e for e in entries if any(fnmatch.fnmatchcase(e.id, p) for p in patterns)]


def catalog_routes(state: GatewayState, catalog: ModelsCatalog | None = None) -> APIRouter:
    """The catalog endpoints over ``state`` (its config, model table and model listings)."""
    if catalog is None:
        catalog = ModelsCatalog(state.config, state.table, state.catalog, state.providers)
    gate: Gate = state.gate
    router = APIRouter(tags=["Gateway"])

    def authenticate(request: Request) -> Caller:
        return gate.authenticate(request.scope)

    # A default, not an Annotated alias: with postponed annotations FastAPI resolves
    # annotation names in module globals, where this closure is not.
    authenticated = Depends(authenticate)

    @router.get(
        "/api/models",
        summary="Every model the gateway can serve",
        description="Configured model names and 'provider/model' for every usable "
        "provider's models, each with context window, prices per 1M tokens (and the date "
        "they were taken), capabilities and cost tier. Served from the cached model list: "
        "no upstream call per request.",
        response_model=ModelsList,
        responses=_responses("The catalog (filtered to the key's allowed models)", MODELS_EXAMPLE),
    )
    async def list_models(caller: Caller = authenticated) -> Response:
        patterns = _allowed(caller)
        if patterns is None:
            return Response(await catalog.models_json(), media_type=_JSON)
        full = await catalog.models()
        mine = full.model_copy(update={"data": _visible(full.data, patterns)})
        return Response(mine.model_dump_json(), media_type=_JSON)

    @router.get(
        "/api/models/categories",
        summary="Model ids grouped by capability and by cost tier",
        description="Groups: chat, tools, vision, reasoning, coding, embeddings; cost tiers "
        "free, low, medium, high, unknown (blended price (3 x input + output) / 4 per 1M "
        "tokens: low below $1, medium below $5, high from $5).",
        response_model=Categories,
        responses=_responses("The groups (of the key's allowed models)", CATEGORIES_EXAMPLE),
    )
    async def model_categories(caller: Caller = authenticated) -> Response:
        patterns = _allowed(caller)
        if patterns is None:
            return Response(await catalog.categories_json(), media_type=_JSON)
        full = await catalog.models()
        mine = categories_of(_visible(full.data, patterns), full.prices_as_of)
        return Response(mine.model_dump_json(), media_type=_JSON)

    return router
