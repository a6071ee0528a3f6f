"""Cost from each provider's own usage figures, through its wire normalisation, to dollars.

Each case starts from the usage object the upstream sends, normalises it with the adapter's
``usage_from_wire`` (as the gateway does) and prices it with the shipped table, so a change
in either the accounting or the normalisation that breaks billing fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from llm_gateway.config import GatewayConfig
from llm_gateway.core.types import Usage
from llm_gateway.providers import anthropic_wire, gemini_wire, openai_wire
from llm_gateway.providers.bedrock import wire as bedrock_wire
from llm_gateway.routing.model_table import (
    LongContextPrices,
    ModelInfo,
    ModelTable,
    Prices,
    usage_cost,
)

TABLE = ModelTable.shipped()


def _cost(provider_type: str, model: str, usage: Usage) -> float | None:
    return usage_cost(usage, TABLE.get(provider_type, model))


def test_openai_cached_and_reasoning_tokens() -> None:
    # o3: $2 in, $0.50 cached, $8 out. Cached tokens are part of prompt_tokens and reasoning
    # tokens part of completion_tokens, so neither may be billed twice.
    usage = openai_wire.usage_from_wire(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 2_000,
            "total_tokens": 12_000,
            "prompt_tokens_details": {"cached_tokens": 4_000},
            "completion_tokens_details": {"reasoning_tokens": 1_500},
        }
    )
    assert (usage.cached_tokens, usage.reasoning_tokens) == (4_000, 1_500)
    expected = (6_000 * 2.0 + 4_000 * 0.5 + 2_000 * 8.0) / 1e6
    assert _cost("openai", "o3-2025-04-16", usage) == pytest.approx(expected)
    assert expected == pytest.approx(0.030)


def test_deepseek_cache_hits() -> None:
    usage = openai_wire.usage_from_wire(
        {
            "prompt_tokens": 1_000_000,
            "completion_tokens": 1_000_000,
            "prompt_cache_hit_tokens": 600_000,
            "prompt_cache_miss_tokens": 400_000,
        }
    )
    assert _cost("deepseek", "deepseek-chat", usage) == pytest.approx(
        0.4 * 0.28 + 0.6 * 0.028 + 0.42
    )


ANTHROPIC_USAGE: dict[str, Any] = {
    "input_tokens": 1_000,
    "cache_read_input_tokens": 20_000,
    "cache_creation_input_tokens": 5_000,
    "output_tokens": 800,
}


def test_anthropic_cache_read_and_cache_write() -> None:
    # Anthropic reports cache reads and writes outside input_tokens; each has its own price
    # (Sonnet 4.5: $3 in, $0.30 read, $3.75 write, $15 out).
    usage = anthropic_wire.usage_from_wire(ANTHROPIC_USAGE)
    assert usage.prompt_tokens == 26_000
    expected = (1_000 * 3.0 + 20_000 * 0.3 + 5_000 * 3.75 + 800 * 15.0) / 1e6
    assert _cost("anthropic", "claude-sonnet-4-5-20250929", usage) == pytest.approx(expected)
    assert expected == pytest.approx(0.03975)


def test_anthropic_streamed_usage_halves_price_the_same() -> None:
    # message_start carries the input side, message_delta the cumulative output count.
    state = anthropic_wire.StreamState()
    state.usage_in = {**ANTHROPIC_USAGE, "output_tokens": 1}
    state.usage_out = {"output_tokens": 800}
    usage = state.usage()
    assert usage is not None
    assert _cost("anthropic", "claude-sonnet-4-5", usage) == pytest.approx(0.03975)


def test_bedrock_claude_cache_read_and_write() -> None:
    usage = bedrock_wire.usage_from_wire(
        {
            "inputTokens": 1_000,
            "cacheReadInputTokens": 20_000,
            "cacheWriteInputTokens": 5_000,
            "outputTokens": 800,
            "totalTokens": 26_800,
        }
    )
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
        26_000,
        20_000,
        5_000,
    )
    cost = _cost("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", usage)
    assert cost == pytest.approx(0.03975)


def test_gemini_cached_and_thoughts_tokens() -> None:
    # Gemini counts thoughts outside candidates and cached tokens inside the prompt;
    # thoughts are billed as output (2.5 Flash: $0.30 in, $0.03 cached, $2.50 out).
    usage = gemini_wire.usage_from_wire(
        {
            "promptTokenCount": 10_000,
            "cachedContentTokenCount": 6_000,
            "candidatesTokenCount": 500,
            "thoughtsTokenCount": 1_500,
            "totalTokenCount": 12_000,
        }
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (
        10_000,
        2_000,
        1_500,
    )
    expected = (4_000 * 0.3 + 6_000 * 0.03 + 2_000 * 2.5) / 1e6
    assert _cost("gemini", "models/gemini-2.5-flash", usage) == pytest.approx(expected)


def test_long_context_tier_gemini() -> None:
    usage = gemini_wire.usage_from_wire(
        {
            "promptTokenCount": 250_000,
            "cachedContentTokenCount": 100_000,
            "candidatesTokenCount": 1_000,
            "thoughtsTokenCount": 1_000,
        }
    )
    # Above 200k the whole request is at the higher tier: $2.50 in, $0.25 cached, $15 out.
    expected = (150_000 * 2.5 + 100_000 * 0.25 + 2_000 * 15.0) / 1e6
    assert _cost("gemini", "gemini-2.5-pro", usage) == pytest.approx(expected)
    at_threshold = Usage(prompt_tokens=200_000, completion_tokens=1_000)
    assert _cost("gemini", "gemini-2.5-pro", at_threshold) == pytest.approx(
        (200_000 * 1.25 + 1_000 * 10.0) / 1e6
    )


def test_long_context_threshold_counts_cache_reads() -> None:
    # 150k fresh + 60k read from the cache is a 210k prompt: Anthropic's long-context tier
    # ($6 in, $0.60 read, $22.50 out) applies, as Anthropic counts it.
    usage = anthropic_wire.usage_from_wire(
        {"input_tokens": 150_000, "cache_read_input_tokens": 60_000, "output_tokens": 1_000}
    )
    expected = (150_000 * 6.0 + 60_000 * 0.6 + 1_000 * 22.5) / 1e6
    assert _cost("anthropic", "claude-sonnet-4-5", usage) == pytest.approx(expected)


def test_long_context_tier_without_cache_prices_scales_the_base_ones() -> None:
    info = ModelInfo(
        "openai_compatible",
        "big",
        prices=Prices(input=1.0, output=2.0, cached_input=0.1, cache_write=1.25),
        long_context=LongContextPrices(threshold=100, input=2.0, output=4.0),
    )
    tier = info.prices_for(101)
    assert (tier.input, tier.output, tier.cached_input, tier.cache_write) == (2.0, 4.0, 0.2, 2.5)
    assert info.prices_for(100) is info.prices
    usage = Usage(prompt_tokens=1_000, completion_tokens=10, cached_tokens=500)
    assert info.cost(usage) == pytest.approx((500 * 2.0 + 500 * 0.2 + 10 * 4.0) / 1e6)


def test_config_override_prices_a_request() -> None:
    config = GatewayConfig.model_validate(
        {
            "model_table": {
                "openai/gpt-4o": {"prices": {"input": 1.0, "cached_input": 0.1}},
                "openai_compatible/local-llama": {"prices": {"input": 0, "output": 0}},
            }
        }
    )
    table = ModelTable.from_config(config)
    usage = Usage(prompt_tokens=3_000, completion_tokens=1_000, cached_tokens=1_000)
    info = table.get("openai", "gpt-4o-2024-08-06")
    # Overridden input and cached prices; the shipped output price ($10) is kept.
    assert usage_cost(usage, info) == pytest.approx((2_000 * 1.0 + 1_000 * 0.1 + 10_000) / 1e6)
    assert usage_cost(usage, table.get("openai_compatible", "local-llama")) == 0.0
    assert usage_cost(usage, table.get("openai_compatible", "unknown")) is None


def test_openrouters_reported_cost_wins() -> None:
    usage = openai_wire.usage_from_wire(
        {
            "prompt_tokens": 1_000,
            "completion_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 500},
            "cost": 0.000123,
        }
    )
    info = TABLE.get("openrouter", "openai/gpt-4o-mini")
    assert info is not None and info.cost(usage) != pytest.approx(0.000123)
    assert usage_cost(usage, info) == 0.000123
    # Even for a model the table does not know, and even when the charge is zero.
    assert usage_cost(usage, None) == 0.000123
    free = openai_wire.usage_from_wire({"prompt_tokens": 10, "completion_tokens": 1, "cost": 0})
    assert usage_cost(free, info) == 0.0


def test_every_shipped_row_is_dated_and_embeddings_are_input_only() -> None:
    assert TABLE.prices_as_of == "2025-10-15"
    embedding = TABLE.get("openai", "text-embedding-3-small")
    assert embedding is not None and embedding.capabilities.embeddings is True
    assert usage_cost(Usage(prompt_tokens=1_000_000), embedding) == pytest.approx(0.02)
