"""The ``model_table:`` section: partial entries keyed "<provider_type>/<model>"."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tests.unit.config.conftest import WriteFile

from llm_gateway.config import ConfigError, GatewayConfig, load_config
from llm_gateway.config.schema import ModelTableEntryConfig, model_table_key_problem


def cfg(**data: Any) -> GatewayConfig:
    return GatewayConfig.model_validate(data)


def problems(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return [str(p) for p in info.value.problems]


def test_default_is_empty() -> None:
    assert GatewayConfig().model_table == {}
    assert cfg(model_table=None).model_table == {}


def test_partial_entry() -> None:
    config = cfg(
        model_table={
            "openai/gpt-4o": {"prices": {"input": 2.0}},
            "openai_compatible/llama3.1:8b": {
                "context_window": 8192,
                "max_output_tokens": 2048,
                "prices": {"input": 0, "output": 0, "cached_input": 0, "cache_write": 0},
                "capabilities": {"tools": True, "vision": False},
                "long_context": {"threshold": 4096, "input": 1},
                "notes": "local",
            },
        }
    )
    entry = config.model_table["openai/gpt-4o"]
    assert entry.prices.input == 2.0 and entry.prices.output is None
    assert entry.context_window is None and entry.capabilities.tools is None
    local = config.model_table["openai_compatible/llama3.1:8b"]
    assert local.capabilities.tools is True and local.capabilities.json_mode is None
    assert local.long_context is not None and local.long_context.threshold == 4096


def test_entry_is_frozen() -> None:
    entry = ModelTableEntryConfig(context_window=10)
    with pytest.raises(ValidationError):
        entry.context_window = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("gpt-4o", "must be '<provider_type>/<model>'"),
        ("openai/", "must be '<provider_type>/<model>'"),
        ("/gpt-4o", "must be '<provider_type>/<model>'"),
        ("azure/gpt-4o", "unknown provider type 'azure'; valid types: anthropic, bedrock"),
    ],
)
def test_key_problems(key: str, message: str) -> None:
    found = model_table_key_problem(key)
    assert found is not None and message in found
    with pytest.raises(ValidationError, match="model_table"):
        cfg(model_table={key: {}})


def test_valid_keys() -> None:
    for key in ("openai/gpt-4o", "openrouter/openai/gpt-4o", "bedrock/us.amazon.nova-pro-v1:0"):
        assert model_table_key_problem(key) is None


def test_errors_are_precise_through_the_loader(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        """
model_table:
  azure/gpt-4o: {}
  openai/gpt-4o:
    context_window: 1000
    max_output_tokens: 2000
  openai/gpt-4.1:
    prices: {input: -1, outptu: 2}
    capabilities: {tools: maybe}
  groq/x:
    long_context: {input: 1}
""",
    )
    found = problems(path.name)
    assert any(
        p.startswith("gateway.yaml: model_table.openai/gpt-4.1.prices.input: ")
        and "greater than or equal to 0" in p
        for p in found
    ), found
    assert any(
        p.startswith("gateway.yaml: model_table.openai/gpt-4.1.prices.outptu: unknown key")
        and "did you mean 'output'" in p
        for p in found
    ), found
    assert any(
        p.startswith("gateway.yaml: model_table.openai/gpt-4.1.capabilities.tools: ")
        and "valid boolean" in p
        for p in found
    ), found
    assert any(
        p.startswith("gateway.yaml: model_table.openai/gpt-4o: ")
        and "max_output_tokens (2000) exceeds context_window (1000)" in p
        for p in found
    ), found
    assert any(
        p.startswith("gateway.yaml: model_table.groq/x.long_context.threshold: required key")
        for p in found
    ), found


def test_key_errors_are_precise_through_the_loader(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        """
model_table:
  azure/gpt-4o: {}
  nokey: {}
  openai/gpt-4o: {prices: {input: 1}}
""",
    )
    found = problems(path.name)
    assert any(
        p.startswith("gateway.yaml: model_table.azure/gpt-4o: unknown provider type 'azure'")
        and "(line 3)" in p
        for p in found
    ), found
    assert any(
        p.startswith("gateway.yaml: model_table.nokey: a model_table key must be") for p in found
    ), found
    assert len(found) == 2


def test_loads_with_the_rest_of_the_config(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        """
providers:
  local: {type: openai_compatible, base_url: "http://localhost:11434/v1"}
models:
  chat: {routes: [local/llama3.1:8b]}
model_table:
  openai_compatible/llama3.1:8b:
    context_window: 8192
    prices: {input: 0, output: 0}
""",
    )
    config = load_config(str(path), env={})
    assert config.model_table["openai_compatible/llama3.1:8b"].context_window == 8192
