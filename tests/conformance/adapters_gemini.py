"""The Gemini adapter in the conformance suite, against ``GeminiUpstream`` on a socket."""

from __future__ import annotations

from llm_gateway.http.client import HttpClient
from llm_gateway.providers.base import Provider
from llm_gateway.providers.gemini import GeminiProvider, api_root
from tests.conformance.adapters import TEST_KEY, AdapterSpec, FakeUpstream
from tests.fakes.gemini_upstream import GeminiUpstream


def _make_fake() -> FakeUpstream:
    # Current Gemini models return functionCall ids, which the suite's id checks need;
    # the id-less path (synthesised ids) is covered by the unit and end-to-end tests.
    return GeminiUpstream(api_key=TEST_KEY, call_ids=True)


def _make_provider(url: str, read_timeout: float) -> Provider:
    client = HttpClient(api_root(url), connect_timeout=2.0, read_timeout=read_timeout)
    return GeminiProvider("gemini", client, api_key=TEST_KEY)


SPEC = AdapterSpec(
    id="gemini",
    make_fake=_make_fake,
    make_provider=_make_provider,
    unsupported={
        "cost": "the wire reports no charge; cost is priced by the gateway",
        "streamed_argument_fragments": "Gemini sends each functionCall whole, never in pieces",
        "parallel_tool_calls": "Gemini has no parallel_tool_calls parameter; nothing reaches the wire",
    },
)
