"""Builds the ASGI application from one validated config.

``create_app(config)`` builds every provider, the router and the HTTP surfaces once and
keeps them on the app; nothing lives in module globals. The returned app is a thin
dispatcher: the hot endpoints (chat completions) are raw ASGI handlers looked up in a
dict; everything else is served by a FastAPI app (docs, models, health, later the gateway
and admin APIs).

Start-up is part of the product (process start to first answer within 1 s): importing
FastAPI alone takes ~0.4 s, so the FastAPI app is built in a background thread once the
server starts, and the hot endpoints answer without waiting for it. A request for a
FastAPI route that arrives first simply awaits the build.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any, cast

import msgspec

from llm_gateway.api.anthropic.handlers import CountTokens, Messages
from llm_gateway.api.asgi import ASGIApp, Receive, Scope, Send, request_id, send_body
from llm_gateway.api.errors import error_headers, http_error, openai_error_body
from llm_gateway.api.openai.handlers import ChatCompletions
from llm_gateway.api.openai.models import ModelCatalog
from llm_gateway.api.origin import loopback_request_ok
from llm_gateway.api.sse import HeartbeatTicker
from llm_gateway.api.ws.hub import StatusHub
from llm_gateway.config.schema import GatewayConfig, ModelConfig
from llm_gateway.core.errors import GatewayError, PermissionDeniedError
from llm_gateway.gate import Gate
from llm_gateway.gate.service import AccessService, OpenModeRefused
from llm_gateway.providers.base import Provider
from llm_gateway.providers.registry import build_providers
from llm_gateway.routing.model_table import ModelTable
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import ModelPolicy, Router, build_plans
from llm_gateway.runtime import apply_logging, tune_gc
from llm_gateway.status import DependencyChecks, HealthChecker, ProviderTracker
from llm_gateway.status.checks import preferred_models
from llm_gateway.storage.base import Storage

log = logging.getLogger("llm_gateway")

CONFIG_PATH_ENV = "LLM_GATEWAY_CONFIG"


def policy_of(model: ModelConfig) -> ModelPolicy:
    return ModelPolicy(
        timeout=model.timeout,
        first_token_timeout=model.first_token_timeout,
        idle_timeout=model.idle_timeout,
        retries=model.retries,
        breaker=model.breaker,
        hedge=model.hedge,
    )


class _StorageWhenOpen:
    """Stands in for the storage while it is opening: each call waits for it first."""

    def __init__(self, access: AccessService) -> None:
        self._access = access

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            storage = await self._access.wait_for_storage()
            return await getattr(storage, name)(*args, **kwargs)

        return call


class GatewayState:
    """Everything built from one config load."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.providers, self.unavailable = build_providers(config.providers)
        self.table = ModelTable.from_config(config)
        templates = {
            name: Route(
                name,
                "",
                self.providers.get(name),
                self.unavailable.get(name),
                provider_type=cfg.type,
                first_token_timeout=cfg.first_token_timeout,
                idle_timeout=cfg.idle_timeout,
                rpm=cfg.rpm,
                tpm=cfg.tpm,
            )
            for name, cfg in config.providers.items()
        }
        plans = build_plans(
            {
                name: [
                    msgspec.structs.replace(templates[r.provider], model=r.model, weight=r.weight)
                    for r in model.routes
                ]
                for name, model in config.models.items()
            },
            defaults={n: m.defaults for n, m in config.models.items()},
            caps={n: m.max_tokens_cap for n, m in config.models.items()},
            policies={n: policy_of(m) for n, m in config.models.items()},
            strategies={n: m.strategy for n, m in config.models.items()},
        )
        self.router = Router(
            self.providers,
            self.unavailable,
            plans,
            table=self.table,
            provider_routes=templates,
            on_breaker_change=self._on_breaker_change,
            on_outcome=self._on_outcome,
        )
        # Provider state from call outcomes, breakers and checks (status/); the lead
        # registers optional dependencies (database, redis) on ``dependencies``.
        self.tracker = ProviderTracker(
            {name: cfg.type for name, cfg in config.providers.items()}, self.unavailable
        )
        self.checker = HealthChecker(
            self.tracker,
            self.providers,
            startup_bound=config.status.startup_check_seconds,
            preferred_models=preferred_models(config.models),
        )
        self.dependencies = DependencyChecks()
        self.ticker = HeartbeatTicker(config.server.heartbeat_seconds)
        self.catalog = ModelCatalog(self.router, self.providers)
        admin = config.auth.admin_key
        # Access control and accounting for every surface; storage, limits and the ledger
        # writer are attached in ``start`` (see gate/).
        self.gate = Gate(
            admin_key=admin.get_secret_value() if admin is not None else None, table=self.table
        )
        # The live status feed: provider state changes, usage records, periodic status.
        self.hub = StatusHub(self.tracker, interval=config.status.interval_seconds)
        self.gate.add_observer(self.hub.on_usage)
        self.access = AccessService(config, self.gate, self.router)

    @property
    def storage(self) -> Storage:
        """The key store and usage ledger. With SQLite it opens just behind start-up;
        until then calls wait for it (a few seconds at most, then 503)."""
        if self.access.storage is None:
            return cast(Storage, _StorageWhenOpen(self.access))
        return self.access.storage

    @property
    def writer(self) -> Any:
        """The usage ledger writer (``storage.writer.UsageWriter``), once started."""
        return self.access.writer

    async def keys_changed(self) -> None:
        """Reload the key snapshot after an admin change, here and on every replica."""
        await self.access.keys_changed()

    async def start_access(self) -> None:
        """Open storage, run migrations, load keys, start the ledger writer and limits."""
        await self.access.start()
        # /health reports them as components, each check bounded (see status/).
        self.dependencies.register_dependency("database", self.access.ping_database)
        if self.config.redis.url is not None:
            self.dependencies.register_dependency("redis", self.access.ping_redis)

    def _on_breaker_change(self, route: Route, old: str, new: str) -> None:
        log.info("route %s circuit: %s -> %s", route.label, old, new)
        self.tracker.breaker_changed(route.provider_name, route.label, new)

    def _on_outcome(self, route: Route, error: GatewayError | None, seconds: float) -> None:
        self.tracker.record_outcome(route.provider_name, error, seconds)

    def provider_states(self) -> dict[str, str]:
        """NOT_CONFIGURED, UNHEALTHY or HEALTHY, per provider (see status/tracker.py)."""
        return {name: state.value for name, state in self.tracker.states().items()}

    def start(self) -> None:
        # The local tokenizer (about 34 MB, 0.4 s to load) is not loaded here: most
        # providers report usage, and the first count that needs it loads it in a thread
        # (counts use the estimate until then; see accounting/tokens.py).
        apply_logging(self.config.logging)
        tune_gc()
        self.ticker.start()
        self.hub.start()
        if self.config.status.check_on_startup:
            self.checker.start()  # never blocks start-up: see status/checks.py

    async def aclose(self) -> None:
        await self.access.aclose()
        await self.ticker.stop()
        await self.checker.aclose()
        await self.hub.aclose()
        providers: list[Provider] = list(self.providers.values())
        await asyncio.gather(*(p.aclose() for p in providers), return_exceptions=True)


def _build_api(state: GatewayState) -> ASGIApp:
    from llm_gateway.api.fastapi_app import build_api

    api = build_api(state)
    gc.freeze()  # the route graph lives as long as the process: keep it out of collections
    return api


class GatewayApp:
    """Dispatches hot (method, path) pairs to raw handlers, the rest to FastAPI."""

    def __init__(self, state: GatewayState, fast: dict[tuple[str, str], ASGIApp]) -> None:
        self.state = state
        self._fast = fast
        self._fast_paths = {path: method for method, path in fast}
        self._api: ASGIApp | None = None
        self._api_loading: asyncio.Future[ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.state.gate.open_mode and not loopback_request_ok(scope):
                await self._refuse_non_loopback(scope, send)
                return
            handler = self._fast.get((scope["method"], scope["path"]))
            if handler is not None:
                await handler(scope, receive, send)
                return
            if scope["path"] in self._fast_paths:
                await self._method_not_allowed(scope, send)
                return
        elif kind == "lifespan":
            await self._lifespan(receive, send)
            return
        api = self._api or await self.api()
        await api(scope, receive, send)

    async def _refuse_non_loopback(self, scope: Scope, send: Send) -> None:
        # Open mode trusts whoever can reach the socket, which must then be this machine
        # only: a web page's cross-site request or a DNS-rebound name is refused.
        error = PermissionDeniedError(
            "In open mode the gateway serves only this machine: the request's Host or "
            "Origin is not a loopback address.",
            code="non_loopback_origin",
        )
        await send_body(
            send, 403, openai_error_body(error), error_headers(error, request_id(scope))
        )

    async def _method_not_allowed(self, scope: Scope, send: Send) -> None:
        error = http_error(405, scope["method"], scope["path"])
        headers = error_headers(error, request_id(scope))
        headers.append((b"allow", self._fast_paths[scope["path"]].encode()))
        await send_body(send, 405, openai_error_body(error), headers)

    def _start_loading_api(self) -> asyncio.Future[ASGIApp]:
        if self._api_loading is None:
            loop = asyncio.get_running_loop()
            self._api_loading = loop.run_in_executor(None, _build_api, self.state)
        return self._api_loading

    async def api(self) -> ASGIApp:
        """The FastAPI app, once built."""
        if self._api is None:
            self._api = await self._start_loading_api()
        return self._api

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.state.start()
                    await self.state.start_access()
                    self._start_loading_api()
                except OpenModeRefused as exc:  # a refusal, not a crash: no traceback
                    log.error("%s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._api_loading is not None:
                    # Never leave the build thread running past shutdown.
                    await asyncio.wait([self._api_loading])
                await self.state.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(config: GatewayConfig) -> GatewayApp:
    state = GatewayState(config)
    chat = ChatCompletions(
        state.router,
        state.gate,
        max_body_bytes=config.server.max_body_bytes,
        max_messages=config.server.max_messages,
        ticker=state.ticker,
    )
    fast: dict[tuple[str, str], ASGIApp] = {
        ("POST", "/v1/chat/completions"): chat,
        # Clients configured with a base URL without /v1 still work.
        ("POST", "/chat/completions"): chat,
        # Anthropic's Messages API, so Anthropic SDK clients can use any provider.
        ("POST", "/v1/messages"): Messages(
            state.router,
            state.gate,
            max_body_bytes=config.server.max_body_bytes,
            max_messages=config.server.max_messages,
            ticker=state.ticker,
        ),
        ("POST", "/v1/messages/count_tokens"): CountTokens(
            state.router, state.gate, max_body_bytes=config.server.max_body_bytes
        ),
    }
    return GatewayApp(state, fast)


def app_from_env() -> GatewayApp:
    """Factory for ``uvicorn --factory`` and multi-worker serving: config from the env."""
    from llm_gateway.config.loader import load_config

    return create_app(load_config(os.environ.get(CONFIG_PATH_ENV) or None))


__all__ = ["GatewayApp", "GatewayState", "app_from_env", "create_app"]
