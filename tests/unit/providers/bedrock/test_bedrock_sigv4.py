"""SigV4: AWS's published vectors, and botocore's signer on random Bedrock-like requests."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes.bedrock_upstream import ACCESS_KEY, REGION, SECRET_KEY, BedrockUpstream

from llm_gateway.providers.bedrock import sigv4
from llm_gateway.providers.bedrock.credentials import Credentials
from llm_gateway.providers.bedrock.sigv4 import SigV4Signer, canonical_uri, signing_key

# The credentials and instant of AWS's SigV4 test suite and IAM documentation example.
SUITE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC)


def signature_of(authorization: str) -> str:
    return authorization.rsplit("Signature=", 1)[1]


@pytest.mark.parametrize(
    ("name", "method", "query", "signature"),
    [
        ("get-vanilla", "GET", "",
         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("post-vanilla", "POST", "",
         "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ("get-vanilla-query-order-key-case", "GET", "Param2=value2&Param1=value1",
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ],
)  # fmt: skip
def test_aws_test_suite_vectors(name: str, method: str, query: str, signature: str) -> None:
    signer = SigV4Signer("us-east-1", "service")
    added = signer.sign(
        SUITE,
        method,
        "example.amazonaws.com",
        "/",
        {},
        b"",
        query=query,
        now=SUITE_TIME,
        content_sha256_header=False,
    )
    assert added["x-amz-date"] == "20150830T123600Z"
    assert added["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    ), name


def test_iam_documentation_example() -> None:
    # "Examples of the complete Signature Version 4 signing process" (IAM ListUsers).
    key = signing_key(SUITE.secret_access_key, "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    added = SigV4Signer("us-east-1", "iam").sign(
        SUITE,
        "GET",
        "iam.amazonaws.com",
        "/",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"",
        query="Action=ListUsers&Version=2010-05-08",
        now=SUITE_TIME,
        content_sha256_header=False,
    )
    assert added["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


def test_path_is_encoded_twice_and_session_token_signed() -> None:
    assert canonical_uri("/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse") == (
        "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%253A0/converse"
    )
    creds = Credentials("AKID", "secret", "token/with+chars")
    added = SigV4Signer("eu-west-1").sign(creds, "POST", "h", "/x", {}, b"{}")
    assert added["x-amz-security-token"] == "token/with+chars"
    assert added["x-amz-content-sha256"] == hashlib.sha256(b"{}").hexdigest()
    assert (
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
        in (added["authorization"])
    )


def test_signing_key_is_derived_once_per_day(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = sigv4.signing_key

    def counting(secret: str, date: str, region: str, service: str) -> bytes:
        calls.append(date)
        return real(secret, date, region, service)

    monkeypatch.setattr(sigv4, "signing_key", counting)
    signer = SigV4Signer("us-east-1")
    creds = Credentials("AKID", "secret")
    day = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    for minutes in range(3):
        signer.sign(creds, "POST", "h", "/", {}, b"", now=day + dt.timedelta(minutes=minutes))
    signer.sign(creds, "POST", "h", "/", {}, b"", now=day + dt.timedelta(days=1))
    assert calls == ["20250102", "20250103"]


# Any model id the adapter sends: it refuses a bare "." or ".." (dot segments, which
# servers normalise away; see test_dot_segment_model_ids_are_refused).
_SEGMENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30
).filter(lambda text: text not in (".", ".."))


@settings(max_examples=150, deadline=None)
@given(
    model=_SEGMENT,
    method=st.sampled_from(["GET", "POST"]),
    body=st.binary(max_size=300),
    token=st.none() | st.text(alphabet="abcdefABCDEF0123456789+/=", min_size=1, max_size=40),
    meta=st.dictionaries(
        st.from_regex(r"x-amz-meta-[a-z]{1,8}", fullmatch=True),
        st.text(alphabet="abc XYZ-_./:", min_size=1, max_size=20).filter(str.strip),
        max_size=3,
    ),
    query=st.lists(st.tuples(st.text("abcXYZ-_", min_size=1, max_size=5),
                             st.text("abc 12&=/", max_size=6)), max_size=3),
    port=st.sampled_from(["", ":8443", ":80"]),
)  # fmt: skip
def test_botocore_accepts_our_signature(
    model: str,
    method: str,
    body: bytes,
    token: str | None,
    meta: dict[str, str],
    query: list[tuple[str, str]],
    port: str,
) -> None:
    from urllib.parse import quote

    verifier = BedrockUpstream(session_token=token)
    host = f"bedrock-runtime.{REGION}.amazonaws.com{port}"
    path = f"/model/{quote(model, safe='')}/converse"
    wire_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    headers = {"Content-Type": "application/json", **meta}
    added = SigV4Signer(REGION).sign(
        Credentials(ACCESS_KEY, SECRET_KEY, token), method, host, path, headers, body,
        query=query,
    )  # fmt: skip
    received = {k.lower(): v for k, v in {**headers, **added, "host": host}.items()}
    assert verifier.verify_signature(method, path, wire_query, received, body) is None
    # And a tampered body, path or secret is caught.
    assert verifier.verify_signature(method, path, wire_query, received, body + b"!") is not None
    assert verifier.verify_signature(method, path + "x", wire_query, received, body) is not None
    wrong = SigV4Signer(REGION).sign(
        Credentials(ACCESS_KEY, SECRET_KEY + "x", token), method, host, path, headers, body,
        query=query,
    )  # fmt: skip
    received_wrong = {k.lower(): v for k, v in {**headers, **wrong, "host": host}.items()}
    assert verifier.verify_signature(method, path, wire_query, received_wrong, body) == (
        "signature mismatch"
    )


def test_dot_segment_model_ids_are_refused() -> None:
    import pytest

    from llm_gateway.core.errors import InvalidRequestError
    from llm_gateway.providers.bedrock.provider import BedrockProvider

    for model in (".", ".."):
        with pytest.raises(InvalidRequestError) as info:
            BedrockProvider._path(model, "converse")
        assert info.value.param == "model" and info.value.status == 400
    assert BedrockProvider._path("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "converse") == (
        "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    )
