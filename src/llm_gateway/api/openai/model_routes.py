"""FastAPI routes for ``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from llm_gateway.api.openai.models import ModelCatalog


def models_routes(catalog: ModelCatalog) -> APIRouter:
    router = APIRouter(tags=["OpenAI-compatible"])

    @router.get("/v1/models", summary="List models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": await catalog.list()}

    @router.get("/v1/models/{model_id:path}", summary="Retrieve a model")
    async def get_model(model_id: str) -> dict[str, Any]:
        return await catalog.get(model_id)

    return router
