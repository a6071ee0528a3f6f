"""FastAPI routes for ``GET /v1/models`` and ``GET /v1/models/{id}``.

Like every user route they need a key unless the gateway is in open mode, and a key
restricted to some models (``allowed_models`` globs) sees only those: listing a model it
may not call would only invite a 403, and the names themselves are not every tenant's
business.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from llm_gateway.api.openai.models import ModelCatalog, visible_to
from llm_gateway.core.errors import ModelNotFoundError
from llm_gateway.gate import Gate

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key"},
}


def models_routes(catalog: ModelCatalog, gate: Gate | None = None) -> APIRouter:
    """``gate``: who may list (None: anyone, for tests of the catalog alone)."""
    router = APIRouter(tags=["OpenAI-compatible"])

    def patterns(request: Request) -> list[str] | None:
        if gate is None:
            return None
        key = gate.authenticate(request.scope).key
        return list(key.allowed_models) if key is not None and key.allowed_models else None

    @router.get("/v1/models", summary="List models", responses=_ERRORS)
    async def list_models(request: Request) -> dict[str, Any]:
        allowed = patterns(request)
        entries = await catalog.list()
        if allowed is not None:
            entries = [e for e in entries if visible_to(e["id"], allowed)]
        return {"object": "list", "data": entries}

    @router.get(
        "/v1/models/{model_id:path}",
        summary="Retrieve a model",
        responses={**_ERRORS, 404: {"description": "No such model, or not allowed"}},
    )
    async def get_model(request: Request, model_id: str) -> dict[str, Any]:
        allowed = patterns(request)
        if allowed is not None and not visible_to(model_id, allowed):
            # 404 rather than 403: a restricted key learns nothing about other models.
            raise ModelNotFoundError(f"The model '{model_id}' does not exist.", param="model")
        return await catalog.get(model_id)

    return router
