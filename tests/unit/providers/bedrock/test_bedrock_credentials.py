"""The credential chain with a temporary HOME and a controlled environment, and container
credentials served by a local fake on a real socket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.server import RunningServer, run_server

from llm_gateway.core.errors import ProviderUnavailableError
from llm_gateway.core.types import ChatRequest, Message
from llm_gateway.http.client import HttpClient
from llm_gateway.providers.bedrock.credentials import (
    CredentialChain,
    Credentials,
    NoCredentialsError,
)
from llm_gateway.providers.bedrock.provider import BedrockProvider, Endpoint

ENV_KEYS = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "envsecret"}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


async def test_explicit_keys_win_over_everything(tmp_path: Path) -> None:
    write(
        tmp_path / ".aws/credentials",
        "[default]\naws_access_key_id=AKIDFILE\naws_secret_access_key=f\n",
    )
    explicit = Credentials("AKIDCFG", "cfgsecret", "tok")
    chain = CredentialChain(explicit=explicit, environ=ENV_KEYS, home=tmp_path)
    assert chain.resolve_static() == explicit
    assert await chain.get() == explicit


async def test_environment_then_files(tmp_path: Path) -> None:
    env = {**ENV_KEYS, "AWS_SESSION_TOKEN": "envtoken"}
    found = await CredentialChain(environ=env, home=tmp_path).get()
    assert (found.access_key_id, found.session_token, found.source) == (
        "AKIDENV",
        "envtoken",
        "environment",
    )
    write(tmp_path / ".aws/credentials", "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = filesecret\naws_session_token = filetoken\n")  # fmt: skip
    found = await CredentialChain(environ={}, home=tmp_path).get()
    assert (found.access_key_id, found.secret_access_key, found.session_token) == (
        "AKIDFILE",
        "filesecret",
        "filetoken",
    )


async def test_profiles_from_credentials_and_config_files(tmp_path: Path) -> None:
    write(tmp_path / ".aws/credentials", "[default]\naws_access_key_id=A1\naws_secret_access_key=s1\n[work]\naws_access_key_id=A2\naws_secret_access_key=s2\n")  # fmt: skip
    write(tmp_path / ".aws/config", "[default]\nregion=us-east-1\n[profile ops]\naws_access_key_id=A3\naws_secret_access_key=s3\n")  # fmt: skip
    by_env = await CredentialChain(environ={"AWS_PROFILE": "work"}, home=tmp_path).get()
    assert by_env.access_key_id == "A2"
    from_config = await CredentialChain(profile="ops", environ={}, home=tmp_path).get()
    assert (from_config.access_key_id, from_config.source) == ("A3", "config file [profile ops]")
    # An explicit profile is not overridden by keys in the environment (botocore's rule).
    explicit = await CredentialChain(profile="work", environ=ENV_KEYS, home=tmp_path).get()
    assert explicit.access_key_id == "A2"


async def test_file_locations_from_environment(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.ini"
    write(other, "[default]\naws_access_key_id=A9\naws_secret_access_key=s9\n")
    chain = CredentialChain(environ={"AWS_SHARED_CREDENTIALS_FILE": str(other)}, home=tmp_path)
    assert (await chain.get()).access_key_id == "A9"


async def test_nothing_found_says_what_was_tried(tmp_path: Path) -> None:
    write(tmp_path / ".aws/config", "[profile sso]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n")  # fmt: skip
    chain = CredentialChain(profile="sso", environ={}, home=tmp_path)
    assert chain.resolve_static() is None
    with pytest.raises(NoCredentialsError) as caught:
        await chain.get()
    message = str(caught.value)
    assert "role_arn, which is not supported" in message
    assert "IMDS" in message and "profile 'sso'" in message


async def test_provider_without_credentials_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    client = HttpClient("http://127.0.0.1:9", connect_timeout=0.5)
    provider = BedrockProvider(
        "aws",
        Endpoint("http://127.0.0.1:9", client),
        region="us-east-1",
        credentials=CredentialChain(environ={}, home=tmp_path),
    )
    request = ChatRequest(model="m", messages=[Message("user", "hi")])
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            await provider.complete(request, "anthropic.claude-3-haiku-20240307-v1:0")
        assert caught.value.code == "provider_not_configured"
        assert "no AWS credentials found" in caught.value.message
        with pytest.raises(ProviderUnavailableError):
            await anext(provider.stream(request, "m"))
    finally:
        await provider.aclose()


# --- container credentials ------------------------------------------------------------------


class CredentialsEndpoint:
    """The ECS/EKS agent: answers credentials that expire in ``lifetime`` seconds."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.lifetime = 3600.0
        self.hits: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.hits.append(headers)
        n = len(self.hits)
        if headers.get("authorization") != self.token:
            status, body = 401, {"message": "bad token"}
        else:
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.lifetime))
            status, body = 200, {"AccessKeyId": f"ASIA{n}", "SecretAccessKey": f"s{n}",
                                 "Token": f"t{n}", "Expiration": expires}  # fmt: skip
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": data})


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[CredentialsEndpoint, RunningServer]]:
    endpoint = CredentialsEndpoint("Bearer agent-token")
    with run_server(endpoint) as server:
        yield endpoint, server


async def test_container_credentials_with_token_file_and_refresh(
    agent: tuple[CredentialsEndpoint, RunningServer], tmp_path: Path
) -> None:
    endpoint, server = agent
    endpoint.hits.clear()
    token_file = tmp_path / "token"
    token_file.write_text("Bearer agent-token\n")
    env = {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server.url}/v2/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    chain = CredentialChain(environ=env, home=tmp_path)
    assert chain.resolve_static() is None
    endpoint.lifetime = 120.0  # inside the refresh window: every get() fetches anew
    first = await chain.get()
    assert (first.access_key_id, first.session_token, first.source) == ("ASIA1", "t1", "container")
    assert first.expiration is not None and first.expiration > time.time()
    endpoint.lifetime = 3600.0
    second = await chain.get()
    assert second.access_key_id == "ASIA2"
    assert await chain.get() is second  # fresh for an hour: served from the cache
    assert len(endpoint.hits) == 2
    assert endpoint.hits[0]["authorization"] == "Bearer agent-token"


async def test_container_failures_are_clear(
    agent: tuple[CredentialsEndpoint, RunningServer], tmp_path: Path
) -> None:
    _, server = agent
    wrong = CredentialChain(
        environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{server.url}/c",
                 "AWS_CONTAINER_AUTHORIZATION_TOKEN": "nope"},
        home=tmp_path,
    )  # fmt: skip
    with pytest.raises(NoCredentialsError, match="HTTP 401"):
        await wrong.get()
    remote = CredentialChain(
        environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds"}, home=tmp_path
    )
    with pytest.raises(NoCredentialsError, match="not https, loopback"):
        await remote.get()
