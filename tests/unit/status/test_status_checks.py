"""Start-up checks never wait past their bound; completion checks cost one token;
dependency checks are bounded and shared."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from llm_gateway.core.errors import UpstreamError
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse, ModelInfo
from llm_gateway.status import DependencyChecks, HealthChecker, ProviderState, ProviderTracker


class FakeProvider:
    type = "fake"

    def __init__(self, name: str, *, delay: float = 0.0, fail: bool = False) -> None:
        self.name = name
        self.delay = delay
        self.fail = fail
        self.listings = 0
        self.completions: list[tuple[ChatRequest, str]] = []

    async def list_models(self) -> list[ModelInfo]:
        self.listings += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise UpstreamError("listing broke", upstream_status=500)
        return [ModelInfo(id=f"{self.name}-m1", owned_by=self.name)]

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        self.completions.append((request, model))
        raise UpstreamError("not needed")

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[list[StreamEvent]]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def checker_for(*providers: FakeProvider, bound: float, timeout: float = 30.0) -> HealthChecker:
    tracker = ProviderTracker({p.name: "fake" for p in providers}, {})
    return HealthChecker(
        tracker, {p.name: p for p in providers}, startup_bound=bound, check_timeout=timeout
    )


async def test_startup_returns_at_once_and_the_bound_ends_the_wait() -> None:
    fast, slow = FakeProvider("fast"), FakeProvider("slow", delay=0.6)
    checker = checker_for(fast, slow, bound=0.2)
    tracker = checker._tracker
    started = time.monotonic()
    checker.start()
    assert time.monotonic() - started < 0.01  # scheduling only
    await asyncio.wait_for(checker.startup_done.wait(), 0.5)
    waited = time.monotonic() - started
    assert 0.15 <= waited < 0.4, waited
    assert tracker.snapshot("fast").models == ("fast-m1",)
    assert tracker.snapshot("slow").checked_at is None  # still checking in the background
    await asyncio.sleep(0.55)
    assert tracker.snapshot("slow").models == ("slow-m1",)
    assert (fast.listings, slow.listings) == (1, 1)
    await checker.aclose()


async def test_a_hanging_check_times_out_as_unhealthy() -> None:
    hang = FakeProvider("hang", delay=10)
    checker = checker_for(hang, bound=0.05, timeout=0.2)
    checker.start()
    await asyncio.sleep(0.35)
    snap = checker._tracker.snapshot("hang")
    assert snap.state == ProviderState.UNHEALTHY
    assert snap.error is not None and snap.error.code == "timeout"
    await checker.aclose()


async def test_completion_check_uses_one_token_on_the_preferred_or_listed_model() -> None:
    a, b = FakeProvider("a"), FakeProvider("b")
    tracker = ProviderTracker({"a": "fake", "b": "fake"}, {})
    checker = HealthChecker(
        tracker, {"a": a, "b": b}, startup_bound=1, preferred_models={"a": "chosen"}
    )
    result = await checker.complete("a")
    assert not result.ok and result.model == "chosen" and result.kind == "completion"
    request, model = a.completions[0]
    assert model == "chosen" and request.max_tokens == 1
    assert tracker.states()["a"] == ProviderState.UNHEALTHY
    result = await checker.complete("b")
    assert b.completions[0][1] == "b-m1" and b.listings == 1
    unknown = await checker.complete("missing")
    assert not unknown.ok and unknown.error is not None
    assert unknown.error.code == "provider_unavailable"


async def test_dependency_checks_are_bounded_and_never_raise() -> None:
    deps = DependencyChecks(timeout=0.2, cache_seconds=0.0)
    calls: list[str] = []

    async def ok() -> None:
        calls.append("ok")

    async def hangs() -> None:
        await asyncio.sleep(10)

    async def broken() -> None:
        raise ConnectionRefusedError("postgresql://u:secret@db refused")

    deps.register_dependency("database", ok)
    deps.register_dependency("redis", hangs)
    deps.register_dependency("other", broken)
    started = time.monotonic()
    results = await deps.results()
    assert time.monotonic() - started < 0.35
    assert results["database"].status == "ok"
    assert results["redis"].status == "timeout"
    assert results["other"].status == "error" and results["other"].error == "ConnectionRefusedError"
    assert "secret" not in repr(results)


async def test_dependency_results_are_shared_by_concurrent_callers() -> None:
    deps = DependencyChecks(timeout=0.5, cache_seconds=5.0)
    calls = 0

    async def slowish() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)

    deps.register_dependency("database", slowish)
    first = await asyncio.gather(*(deps.results() for _ in range(10)))
    assert calls == 1 and all(r["database"].status == "ok" for r in first)
    await deps.results()
    assert calls == 1  # cached


@pytest.mark.parametrize("names", [[], ["x"]])
async def test_no_dependencies_means_no_components(names: list[str]) -> None:
    deps = DependencyChecks()
    for name in names:

        async def fine() -> None:
            return None

        deps.register_dependency(name, fine)
    assert list(await deps.results()) == names


class CountingProvider(FakeProvider):
    """Lists non-chat models first; each completion takes a while and succeeds."""

    async def list_models(self) -> list[ModelInfo]:
        self.listings += 1
        names = ("text-embedding-3-small", "whisper-1", "tts-1", "omni-moderation", "gpt-x")
        return [ModelInfo(id=n, owned_by=self.name) for n in names]

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        self.completions.append((request, model))
        await asyncio.sleep(0.1)
        return ChatResponse(id="c", model=model, created=0, content="p")


async def test_concurrent_completion_checks_share_one_call_and_reuse_it() -> None:
    provider = CountingProvider("p")
    checker = checker_for(provider, bound=1)
    results = await asyncio.gather(*(checker.complete("p") for _ in range(20)))
    assert len(provider.completions) == 1  # one paid call for twenty callers
    assert all(r is results[0] for r in results) and results[0].ok
    assert provider.completions[0][1] == "gpt-x"  # not the embedding, speech or moderation
    assert (await checker.complete("p")) is results[0]  # reused within the cache period
    assert len(provider.completions) == 1
    checker.cache_seconds = 0.0
    assert (await checker.complete("p")).ok and len(provider.completions) == 2
    await checker.aclose()


def test_chat_model_skips_models_that_cannot_chat() -> None:
    from llm_gateway.status.checks import chat_model

    assert chat_model(["text-embedding-ada-002", "dall-e-3", "gpt-4o-mini"]) == "gpt-4o-mini"
    assert chat_model(["whisper-1", "tts-1-hd"]) is None
    assert chat_model([]) is None
