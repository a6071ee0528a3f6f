"""Response models of ``GET /api/models`` and ``GET /api/models/categories``.

Pydantic, so the OpenAPI document carries their schemas and examples; the catalog builds
these objects once per change of the model list and serves their JSON from a cache.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Capability = Literal["chat", "tools", "vision", "reasoning", "coding", "embeddings"]
CostTier = Literal["free", "low", "medium", "high", "unknown"]
PriceSource = Literal["table", "config", "unknown"]

CAPABILITIES: tuple[Capability, ...] = (
    "chat",
    "tools",
    "vision",
    "reasoning",
    "coding",
    "embeddings",
)
COST_TIERS: tuple[CostTier, ...] = ("free", "low", "medium", "high", "unknown")

_FORBID = ConfigDict(extra="forbid")

# Examples for the OpenAPI document: on the schemas, and as the routes' response examples.
MODEL_EXAMPLE: dict[str, Any] = {
    "id": "anthropic/claude-sonnet-4-5",
    "kind": "route",
    "providers": ["anthropic"],
    "routes": ["anthropic/claude-sonnet-4-5"],
    "listed": True,
    "context_window": 200000,
    "max_output_tokens": 64000,
    "prices": {
        "input": 3.0,
        "output": 15.0,
        "cached_input": 0.3,
        "cache_write": 3.75,
    },
    "prices_as_of": "2025-10-15",
    "price_source": "table",
    "capabilities": ["chat", "tools", "vision", "reasoning", "coding"],
    "cost_tier": "high",
}
MODELS_EXAMPLE: dict[str, Any] = {
    "object": "list",
    "data": [MODEL_EXAMPLE],
    "prices_as_of": "2025-10-15",
    "currency": "USD",
    "unit": "per 1M tokens",
    "cost_tiers": {
        "blend": "(3 * input + output) / 4",
        "low_below": 1.0,
        "medium_below": 5.0,
        "free": "input and output price both 0",
        "unknown": "input or output price unknown",
    },
}
CATEGORIES_EXAMPLE: dict[str, Any] = {
    "capabilities": {
        "chat": ["fast", "openai/gpt-4o-mini"],
        "tools": ["fast", "openai/gpt-4o-mini"],
        "vision": ["fast", "openai/gpt-4o-mini"],
        "reasoning": [],
        "coding": [],
        "embeddings": ["openai/text-embedding-3-small"],
    },
    "cost_tiers": {
        "free": [],
        "low": ["fast", "openai/gpt-4o-mini", "openai/text-embedding-3-small"],
        "medium": [],
        "high": [],
        "unknown": [],
    },
    "prices_as_of": "2025-10-15",
    "count": 3,
}


class ModelPrices(BaseModel):
    """USD per 1M tokens; null is unknown."""

    model_config = _FORBID

    input: float | None = Field(None, description="Uncached prompt tokens.")
    output: float | None = Field(None, description="Completion tokens, reasoning included.")
    cached_input: float | None = Field(
        None, description="Prompt tokens read from a cache (null: no discount or unknown)."
    )
    cache_write: float | None = Field(None, description="Prompt tokens written to a cache.")


class TierRule(BaseModel):
    """How cost tiers are assigned: the blended price of 3 input tokens to 1 output token."""

    model_config = _FORBID

    blend: str = Field(description="The blended price formula, USD per 1M tokens.")
    low_below: float
    medium_below: float
    free: str
    unknown: str


class CatalogModel(BaseModel):
    """One model the gateway can serve."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [MODEL_EXAMPLE]},
    )

    id: str = Field(description="The name to send as 'model'.")
    kind: Literal["model", "route"] = Field(
        description="'model': a name from the config's models; 'route': 'provider/model'."
    )
    providers: list[str] = Field(description="Configured providers that serve it.")
    routes: list[str] = Field(description="The 'provider/model' targets behind it.")
    listed: bool = Field(
        description="Whether every route appeared in its provider's model listing "
        "(false for a configured route the provider did not list)."
    )
    context_window: int | None = Field(
        None, description="Prompt plus completion tokens (the smallest of its routes)."
    )
    max_output_tokens: int | None = None
    prices: ModelPrices
    prices_as_of: str | None = Field(
        None, description="The date the shipped prices were taken; null for config prices."
    )
    price_source: PriceSource
    capabilities: list[Capability] = Field(
        description="Capabilities every route of the model has (known from the model table, "
        "or guessed from the model name when the table has no row)."
    )
    cost_tier: CostTier


class ModelsList(BaseModel):
    """Every model the gateway can serve, with context window, prices and capabilities."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [MODELS_EXAMPLE]})

    object: Literal["list"] = "list"
    data: list[CatalogModel]
    prices_as_of: str | None = Field(description="The date of the shipped price table.")
    currency: Literal["USD"] = "USD"
    unit: Literal["per 1M tokens"] = "per 1M tokens"
    cost_tiers: TierRule


class Categories(BaseModel):
    """Model ids grouped by capability and by cost tier (every group present, maybe empty)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [CATEGORIES_EXAMPLE]},
    )

    capabilities: dict[Capability, list[str]]
    cost_tiers: dict[CostTier, list[str]]
    prices_as_of: str | None
    count: int = Field(description="Models in the catalog.")
