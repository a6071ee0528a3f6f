from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llm_gateway.config import (
    PROVIDER_TYPES,
    AnthropicProviderConfig,
    BedrockProviderConfig,
    GatewayConfig,
    GeminiProviderConfig,
    MockProviderConfig,
    OpenAIProviderConfig,
    is_configured,
)
from llm_gateway.config.errors import ReferenceErrors


def cfg(**data: Any) -> GatewayConfig:
    return GatewayConfig.model_validate(data)


def test_defaults() -> None:
    config = GatewayConfig()
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8000
    assert config.server.max_body_bytes == 10 * 1024 * 1024
    assert config.server.heartbeat_seconds == 15
    assert config.storage.url == "sqlite:///./gateway.db"
    assert config.redis.url is None and not config.redis.enabled
    assert config.auth.admin_key is None
    assert config.logging.level == "INFO"
    assert config.providers == {} and config.models == {}
    assert config.sources == () and config.source_paths == ()


def test_provider_types_cover_the_contract() -> None:
    assert set(PROVIDER_TYPES) == {
        "openai",
        "groq",
        "openrouter",
        "deepseek",
        "mistral",
        "openai_compatible",
        "anthropic",
        "gemini",
        "bedrock",
        "mock",
    }


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        ({"type": "openai"}, OpenAIProviderConfig),
        ({"type": "groq"}, OpenAIProviderConfig),
        ({"type": "openrouter"}, OpenAIProviderConfig),
        ({"type": "deepseek"}, OpenAIProviderConfig),
        ({"type": "mistral"}, OpenAIProviderConfig),
        ({"type": "openai_compatible", "base_url": "http://x/v1"}, OpenAIProviderConfig),
        ({"type": "anthropic"}, AnthropicProviderConfig),
        ({"type": "gemini"}, GeminiProviderConfig),
        ({"type": "bedrock"}, BedrockProviderConfig),
        ({"type": "mock"}, MockProviderConfig),
    ],
)
def test_discriminated_union(data: dict[str, Any], cls: type) -> None:
    provider = cfg(providers={"p": data}).providers["p"]
    assert type(provider) is cls
    assert provider.timeout == 600 and provider.connect_timeout == 10
    assert provider.headers == {} and provider.max_connections == 1000


def test_common_provider_fields() -> None:
    provider = cfg(
        providers={
            "p": {
                "type": "groq",
                "base_url": "https://example/v1",
                "timeout": "30",
                "connect_timeout": 2.5,
                "first_token_timeout": 5,
                "idle_timeout": 7,
                "headers": {"X-A": "1"},
                "models": ["m1"],
                "max_connections": 5,
            }
        }
    ).providers["p"]
    assert provider.base_url == "https://example/v1"
    assert (provider.timeout, provider.connect_timeout) == (30.0, 2.5)
    assert (provider.first_token_timeout, provider.idle_timeout) == (5, 7)
    assert provider.headers == {"X-A": "1"}
    assert provider.models == ["m1"]
    assert provider.max_connections == 5


def test_type_specific_defaults() -> None:
    config = cfg(
        providers={
            "a": {"type": "anthropic", "api_key": "k"},
            "m": {"type": "mock"},
            "b": {"type": "bedrock", "region": "eu-west-1", "profile": "dev"},
        }
    )
    a, m, b = config.providers["a"], config.providers["m"], config.providers["b"]
    assert isinstance(a, AnthropicProviderConfig) and a.max_tokens == 4096
    assert isinstance(m, MockProviderConfig)
    assert (m.chunk_delay_ms, m.first_token_delay_ms, m.models) == (20, 0, ["mock-1"])
    assert isinstance(b, BedrockProviderConfig) and b.region == "eu-west-1"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "openai"}, False),
        ({"type": "openai", "api_key": ""}, False),
        ({"type": "openai", "api_key": "   "}, False),
        ({"type": "openai", "api_key": "sk-1"}, True),
        ({"type": "groq", "api_key": "k"}, True),
        ({"type": "anthropic"}, False),
        ({"type": "anthropic", "api_key": "k"}, True),
        ({"type": "gemini", "api_key": ""}, False),
        ({"type": "gemini", "api_key": "k"}, True),
        ({"type": "bedrock"}, False),
        ({"type": "bedrock", "region": ""}, False),
        ({"type": "bedrock", "region": "us-east-1"}, True),
        ({"type": "mock"}, True),
        ({"type": "openai_compatible", "base_url": "http://x"}, True),
    ],
)
def test_is_configured(data: dict[str, Any], expected: bool) -> None:
    assert is_configured(cfg(providers={"p": data}).providers["p"]) is expected


def test_blank_optional_values_are_unset() -> None:
    config = cfg(
        auth={"admin_key": ""},
        redis={"url": ""},
        providers={"o": {"type": "openai", "api_key": "", "base_url": " "}},
    )
    assert config.auth.admin_key is None
    assert config.redis.url is None
    provider = config.providers["o"]
    assert isinstance(provider, OpenAIProviderConfig)
    assert provider.api_key is None and provider.base_url is None


def test_secrets_are_masked_in_repr_and_dump() -> None:
    config = cfg(
        auth={"admin_key": "adm-SECRET"},
        providers={"o": {"type": "openai", "api_key": "sk-SECRET"}},
    )
    assert "SECRET" not in repr(config)
    assert "SECRET" not in config.model_dump_json()
    provider = config.providers["o"]
    assert isinstance(provider, OpenAIProviderConfig) and provider.api_key is not None
    assert provider.api_key.get_secret_value() == "sk-SECRET"


def test_frozen() -> None:
    config = GatewayConfig()
    with pytest.raises(ValidationError):
        config.server.port = 1  # type: ignore[misc]


def test_models() -> None:
    config = cfg(
        providers={"g": {"type": "groq"}, "o": {"type": "openrouter"}},
        models={
            "coder": {
                "routes": [
                    {"provider": "g", "model": "llama", "weight": 2},
                    "o/deepseek/deepseek-chat",
                ],
                "strategy": "weighted",
                "defaults": {"temperature": 0.2},
                "max_tokens_cap": 1000,
            },
            "org/name": {"routes": ["g/x"]},  # '/' allowed; configured names win
        },
    )
    coder = config.models["coder"]
    assert coder.strategy == "weighted" and coder.max_tokens_cap == 1000
    assert coder.defaults == {"temperature": 0.2}
    assert [(r.provider, r.model, r.weight) for r in coder.routes] == [
        ("g", "llama", 2),
        ("o", "deepseek/deepseek-chat", 1),
    ]
    assert config.models["org/name"].strategy == "ordered"


def test_logging_levels_are_case_insensitive() -> None:
    config = cfg(logging={"level": "debug", "loggers": {"httpx": "warning"}})
    assert config.logging.level == "DEBUG"
    assert config.logging.loggers == {"httpx": "WARNING"}


def test_null_sections_are_empty() -> None:
    assert cfg(providers=None, models=None).providers == {}


def test_reference_errors_carry_paths() -> None:
    with pytest.raises(ValidationError) as info:
        cfg(providers={"a": {"type": "mock"}}, models={"m": {"routes": ["b/x"]}})
    cause = info.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, ReferenceErrors)
    assert [(p.path, p.message) for p in cause.problems] == [
        ("models.m.routes[0].provider", "unknown provider 'b'; configured: a")
    ]
    assert str(cause) == "models.m.routes[0].provider: unknown provider 'b'; configured: a"


def test_configured_providers() -> None:
    config = cfg(providers={"m": {"type": "mock"}, "o": {"type": "openai"}})
    assert config.configured_providers() == ["m"]


def test_an_empty_redis_url_means_no_redis() -> None:
    # "url: ${REDIS_URL}" with the variable unset interpolates to "".
    assert GatewayConfig.model_validate({"redis": {"url": ""}}).redis.url is None
    assert not GatewayConfig.model_validate({"redis": {"url": "  "}}).redis.enabled
    assert GatewayConfig.model_validate({"redis": {"url": "redis://h:1/0"}}).redis.enabled
