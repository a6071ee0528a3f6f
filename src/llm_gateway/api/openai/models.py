"""``GET /v1/models`` and ``GET /v1/models/{id}`` in OpenAI's shapes.

The list is the configured model names plus ``provider/model`` for every model each
usable provider serves. Upstream listings are fetched concurrently, each under a short
deadline, and cached: a models request never waits on a slow provider more than once per
cache period. Concurrent requests share one fetch per provider (a cold cache hit by many
clients at once asks each upstream once). ``listings()`` is the same cached data for other
views (``/api/models``). Who sees which entries is the routes' business (``model_routes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
from collections.abc import Mapping
from typing import Any

from llm_gateway.core.errors import GatewayError, ModelNotFoundError
from llm_gateway.core.types import ModelInfo
from llm_gateway.providers.base import Provider
from llm_gateway.routing.router import Router

OWNER = "llm-gateway"


def visible_to(model_id: str, patterns: list[str]) -> bool:
    """Whether a key restricted to ``patterns`` (``allowed_models`` globs) may see a model;
    the same matching as the gate's allow-list."""
    return any(fnmatch.fnmatchcase(model_id, pattern) for pattern in patterns)


class ModelCatalog:
    def __init__(
        self,
        router: Router,
        providers: Mapping[str, Provider],
        *,
        ttl: float = 600.0,
        fetch_timeout: float = 3.0,
    ) -> None:
        self._router = router
        self._providers = providers
        self._ttl = ttl
        self._fetch_timeout = fetch_timeout
        self._cache: dict[str, tuple[float, list[ModelInfo]]] = {}
        self._inflight: dict[str, asyncio.Task[list[ModelInfo]]] = {}
        self._created = int(time.time())

    async def _provider_models(self, name: str, provider: Provider) -> list[ModelInfo]:
        cached = self._cache.get(name)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.create_task(self._fetch(name, provider))
            self._inflight[name] = task
            task.add_done_callback(lambda _: self._inflight.pop(name, None))
        # Shielded: a caller that goes away does not cancel the fetch others are awaiting.
        return await asyncio.shield(task)

    async def _fetch(self, name: str, provider: Provider) -> list[ModelInfo]:
        models: list[ModelInfo] = []
        with contextlib.suppress(GatewayError, TimeoutError):
            async with asyncio.timeout(self._fetch_timeout):
                models = await provider.list_models()
        # A failed listing is cached briefly too, so a down provider is not asked per call.
        now = time.monotonic()
        self._cache[name] = (now if models else now - self._ttl + 30.0, models)
        return models

    async def listings(self) -> dict[str, list[ModelInfo]]:
        """Each usable provider's listed models (cached; an empty list when it failed)."""
        names = list(self._providers)
        found = await asyncio.gather(*(self._provider_models(n, self._providers[n]) for n in names))
        return dict(zip(names, found, strict=True))

    async def list(self) -> list[dict[str, Any]]:
        entries = [
            {"id": name, "object": "model", "created": self._created, "owned_by": OWNER}
            for name in self._router.model_names
        ]
        for name, models in (await self.listings()).items():
            entries.extend(
                {
                    "id": f"{name}/{m.id}",
                    "object": "model",
                    "created": m.created or self._created,
                    "owned_by": m.owned_by or name,
                }
                for m in models
            )
        return entries

    async def get(self, model_id: str) -> dict[str, Any]:
        for entry in await self.list():
            if entry["id"] == model_id:
                return entry
        # A name the router can serve (e.g. provider/model not in the listing) still exists.
        try:
            self._router.resolve(model_id)
        except ModelNotFoundError:
            raise ModelNotFoundError(
                f"The model '{model_id}' does not exist.", param="model"
            ) from None
        return {"id": model_id, "object": "model", "created": self._created, "owned_by": OWNER}
