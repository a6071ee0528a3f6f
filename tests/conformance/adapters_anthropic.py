"""The Anthropic Messages adapter in the conformance suite, against ``AnthropicUpstream``."""

from __future__ import annotations

from llm_gateway.http.client import HttpClient
from llm_gateway.providers.anthropic import AnthropicProvider
from llm_gateway.providers.base import Provider
from tests.conformance.adapters import TEST_KEY, AdapterSpec, FakeUpstream
from tests.fakes.anthropic_upstream import AnthropicUpstream


def _make_fake() -> FakeUpstream:
    return AnthropicUpstream(api_key=TEST_KEY)


def _make_provider(url: str, read_timeout: float) -> Provider:
    client = HttpClient(url, connect_timeout=2.0, read_timeout=read_timeout)
    return AnthropicProvider("anthropic", client, api_key=TEST_KEY)


SPEC: AdapterSpec = AdapterSpec(
    id="anthropic",
    make_fake=_make_fake,
    make_provider=_make_provider,
    unsupported={
        "cost": "the Messages API reports no charge; cost is priced by the gateway",
        "seed": "the Messages API has no seed parameter",
        "image_detail": "Anthropic image blocks have no detail level",
        "whitespace_stop": (
            "the API rejects whitespace-only stop sequences (400), so the adapter drops them"
        ),
    },
)
