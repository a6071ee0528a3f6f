"""``GET /health``, ``GET /api/llm/providers`` and ``GET /api/llm/health``.

``/health`` is for load balancers: no key needed, no upstream call, no error text (states
only), and the optional dependencies' checks are bounded (0.5 s) and never change the
overall status. The ``/api/llm`` endpoints need a key when keys exist (open mode lets
everyone in) and show each provider's detail; ``check=true`` makes one real completion of
``max_tokens: 1`` per provider, so it needs the admin key (or open mode): it is a paid
call outside every key's budget and limits. Concurrent checks share one call, and a result
is reused for 10 s (``status/checks.py``). Shapes: docs/status-api.md.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from llm_gateway.core.errors import NotFoundError
from llm_gateway.status.checks import CheckResult
from llm_gateway.status.frames import error_dict, provider_dict
from llm_gateway.status.tracker import overall_status

if TYPE_CHECKING:
    from llm_gateway.app import GatewayState

Overall = Literal["healthy", "degraded", "unhealthy"]
State = Literal["NOT_CONFIGURED", "HEALTHY", "UNHEALTHY"]

_ERROR_EXAMPLE = {
    "message": "upstream answered 503: overloaded",
    "code": "provider_overloaded",
    "status": 503,
    "at": 1763800000.5,
}
_PROVIDER_EXAMPLE: dict[str, Any] = {
    "name": "openai",
    "type": "openai",
    "state": "UNHEALTHY",
    "error": _ERROR_EXAMPLE,
    "changed_at": 1763800000.5,
    "checked_at": 1763799990.1,
    "models": ["gpt-4o", "gpt-4o-mini"],
    "latency": {"p50_ms": 412.5, "p95_ms": 1210.0, "last_check_ms": 180.2, "samples": 128},
    "calls": {"successes": 1520, "failures": 3},
    "open_circuits": ["openai/gpt-4o"],
}


class ProviderError(BaseModel):
    message: str = Field(description="What failed; credentials are redacted.")
    code: str | None = Field(description="Machine-readable code, e.g. `timeout`.")
    status: int | None = Field(description="The upstream's HTTP status, when there was one.")
    at: float = Field(description="When it happened (epoch seconds).")


class Latency(BaseModel):
    p50_ms: float | None = Field(description="Median latency of recent successful calls.")
    p95_ms: float | None = Field(description="95th percentile of recent successful calls.")
    last_check_ms: float | None = Field(description="How long the last health check took.")
    samples: int = Field(description="Recent calls the percentiles are computed from.")


class Calls(BaseModel):
    successes: int
    failures: int = Field(description="Failures that were the provider's fault.")


class ProviderInfo(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_PROVIDER_EXAMPLE]})

    name: str = Field(description="The configured provider name.")
    type: str = Field(description="The provider type, e.g. `openai`, `anthropic`, `mock`.")
    state: State
    error: ProviderError | None = Field(
        description="Why it is not HEALTHY (for NOT_CONFIGURED: the missing credentials)."
    )
    changed_at: float = Field(description="When the state last changed (epoch seconds).")
    checked_at: float | None = Field(description="When it was last checked; null: not yet.")
    models: list[str] = Field(description="Models from its last listing.")
    latency: Latency
    calls: Calls
    open_circuits: list[str] = Field(description="Routes whose circuit breaker is not closed.")


class ProvidersResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "degraded", "providers": [_PROVIDER_EXAMPLE]}]}
    )

    status: Overall
    providers: list[ProviderInfo]


class Check(BaseModel):
    provider: str
    kind: Literal["models", "completion"]
    ok: bool
    model: str | None = Field(description="The model the completion check used.")
    latency_ms: float
    error: ProviderError | None


class ProviderHealth(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "healthy",
                    "providers": [{**_PROVIDER_EXAMPLE, "state": "HEALTHY", "error": None}],
                    "checks": [
                        {
                            "provider": "openai",
                            "kind": "completion",
                            "ok": True,
                            "model": "gpt-4o",
                            "latency_ms": 311.4,
                            "error": None,
                        }
                    ],
                }
            ]
        }
    )

    status: Overall = Field(description="Overall status of the providers asked about.")
    providers: list[ProviderInfo]
    checks: list[Check] | None = Field(description="Live check results when `check=true`.")


class Component(BaseModel):
    status: Literal["ok", "error", "timeout"]
    latency_ms: float
    error: str | None = Field(description="The failure's kind only (no connection strings).")


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "degraded",
                    "providers": {
                        "openai": "UNHEALTHY",
                        "groq": "HEALTHY",
                        "gemini": "NOT_CONFIGURED",
                    },
                    "components": {
                        "database": {"status": "ok", "latency_ms": 1.2, "error": None},
                        "redis": {"status": "timeout", "latency_ms": 500.3, "error": "no answer"},
                    },
                }
            ]
        }
    )

    status: Overall = Field(
        description="healthy: every configured provider is HEALTHY; degraded: some are; "
        "unhealthy: none is. Components never change it."
    )
    providers: dict[str, State] = Field(description="Each configured provider's state.")
    components: dict[str, Component] = Field(
        description="Optional dependencies (database, redis), each checked within 0.5 s."
    )


def _check(result: CheckResult) -> dict[str, Any]:
    return {
        "provider": result.provider,
        "kind": result.kind,
        "ok": result.ok,
        "model": result.model,
        "latency_ms": round(result.seconds * 1000.0, 2),
        "error": error_dict(result.error),
    }


def status_routes(state: GatewayState) -> APIRouter:
    router = APIRouter(tags=["Gateway"])
    tracker = state.tracker

    @router.get("/health", summary="Overall health and each provider's state")
    async def health() -> Health:
        components = await state.dependencies.results()
        return Health.model_validate(
            {
                "status": tracker.overall(),
                "providers": {name: s.value for name, s in tracker.states().items()},
                "components": {
                    name: {"status": c.status, "latency_ms": c.latency_ms, "error": c.error}
                    for name, c in components.items()
                },
            }
        )

    @router.get("/api/llm/providers", summary="Every provider: state, last error, models, latency")
    async def providers(request: Request) -> ProvidersResponse:
        state.gate.authenticate(request.scope)
        return ProvidersResponse.model_validate(
            {
                "status": tracker.overall(),
                "providers": [provider_dict(s) for s in tracker.snapshots()],
            }
        )

    @router.get(
        "/api/llm/health",
        summary="Health of one provider or all; check=true makes a real minimal completion",
        responses={
            401: {"description": "Missing or invalid API key"},
            403: {"description": "check=true without the admin key"},
            404: {"description": "Unknown provider"},
        },
    )
    async def provider_health(
        request: Request,
        provider: str | None = Query(None, description="One provider by name; all if absent."),
        check: bool = Query(
            False,
            description="Make a real completion (max_tokens 1) first. Admin key only (or "
            "open mode); results are shared and reused for 10 s.",
        ),
    ) -> ProviderHealth:
        if check:
            state.gate.require_admin(request.scope)
        else:
            state.gate.authenticate(request.scope)
        if provider is not None and provider not in tracker:
            raise NotFoundError(
                f"Unknown provider '{provider}'. Providers: {', '.join(tracker.names)}.",
                param="provider",
                code="provider_not_found",
            )
        names = [provider] if provider is not None else tracker.names
        checks: list[dict[str, Any]] | None = None
        if check:
            results = await asyncio.gather(*(state.checker.complete(n) for n in names))
            checks = [_check(r) for r in results]
        snapshots = [tracker.snapshot(n) for n in names]
        return ProviderHealth.model_validate(
            {
                "status": overall_status(s.state for s in snapshots),
                "providers": [provider_dict(s) for s in snapshots],
                "checks": checks,
            }
        )

    return router
