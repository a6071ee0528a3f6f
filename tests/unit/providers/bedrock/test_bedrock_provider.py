"""The adapter against the fake Bedrock on a real socket: what the conformance kit does
not cover (in-stream exception frames, signatures over awkward model ids, temporary
credentials, the control-plane model list, building from config)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.fakes.bedrock_upstream import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    BedrockScenario,
    BedrockUpstream,
)
from tests.fakes.scenarios import Scenario
from tests.fakes.server import RunningServer, run_server

from llm_gateway.config.schema import BedrockProviderConfig
from llm_gateway.core.errors import (
    GatewayError,
    ProviderOverloadedError,
    RateLimitError,
    UpstreamAuthenticationError,
    UpstreamError,
)
from llm_gateway.core.events import StreamEvent, TextDelta
from llm_gateway.core.types import ChatRequest, Message
from llm_gateway.http.client import HttpClient
from llm_gateway.providers.bedrock.credentials import CredentialChain, Credentials
from llm_gateway.providers.bedrock.provider import BedrockProvider, Endpoint
from llm_gateway.providers.registry import build_providers

ASK = ChatRequest(model="m", messages=[Message("user", "Hi")])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[BedrockUpstream, RunningServer]]:
    fake = BedrockUpstream(session_token="session-tok")
    with run_server(fake) as server:
        yield fake, server


@pytest.fixture
def fake(served: tuple[BedrockUpstream, RunningServer]) -> BedrockUpstream:
    served[0].reset()
    return served[0]


def make(url: str, creds: Credentials, *, control: bool = False) -> BedrockProvider:
    def endpoint() -> Endpoint:
        return Endpoint(url, HttpClient(url, connect_timeout=2.0, read_timeout=5.0))

    return BedrockProvider(
        "aws",
        endpoint(),
        region=REGION,
        credentials=CredentialChain(explicit=creds, environ={}),
        control=endpoint() if control else None,
    )


@pytest.fixture
async def provider(served: tuple[BedrockUpstream, RunningServer]) -> AsyncIterator[BedrockProvider]:
    p = make(served[1].url, Credentials(ACCESS_KEY, SECRET_KEY, "session-tok"), control=True)
    yield p
    await p.aclose()


async def drain(
    provider: BedrockProvider, model: str
) -> tuple[list[StreamEvent], GatewayError | None]:
    events: list[StreamEvent] = []
    try:
        async for batch in provider.stream(ASK, model):
            assert batch
            events.extend(batch)
    except GatewayError as exc:
        return events, exc
    return events, None


@pytest.mark.parametrize(
    "model",
    [
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-3-70b-instruct-v1:0",
        "mistral.mistral-large-2407-v1:0",
        "amazon.nova-pro-v1:0",
    ],
)
async def test_signed_requests_for_awkward_model_ids(
    fake: BedrockUpstream, provider: BedrockProvider, model: str
) -> None:
    fake.queue(Scenario.reply("Hi"), Scenario.reply("Hi", " there"))
    assert (await provider.complete(ASK, model)).content == "Hi"
    events, error = await drain(provider, model)
    assert (
        error is None and "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hi there"
    )
    assert fake.signature_failures == []
    assert [fake.read(i).model for i in range(2)] == [model, model]
    assert fake.requests[0].headers["x-amz-security-token"] == "session-tok"


@pytest.mark.parametrize(
    ("exception", "cls"),
    [("throttlingException", RateLimitError), ("serviceUnavailableException", ProviderOverloadedError),
     ("modelStreamErrorException", UpstreamError), ("internalServerException", UpstreamError)],
)  # fmt: skip
async def test_in_stream_exception_frames(
    fake: BedrockUpstream, provider: BedrockProvider, exception: str, cls: type
) -> None:
    fake.queue(BedrockScenario(text=("a", "b", "c"), stream_exception=(exception, "went wrong"),
                               stream_exception_after=3))  # fmt: skip
    events, error = await drain(provider, "anthropic.claude-3-haiku-20240307-v1:0")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", "b"]
    assert type(error) is cls
    assert error is not None and "went wrong" in error.message and error.provider == "aws"


async def test_wrong_secret_or_missing_token_is_rejected(
    fake: BedrockUpstream, served: tuple[BedrockUpstream, RunningServer]
) -> None:
    for creds in (
        Credentials(ACCESS_KEY, "wrong", "session-tok"),
        Credentials(ACCESS_KEY, SECRET_KEY),
    ):
        bad = make(served[1].url, creds)
        try:
            with pytest.raises(UpstreamAuthenticationError) as caught:
                await bad.complete(ASK, "anthropic.claude-v2")
            assert "InvalidSignatureException" in caught.value.message
        finally:
            await bad.aclose()
    assert fake.signature_failures == ["signature mismatch", "missing or wrong security token"]


async def test_list_models_from_the_control_plane(provider: BedrockProvider) -> None:
    assert [m.id for m in await provider.list_models()] == ["fake-model-small", "fake-model-large"]


async def test_built_from_config_with_environment_credentials(
    served: tuple[BedrockUpstream, RunningServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fake, server = served
    fake.reset()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-tok")
    configs = {
        "aws": BedrockProviderConfig(type="bedrock", region=REGION, base_url=server.url,
                                     models=["us.amazon.nova-lite-v1:0"]),
        "noregion": BedrockProviderConfig(type="bedrock"),
    }  # fmt: skip
    providers, unavailable = build_providers(configs)
    assert list(providers) == ["aws"] and "noregion" in unavailable
    aws = providers["aws"]
    try:
        fake.queue(Scenario.reply("built"))
        assert (await aws.complete(ASK, "us.amazon.nova-lite-v1:0")).content == "built"
        assert [m.id for m in await aws.list_models()] == ["us.amazon.nova-lite-v1:0"]
    finally:
        await aws.aclose()
