"""Configuration: the YAML schema, its loader, and errors that say exactly what is wrong.

The app consumes one frozen ``GatewayConfig`` from ``load_config``; nothing else reads the
environment or the file.
"""

from llm_gateway.config.errors import ConfigError, ConfigProblem
from llm_gateway.config.interpolate import InterpolationError, interpolate
from llm_gateway.config.loader import deep_merge, load_config, resolve_config_path
from llm_gateway.config.schema import (
    PROVIDER_TYPES,
    AnthropicProviderConfig,
    AuthConfig,
    BedrockProviderConfig,
    GatewayConfig,
    GeminiProviderConfig,
    LoggingConfig,
    MockProviderConfig,
    ModelConfig,
    OpenAIProviderConfig,
    ProviderBase,
    ProviderConfig,
    RedisConfig,
    RouteConfig,
    ServerConfig,
    StorageConfig,
    is_configured,
)

__all__ = [
    "PROVIDER_TYPES",
    "AnthropicProviderConfig",
    "AuthConfig",
    "BedrockProviderConfig",
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "GeminiProviderConfig",
    "InterpolationError",
    "LoggingConfig",
    "MockProviderConfig",
    "ModelConfig",
    "OpenAIProviderConfig",
    "ProviderBase",
    "ProviderConfig",
    "RedisConfig",
    "RouteConfig",
    "ServerConfig",
    "StorageConfig",
    "deep_merge",
    "interpolate",
    "is_configured",
    "load_config",
    "resolve_config_path",
]
