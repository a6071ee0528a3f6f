"""Health checks: a cheap model listing at start-up, a minimal completion on demand.

Start-up never blocks the server: ``start()`` schedules the listing of every provider,
concurrently, as a background task, and returns at once (the product promises the first
answer within a second of process start; a slow provider must not hold that hostage).
``startup_done`` is set once every check has ended or ``startup_bound`` seconds have
passed, whichever comes first; a check still running then continues in the background and
updates the provider's state when it ends (bounded by ``check_timeout``).

The listing is free on every provider API; the completion check (``GET
/api/llm/health?check=true``, admin only) costs one token (``max_tokens: 1``). Completion
checks of one provider are merged: callers arriving while one runs share its result, and a
result is reused for ``COMPLETION_CACHE_SECONDS``, so a burst of checks makes one paid call.
The model checked is the provider's first configured route's model, else the first model
it lists that can chat (not an embedding, speech, image or moderation model).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from llm_gateway.config.schema import ModelConfig
from llm_gateway.core.errors import (
    GatewayError,
    NotFoundError,
    ProviderUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from llm_gateway.core.types import ChatRequest, Message
from llm_gateway.providers.base import Provider
from llm_gateway.status.tracker import ErrorInfo, ProviderTracker

log = logging.getLogger("llm_gateway.status")

T = TypeVar("T")

CHECK_PROMPT = "ping"  # the minimal completion's whole prompt
COMPLETION_CACHE_SECONDS = 10.0
# Listed models that cannot answer a chat completion (OpenAI-style names).
_NOT_CHAT = ("embed", "whisper", "tts", "dall-e", "moderation", "transcribe", "image")


def chat_model(models: Iterable[str]) -> str | None:
    """The first model id that looks like a chat model."""
    for model in models:
        lowered = model.lower()
        if not any(marker in lowered for marker in _NOT_CHAT):
            return model
    return None


@dataclass(frozen=True)
class CheckResult:
    provider: str
    kind: Literal["models", "completion"]
    ok: bool
    seconds: float
    model: str | None = None
    models: tuple[str, ...] = ()
    error: ErrorInfo | None = None


class HealthChecker:
    def __init__(
        self,
        tracker: ProviderTracker,
        providers: Mapping[str, Provider],
        *,
        startup_bound: float,
        check_timeout: float = 30.0,
        preferred_models: Mapping[str, str] | None = None,
    ) -> None:
        """``preferred_models``: the model a completion check uses per provider (the first
        configured route's model); otherwise the first model the provider listed."""
        self._tracker = tracker
        self._providers = dict(providers)
        self._bound = startup_bound
        self._timeout = check_timeout
        self._preferred = dict(preferred_models or {})
        self._tasks: set[asyncio.Task[object]] = set()
        self._completions: dict[str, asyncio.Task[CheckResult]] = {}  # running, by provider
        self._recent: dict[str, tuple[float, CheckResult]] = {}  # monotonic end, result
        self.cache_seconds = COMPLETION_CACHE_SECONDS
        self.startup_done = asyncio.Event()

    # -- start-up -------------------------------------------------------------------------

    def start(self) -> None:
        """Schedules the start-up listing of every provider; returns at once."""
        if not self._providers:
            self.startup_done.set()
            return
        self._spawn(self._startup())

    async def _startup(self) -> None:
        started = time.monotonic()
        checks = [self._spawn(self.list_models(name)) for name in self._providers]
        done, pending = await asyncio.wait(checks, timeout=self._bound)
        healthy = sum(1 for task in done if not task.cancelled() and _ok(task))
        log.info(
            "start-up checks: %d of %d providers answered in %.2f s (%d healthy)%s",
            len(done),
            len(checks),
            time.monotonic() - started,
            healthy,
            f"; {len(pending)} still checking in the background" if pending else "",
        )
        self.startup_done.set()

    def _spawn(self, work: Awaitable[T]) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- checks -------------------------------------------------------------------------------

    async def list_models(self, name: str) -> CheckResult:
        """Lists the provider's models (free) and records the outcome in the tracker."""
        provider = self._providers.get(name)
        if provider is None:
            return _not_configured(name, "models")
        started = time.monotonic()
        try:
            listed = await self._bounded(provider.list_models)
        except GatewayError as error:
            return self._record(name, "models", started, error=error)
        models = tuple(m.id for m in listed)
        return self._record(name, "models", started, models=models)

    async def complete(self, name: str) -> CheckResult:
        """One real completion of ``max_tokens: 1`` on a model of the provider, shared by
        concurrent callers and reused for ``cache_seconds``."""
        recent = self._recent.get(name)
        if recent is not None and time.monotonic() - recent[0] < self.cache_seconds:
            return recent[1]
        task = self._completions.get(name)
        if task is None:
            task = self._spawn(self._complete(name))
            self._completions[name] = task
            task.add_done_callback(lambda _: self._completions.pop(name, None))
        # Shielded: a caller that goes away does not cancel the check others await.
        return await asyncio.shield(task)

    async def _complete(self, name: str) -> CheckResult:
        provider = self._providers.get(name)
        if provider is None:
            return _not_configured(name, "completion")
        started = time.monotonic()
        model = self._preferred.get(name) or chat_model(self._tracker.models(name))
        try:
            if model is None:
                listed = await self._bounded(provider.list_models)
                model = chat_model(m.id for m in listed)
            if model is None:
                raise NotFoundError(
                    f"provider '{name}' lists no chat model to check", provider=name
                )
            chosen = model
            request = ChatRequest(
                model=chosen, messages=[Message(role="user", content=CHECK_PROMPT)], max_tokens=1
            )
            await self._bounded(lambda: provider.complete(request, chosen))
        except GatewayError as error:
            result = self._record(name, "completion", started, model=model, error=error)
        else:
            result = self._record(name, "completion", started, model=model)
        self._recent[name] = (time.monotonic(), result)
        return result

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await call()
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"the health check got no answer within {self._timeout:g} s"
            ) from None
        except GatewayError:
            raise
        except Exception as exc:  # an adapter bug still says the provider is not usable
            raise UpstreamError(f"the health check failed: {type(exc).__name__}") from exc

    def _record(
        self,
        name: str,
        kind: Literal["models", "completion"],
        started: float,
        *,
        model: str | None = None,
        models: tuple[str, ...] | None = None,
        error: GatewayError | None = None,
    ) -> CheckResult:
        seconds = time.monotonic() - started
        self._tracker.record_check(name, error, seconds, models)
        info = ErrorInfo.of(error, time.time()) if error is not None else None
        return CheckResult(name, kind, error is None, seconds, model, models or (), info)


def preferred_models(models: Mapping[str, ModelConfig]) -> dict[str, str]:
    """Each provider's model for a completion check: its first configured route's model."""
    chosen: dict[str, str] = {}
    for model in models.values():
        for route in model.routes:
            chosen.setdefault(route.provider, route.model)
    return chosen


def _ok(task: asyncio.Task[CheckResult]) -> bool:
    return task.exception() is None and task.result().ok


def _not_configured(name: str, kind: Literal["models", "completion"]) -> CheckResult:
    error = ProviderUnavailableError(f"provider '{name}' is not configured", provider=name)
    return CheckResult(name, kind, False, 0.0, error=ErrorInfo.of(error, time.time()))
