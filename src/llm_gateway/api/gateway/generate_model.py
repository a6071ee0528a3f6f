"""Which model a generation request is routed by, from its ``model`` and ``provider``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from llm_gateway.core.errors import InvalidRequestError, ModelNotFoundError

if TYPE_CHECKING:
    from llm_gateway.config.schema import GatewayConfig


def model_name(
    model: str | None, provider: str | None, provider_models: Mapping[str, list[str]]
) -> str:
    """The name to route by.

    ``model`` alone: as given (a configured name, ``provider/model`` or ``auto``).
    ``provider`` and ``model``: that model on that provider (``provider/model``).
    ``provider`` alone: the provider's first model (its ``models`` list in config, else
    the first configured route on it). Neither: 400.
    """
    if model:
        if not provider or model.startswith(provider + "/"):
            return model
        return f"{provider}/{model}"
    if not provider:
        raise InvalidRequestError(
            "Send 'model' (a configured model name, 'provider/model' or 'auto') or "
            "'provider' (its first model is used).",
            param="model",
            code="missing_model",
        )
    if provider not in provider_models:
        known = ", ".join(provider_models) or "none configured"
        raise ModelNotFoundError(
            f"The provider '{provider}' is not configured. Providers: {known}.",
            param="provider",
            code="provider_not_found",
        )
    models = provider_models[provider]
    if not models:
        raise InvalidRequestError(
            f"The provider '{provider}' has no default model: send 'model' as well.",
            param="model",
            code="missing_model",
        )
    return f"{provider}/{models[0]}"


def default_models(config: GatewayConfig) -> dict[str, list[str]]:
    """Each provider's models in preference order: its own list, then configured routes."""
    found: dict[str, list[str]] = {name: list(p.models) for name, p in config.providers.items()}
    for model in config.models.values():
        for route in model.routes:
            known = found.setdefault(route.provider, [])
            if route.model not in known:
                known.append(route.model)
    return found


__all__ = ["default_models", "model_name"]
