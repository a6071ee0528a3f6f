"""Cost tiers, capabilities and categories of the /api/models catalog (pure functions)."""

from __future__ import annotations

import pytest

from llm_gateway.api.gateway.catalog_schema import CatalogModel, ModelPrices
from llm_gateway.api.gateway.models_catalog import capabilities_of, categories_of, cost_tier
from llm_gateway.routing.model_table import ModelTable

TABLE = ModelTable.shipped()


@pytest.mark.parametrize(
    ("price_in", "price_out", "tier"),
    [
        (0, 0, "free"),
        (None, 1.0, "unknown"),
        (1.0, None, "unknown"),
        (0.15, 0.60, "low"),  # gpt-4o-mini
        (0.0, 3.99, "low"),  # blended 0.9975
        (0.0, 4.0, "medium"),  # blended exactly 1.0
        (2.5, 10.0, "medium"),  # gpt-4o
        (1.0, 17.0, "high"),  # blended exactly 5.0
        (3.0, 15.0, "high"),  # Claude Sonnet
    ],
)
def test_cost_tier_thresholds(price_in: float | None, price_out: float | None, tier: str) -> None:
    assert cost_tier(ModelPrices(input=price_in, output=price_out)) == tier


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("openai/gpt-4o-mini", {"chat", "tools", "vision"}),
        ("openai/o3", {"chat", "tools", "vision", "reasoning", "coding"}),
        ("anthropic/claude-3-5-haiku", {"chat", "tools", "vision", "coding"}),
        ("deepseek/deepseek-reasoner", {"chat", "reasoning", "coding"}),
        ("mistral/codestral-latest", {"chat", "tools", "coding"}),
        ("gemini/gemini-embedding-001", {"embeddings"}),
        ("groq/llama-3.1-8b-instant", {"chat", "tools"}),
    ],
)
def test_capabilities_from_the_table(key: str, expected: set[str]) -> None:
    provider_type, _, model = key.partition("/")
    assert capabilities_of(model, TABLE.get(provider_type, model)) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("qwen2.5-coder-32b-instruct", {"chat", "coding"}),
        ("gpt-5-codex", {"chat", "coding"}),
        ("devstral-small", {"chat", "coding"}),
        ("nomic-embed-text", {"embeddings"}),
        ("deepseek-r1-distill-llama-70b", {"chat", "reasoning"}),
        ("o1-preview", {"chat", "reasoning"}),
        ("qwen2.5-vl-72b", {"chat", "vision"}),
        ("llama-3.3-70b", {"chat"}),
        ("broad-model", {"chat"}),  # "o1" inside a word is not a reasoning hint
    ],
)
def test_capabilities_guessed_from_unknown_names(model: str, expected: set[str]) -> None:
    assert capabilities_of(model, None) == expected


def test_categories_keep_every_group_and_catalog_order() -> None:
    def entry(model_id: str, caps: list[str], tier: str) -> CatalogModel:
        return CatalogModel.model_validate(
            {
                "id": model_id,
                "kind": "route",
                "providers": ["p"],
                "routes": [model_id],
                "listed": True,
                "prices": {},
                "price_source": "unknown",
                "capabilities": caps,
                "cost_tier": tier,
            }
        )

    cats = categories_of(
        [entry("b", ["chat", "coding"], "low"), entry("a", ["embeddings"], "low")], "2025-10-15"
    )
    assert cats.count == 2
    assert cats.capabilities == {
        "chat": ["b"],
        "tools": [],
        "vision": [],
        "reasoning": [],
        "coding": ["b"],
        "embeddings": ["a"],
    }
    assert cats.cost_tiers == {
        "free": [],
        "low": ["b", "a"],
        "medium": [],
        "high": [],
        "unknown": [],
    }
