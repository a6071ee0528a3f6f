"""Resolves a requested model name to routes and runs them with ordered fallback.

A configured model name maps to its routes; ``provider/model`` addresses a provider
directly. Fallback to the next route happens only on retryable failures and only before
the first stream event reaches the client (``open_stream`` peeks that event), so a
client never receives a spliced answer. Full strategies, retries and breakers build on
this in the routing issue.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec

from llm_gateway.core.errors import (
    AllRoutesFailedError,
    GatewayError,
    ModelNotFoundError,
    ProviderUnavailableError,
    UpstreamError,
)
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse
from llm_gateway.providers.base import Provider


class Route(msgspec.Struct, frozen=True):
    provider_name: str
    model: str
    provider: Provider | None  # None: the provider is configured but not usable
    unavailable_reason: str | None = None
    weight: float = 1.0  # share of traffic under the "weighted" strategy
    provider_type: str = ""  # e.g. "openai", "bedrock": the key into the model table

    @property
    def label(self) -> str:
        return f"{self.provider_name}/{self.model}"


class ModelPlan(msgspec.Struct, frozen=True):
    """Everything needed to serve one requested model name, built once per config load."""

    name: str
    routes: tuple[Route, ...]
    defaults: Mapping[str, Any] = msgspec.field(default_factory=dict)
    max_tokens_cap: int | None = None

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """Applies the model's default parameters where the caller set none, and its cap."""
        if not self.defaults and self.max_tokens_cap is None:
            return request
        changes: dict[str, Any] = {}
        extra = request.extra
        for key, value in self.defaults.items():
            if key in ChatRequest.__struct_fields__:
                if getattr(request, key) is None:
                    changes[key] = value
            elif key not in extra:
                extra = {**extra, key: value}
        if extra is not request.extra:
            changes["extra"] = extra
        cap = self.max_tokens_cap
        if cap is not None:
            asked = changes.get("max_tokens", request.max_tokens)
            changes["max_tokens"] = cap if asked is None else min(asked, cap)
        return msgspec.structs.replace(request, **changes)


class Router:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        unavailable: Mapping[str, str],
        models: Mapping[str, ModelPlan],
    ) -> None:
        self._providers = dict(providers)
        self._unavailable = dict(unavailable)
        self._models = dict(models)
        self._direct: dict[str, ModelPlan] = {}

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    @property
    def provider_names(self) -> list[str]:
        return [*self._providers, *self._unavailable]

    def resolve(self, name: str) -> ModelPlan:
        plan = self._models.get(name) or self._direct.get(name)
        if plan is not None:
            return plan
        provider_name, sep, model = name.partition("/")
        if sep and model:
            provider = self._providers.get(provider_name)
            reason = self._unavailable.get(provider_name)
            if provider is not None or reason is not None:
                route = Route(provider_name, model, provider, reason)
                plan = ModelPlan(name=name, routes=(route,))
                if len(self._direct) < 4096:  # bounded: names come from clients
                    self._direct[name] = plan
                return plan
        raise self._not_found(name)

    def _not_found(self, name: str) -> ModelNotFoundError:
        known = ", ".join(self._models) or "none configured"
        providers = ", ".join(self.provider_names)
        return ModelNotFoundError(
            f"The model '{name}' does not exist. Configured models: {known}. "
            f"Or address a provider directly as 'provider/model' (providers: {providers}).",
            param="model",
        )

    @staticmethod
    def _check(route: Route) -> Provider:
        if route.provider is None:
            raise ProviderUnavailableError(
                f"provider '{route.provider_name}' is not configured: {route.unavailable_reason}",
                provider=route.provider_name,
            )
        return route.provider

    @staticmethod
    def _give_up(plan: ModelPlan, failures: list[tuple[str, GatewayError]]) -> GatewayError:
        if len(failures) == 1:
            return failures[0][1]
        return AllRoutesFailedError(plan.name, failures)

    async def complete(self, plan: ModelPlan, request: ChatRequest) -> tuple[ChatResponse, Route]:
        failures: list[tuple[str, GatewayError]] = []
        for route in plan.routes:
            try:
                provider = self._check(route)
                return await provider.complete(request, route.model), route
            except GatewayError as error:
                if not error.retryable:
                    raise
                failures.append((route.label, error))
        raise self._give_up(plan, failures)

    async def open_stream(
        self, plan: ModelPlan, request: ChatRequest
    ) -> tuple[Route, list[StreamEvent], AsyncIterator[list[StreamEvent]]]:
        """Starts a stream on the first route that yields events.

        Returns the route, its first batch of events and the iterator for the rest.
        """
        failures: list[tuple[str, GatewayError]] = []
        for route in plan.routes:
            iterator: AsyncIterator[list[StreamEvent]] | None = None
            try:
                provider = self._check(route)
                iterator = aiter(provider.stream(request, route.model))
                try:
                    first = await anext(iterator)
                except StopAsyncIteration:
                    raise UpstreamError(
                        f"provider '{route.provider_name}' ended the stream without any event",
                        provider=route.provider_name,
                    ) from None
                return route, first, iterator
            except GatewayError as error:
                if iterator is not None:
                    await close_stream(iterator)
                if not error.retryable:
                    raise
                failures.append((route.label, error))
        raise self._give_up(plan, failures)


async def close_stream(iterator: AsyncIterator[list[StreamEvent]]) -> None:
    """Closes a provider stream (and so its upstream connection), ignoring late errors."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def build_plans(
    configured: Mapping[str, Sequence[tuple[str, str]]],
    providers: Mapping[str, Provider],
    unavailable: Mapping[str, str],
    *,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    caps: Mapping[str, int | None] | None = None,
) -> dict[str, ModelPlan]:
    """ModelPlans for configured model names: name → [(provider name, provider model)]."""
    plans: dict[str, ModelPlan] = {}
    for name, routes in configured.items():
        plans[name] = ModelPlan(
            name=name,
            routes=tuple(Route(p, m, providers.get(p), unavailable.get(p)) for p, m in routes),
            defaults=dict((defaults or {}).get(name) or {}),
            max_tokens_cap=(caps or {}).get(name),
        )
    return plans
