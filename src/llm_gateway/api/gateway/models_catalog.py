"""The model catalog behind ``/api/models``: what the gateway can serve, what it costs.

Entries are the configured model names (``models:``) and ``provider/model`` for every model
each usable provider lists, plus configured routes a provider did not list (Bedrock lists
nothing; a listing may have failed). Facts come from the model table (shipped rows and the
config's ``model_table:`` overrides); the provider listings come from ``ModelCatalog``, the
same TTL cache ``/v1/models`` uses, so requests never cause upstream calls of their own. The
view is rebuilt only when a listing changes and is served as cached JSON bytes.

A configured model with several routes reports what holds whichever route serves it: the
capabilities all routes share, the smallest context window and output cap, and per price
the dearest route (unknown if any route's price is unknown).

Capabilities: ``chat`` is every model that is not an embedding model; ``tools``, ``vision``,
``reasoning``, ``coding`` and ``embeddings`` come from the table. For a model the table
has no value for, ``coding``, ``embeddings``, ``reasoning`` and ``vision`` are guessed from
its name (``*coder*``, Codestral, Devstral, Codex, Claude; ``*embed*``; o1/o3/o4, R1,
``reasoner``, ``thinking``, QwQ; ``vision``, ``-vl``, Pixtral) and ``tools`` is left out.

Cost tier, from the blended price ``(3 x input + output) / 4`` in USD per 1M tokens (a
prompt-heavy 3:1 mix): ``free`` when input and output are both 0; ``low`` below 1.0
(gpt-4o-mini, DeepSeek, Llama on Groq); ``medium`` below 5.0 (gpt-4o, gpt-4.1, o3,
Gemini 2.5 Pro, Claude Haiku 4.5); ``high`` from 5.0 (Claude Sonnet and Opus); ``unknown``
when the input or output price is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from llm_gateway.api.gateway.catalog_schema import (
    CAPABILITIES,
    COST_TIERS,
    Capability,
    CatalogModel,
    Categories,
    CostTier,
    ModelPrices,
    ModelsList,
    PriceSource,
    TierRule,
)
from llm_gateway.api.openai.models import ModelCatalog
from llm_gateway.config.schema import GatewayConfig
from llm_gateway.core.types import ModelInfo as ListedModel
from llm_gateway.routing.model_table import ModelInfo, ModelTable

LOW_BELOW = 1.0
MEDIUM_BELOW = 5.0
TIER_RULE = TierRule(
    blend="(3 * input + output) / 4",
    low_below=LOW_BELOW,
    medium_below=MEDIUM_BELOW,
    free="input and output price both 0",
    unknown="input or output price unknown",
)

_CODING = re.compile(r"coder|codestral|devstral|codex|code-?llama|claude", re.IGNORECASE)
_EMBEDDINGS = re.compile(r"embed", re.IGNORECASE)
_REASONING = re.compile(
    r"(?:^|[/.\-_])(?:o[134]|r1)(?:$|[\-_:.])|reason|thinking|qwq|magistral", re.IGNORECASE
)
_VISION = re.compile(r"vision|(?:^|[\-_])vl(?:$|[\-_])|pixtral|llava", re.IGNORECASE)


def cost_tier(prices: ModelPrices) -> CostTier:
    """The tier of ``prices`` (rule in the module docs)."""
    price_in, price_out = prices.input, prices.output
    if price_in is None or price_out is None:
        return "unknown"
    if price_in == 0 and price_out == 0:
        return "free"
    blended = (3 * price_in + price_out) / 4
    if blended < LOW_BELOW:
        return "low"
    return "medium" if blended < MEDIUM_BELOW else "high"


_FLAGS: tuple[Capability, ...] = ("tools", "vision", "reasoning", "coding", "embeddings")
_GUESSES: dict[Capability, re.Pattern[str]] = {
    "embeddings": _EMBEDDINGS,
    "coding": _CODING,
    "reasoning": _REASONING,
    "vision": _VISION,
}


def capabilities_of(model: str, info: ModelInfo | None) -> set[Capability]:
    """What one route can do: the table's flags, the name's hints where the table is silent."""
    found: set[Capability] = set()
    for name in _FLAGS:
        value: bool | None = getattr(info.capabilities, name) if info is not None else None
        if value is None:
            guess = _GUESSES.get(name)
            value = guess is not None and guess.search(model) is not None
        if value:
            found.add(name)
    if "embeddings" not in found:
        found.add("chat")
    return found


@dataclass(frozen=True)
class _Route:
    provider: str
    model: str
    info: ModelInfo | None
    listed: bool

    @property
    def target(self) -> str:
        return f"{self.provider}/{self.model}"


def _dearest(values: Iterable[float | None]) -> float | None:
    found = list(values)
    if not found or any(v is None for v in found):
        return None
    return max(v for v in found if v is not None)


def _smallest(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


class ModelsCatalog:
    """Builds and caches the ``/api/models`` view from config, table and provider listings."""

    def __init__(
        self,
        config: GatewayConfig,
        table: ModelTable,
        listings: ModelCatalog,
        usable: Collection[str],
    ) -> None:
        self._config = config
        self._table = table
        self._shipped = ModelTable.shipped()
        self._listings = listings
        self._usable = [name for name in config.providers if name in usable]
        self._key: tuple[int, ...] | None = None
        self._models: ModelsList | None = None
        self._categories: Categories | None = None
        self._models_json = b""
        self._categories_json = b""

    async def models(self) -> ModelsList:
        await self._refresh()
        assert self._models is not None
        return self._models

    async def models_json(self) -> bytes:
        await self._refresh()
        return self._models_json

    async def categories_json(self) -> bytes:
        await self._refresh()
        return self._categories_json

    async def _refresh(self) -> None:
        listings = await self._listings.listings()
        # The catalog keeps a listing's list object until it fetches anew: identity is a
        # cheap, exact "nothing changed" test.
        key = tuple(id(listings.get(name)) for name in self._usable)
        if key == self._key and self._models is not None:
            return
        entries = self.build(listings)
        self._models = ModelsList(
            data=entries, prices_as_of=self._table.prices_as_of, cost_tiers=TIER_RULE
        )
        self._categories = categories_of(entries, self._table.prices_as_of)
        self._models_json = self._models.model_dump_json().encode()
        self._categories_json = self._categories.model_dump_json().encode()
        self._key = key

    def _route(self, provider: str, model: str, listed: bool) -> _Route:
        ptype = self._config.providers[provider].type
        return _Route(provider, model, self._table.get(ptype, model), listed)

    def build(self, listings: Mapping[str, list[ListedModel]]) -> list[CatalogModel]:
        """The catalog entries for these provider listings (pure; no I/O)."""
        listed = {name: [m.id for m in listings.get(name, [])] for name in self._usable}
        listed_sets = {name: set(ids) for name, ids in listed.items()}
        entries: list[CatalogModel] = []
        for name, model in self._config.models.items():
            routes = [
                self._route(r.provider, r.model, r.model in listed_sets.get(r.provider, ()))
                for r in model.routes
                if r.provider in listed_sets
            ]
            if routes:
                entries.append(self._entry(name, "model", routes))
        seen = {entry.id for entry in entries}
        for provider in self._usable:
            extra = [
                r.model
                for m in self._config.models.values()
                for r in m.routes
                if r.provider == provider and r.model not in listed_sets[provider]
            ]
            for model_id in [*listed[provider], *dict.fromkeys(extra)]:
                route = self._route(provider, model_id, model_id in listed_sets[provider])
                if route.target not in seen:
                    seen.add(route.target)
                    entries.append(self._entry(route.target, "route", [route]))
        return entries

    def _source(self, routes: list[_Route]) -> tuple[PriceSource, str | None]:
        if any(r.info is None or not r.info.priced for r in routes):
            return "unknown", None
        for r in routes:
            assert r.info is not None
            shipped = self._shipped.get(r.info.provider_type, r.info.model)
            if shipped is not r.info:
                return "config", None
        return "table", self._table.prices_as_of

    def _entry(self, entry_id: str, kind: str, routes: list[_Route]) -> CatalogModel:
        infos = [r.info for r in routes]
        prices = ModelPrices(
            input=_dearest(i.prices.input if i else None for i in infos),
            output=_dearest(i.prices.output if i else None for i in infos),
            cached_input=_dearest(i.prices.cached_input if i else None for i in infos),
            cache_write=_dearest(i.prices.cache_write if i else None for i in infos),
        )
        shared = set.intersection(*(capabilities_of(r.model, r.info) for r in routes))
        source, as_of = self._source(routes)
        return CatalogModel(
            id=entry_id,
            kind="model" if kind == "model" else "route",
            providers=list(dict.fromkeys(r.provider for r in routes)),
            routes=[r.target for r in routes],
            listed=all(r.listed for r in routes),
            context_window=_smallest(i.context_window if i else None for i in infos),
            max_output_tokens=_smallest(i.max_output_tokens if i else None for i in infos),
            prices=prices,
            prices_as_of=as_of,
            price_source=source,
            capabilities=[c for c in CAPABILITIES if c in shared],
            cost_tier=cost_tier(prices),
        )


def categories_of(entries: Iterable[CatalogModel], prices_as_of: str | None) -> Categories:
    """Model ids grouped by capability and by cost tier, in catalog order."""
    by_capability: dict[Capability, list[str]] = {c: [] for c in CAPABILITIES}
    by_tier: dict[CostTier, list[str]] = {t: [] for t in COST_TIERS}
    count = 0
    for entry in entries:
        count += 1
        for capability in entry.capabilities:
            by_capability[capability].append(entry.id)
        by_tier[entry.cost_tier].append(entry.id)
    return Categories(
        capabilities=by_capability, cost_tiers=by_tier, prices_as_of=prices_as_of, count=count
    )
