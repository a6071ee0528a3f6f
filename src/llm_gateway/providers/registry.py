"""Builds provider adapters from config: a table from provider type to builder.

No branching on vendor names on the request path: OpenAI-compatible vendors are rows
in ``families.FAMILIES`` served by the one ``OpenAIProvider``. A provider that cannot be
built (no credentials, or a type whose adapter this version lacks) is returned with the
reason instead, and is reported NOT_CONFIGURED rather than crashing start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from llm_gateway.config.schema import (
    MockProviderConfig,
    OpenAIProviderConfig,
    ProviderBase,
    is_configured,
)
from llm_gateway.http.client import HttpClient
from llm_gateway.providers.anthropic import build_anthropic
from llm_gateway.providers.base import Provider
from llm_gateway.providers.bedrock import build_bedrock
from llm_gateway.providers.families import FAMILIES
from llm_gateway.providers.gemini import build_gemini
from llm_gateway.providers.mock import MockProvider
from llm_gateway.providers.openai import OpenAIProvider


def _build_mock(name: str, cfg: ProviderBase) -> Provider:
    assert isinstance(cfg, MockProviderConfig)
    return MockProvider(
        name,
        chunk_delay_ms=cfg.chunk_delay_ms,
        first_token_delay_ms=cfg.first_token_delay_ms,
        models=cfg.models,
    )


def _build_openai_family(name: str, cfg: ProviderBase) -> Provider:
    assert isinstance(cfg, OpenAIProviderConfig)
    family = FAMILIES[cfg.type]
    base_url = cfg.base_url or family.default_base_url
    assert base_url is not None  # the schema requires base_url where there is no default
    client = HttpClient(
        base_url,
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.idle_timeout or cfg.timeout,
        # A non-streamed answer sends nothing until it is generated: only the provider's
        # total timeout bounds the wait for the first byte, never the idle gap.
        first_byte_timeout=cfg.timeout,
        max_connections=cfg.max_connections,
    )
    headers = dict(cfg.headers)
    if cfg.organization:
        headers.setdefault("openai-organization", cfg.organization)
    return OpenAIProvider(
        name,
        family,
        client,
        api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
        headers=headers,
        models=cfg.models,
    )


BUILDERS: dict[str, Callable[[str, ProviderBase], Provider]] = {
    "mock": _build_mock,
    "bedrock": build_bedrock,
    "anthropic": build_anthropic,
    "gemini": build_gemini,
    **{family_type: _build_openai_family for family_type in FAMILIES},
}


def _missing_credentials(cfg: ProviderBase) -> str:
    family = FAMILIES.get(getattr(cfg, "type", ""))
    if family is not None and family.api_key_env:
        return f"no API key (set api_key, e.g. api_key: ${{{family.api_key_env}}})"
    return "missing credentials"


def build_providers(
    configs: Mapping[str, ProviderBase],
) -> tuple[dict[str, Provider], dict[str, str]]:
    """Adapters for usable providers, and a reason for each provider that is not."""
    providers: dict[str, Provider] = {}
    unavailable: dict[str, str] = {}
    for name, cfg in configs.items():
        provider_type: str = getattr(cfg, "type", "")
        builder = BUILDERS.get(provider_type)
        if builder is None:
            unavailable[name] = f"provider type '{provider_type}' is not supported by this version"
        elif not is_configured(cfg):
            unavailable[name] = _missing_credentials(cfg)
        else:
            providers[name] = builder(name, cfg)
    return providers, unavailable
