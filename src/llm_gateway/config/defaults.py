"""Built-in configuration used when there is no config file.

Without a file the gateway must answer at once: the ``mock`` provider is always present
with a model named ``mock``, and every vendor whose standard key variable is set in the
environment is enabled under its own type name (``openai/gpt-4o`` then just works).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Standard key variables, in lookup order (first non-empty wins).
PROVIDER_KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
}

DEFAULT_CONFIG_FILE = "gateway.yaml"
MOCK_MODEL = "mock-1"


def key_from_env(provider_type: str, env: Mapping[str, str]) -> str | None:
    """The first non-empty standard key variable for ``provider_type``, if any."""
    for var in PROVIDER_KEY_VARIABLES.get(provider_type, ()):
        value = env.get(var, "").strip()
        if value:
            return value
    return None


def builtin_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The raw (unvalidated) config used when no file is found."""
    providers: dict[str, Any] = {"mock": {"type": "mock"}}
    for provider_type in PROVIDER_KEY_VARIABLES:
        key = key_from_env(provider_type, env)
        if key is not None:
            providers[provider_type] = {"type": provider_type, "api_key": key}
    return {
        "providers": providers,
        "models": {"mock": {"routes": [{"provider": "mock", "model": MOCK_MODEL}]}},
    }
