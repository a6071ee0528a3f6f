"""The shipped model table: packaging, lookup normalisation, cost, config overrides."""

from __future__ import annotations

import json
from importlib import resources

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_gateway.config import GatewayConfig
from llm_gateway.core.types import Usage
from llm_gateway.routing.model_table import (
    Capabilities,
    LongContextPrices,
    ModelInfo,
    ModelTable,
    Prices,
    UnpricedModelError,
    load_table_bytes,
    usage_cost,
)

REQUIRED = [
    "openai/gpt-4o-mini",
    "openai/gpt-4.1",
    "openai/o3-mini",
    "anthropic/claude-sonnet-4-5",
    "anthropic/claude-haiku-4-5",
    "anthropic/claude-opus-4-1",
    "gemini/gemini-2.5-flash",
    "gemini/gemini-2.5-pro",
    "groq/llama-3.3-70b-versatile",
    "groq/llama-3.1-8b-instant",
    "deepseek/deepseek-chat",
    "deepseek/deepseek-reasoner",
    "mistral/mistral-large-latest",
    "mistral/mistral-small-latest",
    "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0",
    "bedrock/amazon.nova-pro-v1:0",
    "bedrock/meta.llama3-1-70b-instruct-v1:0",
    "bedrock/mistral.mistral-large-2407-v1:0",
    "mock/mock-1",
]


@pytest.fixture(scope="module")
def table() -> ModelTable:
    return ModelTable.shipped()


def _get(table: ModelTable, key: str) -> ModelInfo:
    provider_type, _, model = key.partition("/")
    info = table.get(provider_type, model)
    assert info is not None, key
    return info


# --- the packaged data ---------------------------------------------------------------------


def test_data_is_a_package_resource() -> None:
    resource = resources.files("llm_gateway").joinpath("data", "model_table.json")
    data = json.loads(resource.read_text(encoding="utf-8"))
    assert data["prices_as_of"]
    assert data["currency"] == "USD"
    assert len(data["models"]) >= len(REQUIRED)


def test_shipped_is_loaded_once(table: ModelTable) -> None:
    assert ModelTable.shipped() is table
    assert table.prices_as_of == "2025-10-15"


@pytest.mark.parametrize("key", REQUIRED)
def test_required_entries_are_complete(table: ModelTable, key: str) -> None:
    info = _get(table, key)
    assert info.key == key
    assert info.context_window is not None and info.context_window > 0
    assert info.priced
    assert info.prices.input is not None and info.prices.output is not None
    assert info.prices.output >= info.prices.input or key.startswith("mock/")
    caps = info.capabilities
    assert None not in (caps.tools, caps.vision, caps.json_mode, caps.reasoning)
    if info.max_output_tokens is not None:
        assert info.max_output_tokens <= info.context_window


def test_every_entry_is_sane(table: ModelTable) -> None:
    for info in table:
        prices = info.prices
        if prices.cached_input is not None and prices.input is not None:
            assert prices.cached_input <= prices.input, info.key
        if info.long_context is not None:
            assert info.long_context.threshold > 0
    assert len(table.entries()) == len(table)


def test_mock_is_free(table: ModelTable) -> None:
    info = _get(table, "mock/mock-1")
    usage = Usage(prompt_tokens=10_000, completion_tokens=5_000, cached_tokens=100)
    assert info.cost(usage) == 0.0


def test_bedrock_has_no_json_mode(table: ModelTable) -> None:
    # The Bedrock Converse adapter does not map response_format.
    bedrock = [info for info in table if info.provider_type == "bedrock"]
    assert bedrock and all(info.capabilities.json_mode is False for info in bedrock)


def test_strict_loading_rejects_unknown_fields() -> None:
    bad = b'{"prices_as_of": "x", "models": {"openai/a": {"context": 1}}}'
    with pytest.raises(msgspec.ValidationError, match="context"):
        load_table_bytes(bad)
    with pytest.raises(ValueError, match="provider_type"):
        load_table_bytes(b'{"prices_as_of": "x", "models": {"nomodel": {}}}')


# --- lookup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_type", "model", "expected"),
    [
        ("openai", "gpt-4o-mini", "gpt-4o-mini"),
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai", "o3-mini-2025-01-31", "o3-mini"),
        ("openai", "GPT-4o-Mini", "gpt-4o-mini"),
        ("openai", " gpt-4o ", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("gemini", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        (
            "bedrock",
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
        ),
        ("bedrock", "eu.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
        ("bedrock", "apac.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
        (
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("openrouter", "openai/gpt-4o-mini", "openai/gpt-4o-mini"),
    ],
)
def test_normalisation(table: ModelTable, provider_type: str, model: str, expected: str) -> None:
    info = table.get(provider_type, model)
    assert info is not None
    assert info.model == expected
    assert info.provider_type == provider_type


def test_exact_dated_entry_wins_over_its_alias(table: ModelTable) -> None:
    old = _get(table, "openai/gpt-4o-2024-05-13")
    alias = _get(table, "openai/gpt-4o")
    assert old.model == "gpt-4o-2024-05-13"
    assert old.prices.input == 5.0 and alias.prices.input == 2.5


@pytest.mark.parametrize(
    ("provider_type", "model"),
    [
        ("openai_compatible", "gpt-4o"),  # local servers match only configured rows
        ("openai", "gpt-5-ultra"),
        ("", "gpt-4o"),  # a route without a provider type
        ("anthropic", "gpt-4o"),  # the model belongs to another provider type
        ("openai", "us.gpt-4o"),  # region prefixes are stripped for Bedrock only
        ("bedrock", "xx.amazon.nova-pro-v1:0"),
        ("openai", "-2024-08-06"),
    ],
)
def test_no_match(table: ModelTable, provider_type: str, model: str) -> None:
    assert table.get(provider_type, model) is None


def test_lookups_are_memoised_and_bounded() -> None:
    table = ModelTable([ModelInfo("openai", "m")])
    first = table.get("openai", "m-2024-01-01")
    assert first is not None and table.get("openai", "m-2024-01-01") is first
    for i in range(5000):
        assert table.get("openai", f"unknown-{i}") is None
    assert len(table._memo) <= 4096


# --- cost ------------------------------------------------------------------------------------

PRICED = ModelInfo(
    "anthropic",
    "m",
    prices=Prices(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75),
)


def test_cost_plain() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert PRICED.cost(usage) == pytest.approx(18.0)


def test_cost_cached_and_cache_write_tokens() -> None:
    # 1,000 prompt tokens: 600 read from cache, 300 written to it, 100 plain.
    usage = Usage(
        prompt_tokens=1_000, completion_tokens=200, cached_tokens=600, cache_write_tokens=300
    )
    expected = (100 * 3.0 + 600 * 0.3 + 300 * 3.75 + 200 * 15.0) / 1e6
    assert PRICED.cost(usage) == pytest.approx(expected)


def test_cost_reasoning_tokens_are_output() -> None:
    # reasoning_tokens are part of completion_tokens: billed once, at the output price.
    with_reasoning = Usage(prompt_tokens=0, completion_tokens=1_000, reasoning_tokens=800)
    without = Usage(prompt_tokens=0, completion_tokens=1_000)
    assert PRICED.cost(with_reasoning) == PRICED.cost(without) == pytest.approx(0.015)


def test_cost_missing_cache_prices_fall_back_to_input() -> None:
    info = ModelInfo("groq", "m", prices=Prices(input=1.0, output=2.0))
    usage = Usage(prompt_tokens=1_000, cached_tokens=500, cache_write_tokens=200)
    assert info.cost(usage) == pytest.approx(1_000 * 1.0 / 1e6)


def test_cost_never_negative_on_inconsistent_usage() -> None:
    # A provider that reports more cached tokens than prompt tokens must not yield credit.
    usage = Usage(prompt_tokens=10, cached_tokens=50)
    assert PRICED.cost(usage) == pytest.approx(50 * 0.3 / 1e6)


def test_cost_long_context_tier(table: ModelTable) -> None:
    pro = _get(table, "gemini/gemini-2.5-pro")
    short = Usage(prompt_tokens=200_000, completion_tokens=1_000)
    long = Usage(prompt_tokens=200_001, completion_tokens=1_000)
    assert pro.cost(short) == pytest.approx((200_000 * 1.25 + 1_000 * 10.0) / 1e6)
    assert pro.cost(long) == pytest.approx((200_001 * 2.5 + 1_000 * 15.0) / 1e6)
    assert pro.estimate_cost(300_000, 0) == pytest.approx(0.75)


def test_cost_unpriced_raises() -> None:
    info = ModelInfo("openai_compatible", "local", context_window=8192)
    assert not info.priced
    assert info.estimate_cost(10, 10) is None
    with pytest.raises(UnpricedModelError, match="openai_compatible/local"):
        info.cost(Usage(prompt_tokens=1))


def test_usage_cost_prefers_the_providers_own_figure() -> None:
    assert usage_cost(Usage(prompt_tokens=1_000_000, cost=0.5), PRICED) == 0.5
    assert usage_cost(Usage(prompt_tokens=1_000_000), PRICED) == pytest.approx(3.0)
    assert usage_cost(Usage(prompt_tokens=1), None) is None
    assert usage_cost(Usage(prompt_tokens=1), ModelInfo("x", "y")) is None


@given(
    prompt=st.integers(0, 2_000_000),
    cached=st.integers(0, 2_000_000),
    written=st.integers(0, 2_000_000),
    completion=st.integers(0, 200_000),
)
def test_cost_properties(prompt: int, cached: int, written: int, completion: int) -> None:
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cache_write_tokens=written,
    )
    cost = PRICED.cost(usage)
    assert cost >= 0
    # Cache reads never cost more, and cache writes never less, than plain input.
    plain = PRICED.cost(Usage(prompt_tokens=prompt, completion_tokens=completion))
    assert cost <= plain + written * (3.75 - 3.0) / 1e6 + 1e-9
    assert cost >= plain - cached * (3.0 - 0.3) / 1e6 - 1e-9


# --- config overrides ---------------------------------------------------------------------


def _config(model_table: dict[str, object]) -> GatewayConfig:
    return GatewayConfig.model_validate({"model_table": model_table})


def test_from_config_without_section_is_the_shipped_table(table: ModelTable) -> None:
    assert ModelTable.from_config(GatewayConfig()) is table


def test_override_merges_field_by_field(table: ModelTable) -> None:
    merged = ModelTable.from_config(
        _config(
            {"openai/gpt-4o-mini": {"prices": {"input": 0.1}, "capabilities": {"vision": False}}}
        )
    )
    info = _get(merged, "openai/gpt-4o-mini")
    base = _get(table, "openai/gpt-4o-mini")
    assert info.prices == Prices(input=0.1, output=0.6, cached_input=0.075)
    assert info.capabilities == Capabilities(
        tools=True, vision=False, json_mode=True, reasoning=False
    )
    assert info.context_window == base.context_window
    assert _get(table, "openai/gpt-4o-mini").prices.input == 0.15  # shipped is untouched
    # Lookups of dated versions see the override too.
    assert _get(merged, "openai/gpt-4o-mini-2024-07-18").prices.input == 0.1


def test_override_adds_new_entries_with_unknowns() -> None:
    merged = ModelTable.from_config(
        _config(
            {
                "openai_compatible/llama3.1:8b": {
                    "context_window": 8192,
                    "prices": {"input": 0, "output": 0},
                    "capabilities": {"tools": True},
                }
            }
        )
    )
    info = _get(merged, "openai_compatible/llama3.1:8b")
    assert info.context_window == 8192 and info.max_output_tokens is None
    assert info.capabilities == Capabilities(tools=True)
    assert info.priced and info.cost(Usage(prompt_tokens=100)) == 0.0


def test_override_of_a_dated_key_starts_from_its_alias() -> None:
    merged = ModelTable.from_config(
        _config({"openai/gpt-4o-2024-11-20": {"prices": {"output": 9.0}}})
    )
    dated = _get(merged, "openai/gpt-4o-2024-11-20")
    assert dated.model == "gpt-4o-2024-11-20"
    assert dated.prices.input == 2.5 and dated.prices.output == 9.0
    assert _get(merged, "openai/gpt-4o").prices.output == 10.0


def test_override_long_context() -> None:
    merged = ModelTable.from_config(
        _config(
            {
                "gemini/gemini-2.5-pro": {"long_context": {"threshold": 100_000, "input": 3.0}},
                "groq/new": {"long_context": {"threshold": 10, "input": 1.0, "output": 2.0}},
            }
        )
    )
    pro = _get(merged, "gemini/gemini-2.5-pro")
    assert pro.long_context == LongContextPrices(
        threshold=100_000, input=3.0, output=15.0, cached_input=0.25
    )
    new = _get(merged, "groq/new")
    assert new.long_context == LongContextPrices(threshold=10, input=1.0, output=2.0)
    assert new.prices_for(11) is new.long_context


def test_merged_with_nothing_is_self(table: ModelTable) -> None:
    assert table.merged({}) is table
