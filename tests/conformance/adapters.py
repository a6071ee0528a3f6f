"""The adapters the conformance suite runs against: one entry per adapter.

Adding an adapter = appending one ``AdapterSpec`` that builds its fake upstream (an ASGI
app speaking that provider's exact wire format) and the provider pointed at it. Cases an
adapter cannot support are listed in ``unsupported`` with the reason, and are skipped
explicitly rather than silently passing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from llm_gateway.core.types import ChatRequest
from llm_gateway.http.client import HttpClient
from llm_gateway.providers.base import Provider
from llm_gateway.providers.families import FAMILIES
from llm_gateway.providers.openai import OpenAIProvider
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import Scenario

TEST_KEY = "test-key-123"


class FakeUpstream(Protocol):
    """What the suite needs from a fake: an ASGI app it can script and inspect."""

    requests: list[Any]  # recorded requests, oldest first
    disconnects: list[Any]  # client disconnects seen before a response finished

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...
    def queue(self, *scenarios: Scenario) -> None: ...
    def reset(self) -> None: ...
    def read(self, index: int = -1) -> ChatRequest: ...
    async def await_disconnect(self) -> Any: ...


@dataclass(frozen=True)
class AdapterSpec:
    id: str
    make_fake: Callable[[], FakeUpstream]
    # (fake's base URL, read timeout in seconds) -> a provider talking to it.
    make_provider: Callable[[str, float], Provider]
    model: str = "fake-model-small"
    # The models list_models should report.
    models: tuple[str, ...] = ("fake-model-small", "fake-model-large")
    # case name -> why this adapter cannot support it.
    unsupported: Mapping[str, str] = field(default_factory=dict)


def _openai_family(type_name: str, **unsupported: str) -> AdapterSpec:
    family = FAMILIES[type_name]
    key = TEST_KEY if family.requires_key else None

    def make_fake() -> FakeUpstream:
        return OpenAIUpstream(type_name, api_key=key)

    def make_provider(url: str, read_timeout: float) -> Provider:
        client = HttpClient(f"{url}/v1", connect_timeout=2.0, read_timeout=read_timeout)
        return OpenAIProvider(type_name, family, client, api_key=key)

    return AdapterSpec(
        id=type_name, make_fake=make_fake, make_provider=make_provider, unsupported=unsupported
    )


_NO_COST = "the wire reports no charge; cost is priced by the gateway"
_NO_REASONING = "the chat-completions wire of this vendor carries no reasoning text"

ADAPTERS: list[AdapterSpec] = [
    _openai_family("openai", reasoning=_NO_REASONING, cost=_NO_COST),
    _openai_family("groq", cost=_NO_COST),
    _openai_family(
        "openrouter",
        context_length="OpenRouter reports context overflow as a plain 400 without a code",
    ),
    _openai_family("deepseek", cost=_NO_COST),
    _openai_family("mistral", reasoning=_NO_REASONING, cost=_NO_COST),
    _openai_family("openai_compatible", cost=_NO_COST),
]

from tests.conformance.adapters_gemini import SPEC as _GEMINI  # noqa: E402

ADAPTERS.append(_GEMINI)
from tests.conformance.adapters_anthropic import SPEC as _ANTHROPIC  # noqa: E402

ADAPTERS.append(_ANTHROPIC)
from tests.conformance.adapters_bedrock import SPEC as _BEDROCK  # noqa: E402

ADAPTERS.append(_BEDROCK)
