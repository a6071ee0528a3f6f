"""The Bedrock adapter in the conformance suite: the fake Converse upstream (which checks
every SigV4 signature with botocore) and a ``BedrockProvider`` with the fake's test keys."""

from __future__ import annotations

from llm_gateway.http.client import HttpClient
from llm_gateway.providers.base import Provider
from llm_gateway.providers.bedrock.credentials import CredentialChain, Credentials
from llm_gateway.providers.bedrock.provider import BedrockProvider, Endpoint
from tests.conformance.adapters import AdapterSpec, FakeUpstream
from tests.fakes.bedrock_upstream import ACCESS_KEY, REGION, SECRET_KEY, BedrockUpstream

MODELS = ("fake-model-small", "fake-model-large")


def make_fake() -> FakeUpstream:
    return BedrockUpstream(models=MODELS)


def make_provider(url: str, read_timeout: float) -> Provider:
    client = HttpClient(url, connect_timeout=2.0, read_timeout=read_timeout)
    chain = CredentialChain(explicit=Credentials(ACCESS_KEY, SECRET_KEY), environ={})
    return BedrockProvider(
        "bedrock",
        Endpoint(url, client),
        region=REGION,
        credentials=chain,
        models=MODELS,
    )


SPEC = AdapterSpec(
    id="bedrock",
    make_fake=make_fake,
    make_provider=make_provider,
    models=MODELS,
    unsupported={
        "cost": "the wire reports no charge; cost is priced by the gateway",
        "reasoning_tokens": "Converse usage has no reasoning-token count",
        "image_detail": "Converse image blocks have no detail level",
        "seed": "Converse has no seed parameter (and Claude rejects one in additional fields)",
        "parallel_tool_calls": "Converse has no parallel-tool-calls switch",
    },
)
