"""A route: one provider account and that provider's model id, as a model is served."""

from __future__ import annotations

import msgspec

from llm_gateway.providers.base import Provider


class Route(msgspec.Struct, frozen=True):
    provider_name: str
    model: str
    provider: Provider | None  # None: the provider is configured but not usable
    unavailable_reason: str | None = None
    weight: float = 1.0  # share of traffic under the "weighted" strategy
    provider_type: str = ""  # e.g. "openai", "bedrock": the key into the model table
    first_token_timeout: float | None = None  # the provider's own settings
    idle_timeout: float | None = None
    rpm: int | None = None  # this route's own limits (the provider's rpm/tpm settings)
    tpm: int | None = None

    @property
    def label(self) -> str:
        return f"{self.provider_name}/{self.model}"
