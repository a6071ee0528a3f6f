"""AWS Signature Version 4 for request headers, as Bedrock needs it.

The algorithm (AWS IAM user guide, "Create a signed AWS API request"; checked against
AWS's published test-suite vectors and botocore's ``SigV4Auth`` in the unit tests):

1. Canonical request: method, canonical URI, canonical query, canonical headers (lower-case
   names, trimmed values, sorted), the signed header names, and the hex SHA-256 of the body.
   For every service except S3 the URI path is URI-encoded *again*, segment by segment: the
   path we send already carries ``%3A`` for the ``:`` of a model id, and the canonical URI
   must carry ``%253A``. Getting this wrong is the classic Bedrock "signature does not
   match" bug, and the reason a model id with ``:`` is the first thing the tests sign.
2. String to sign: ``AWS4-HMAC-SHA256``, the ``x-amz-date`` timestamp, the credential scope
   ``YYYYMMDD/region/service/aws4_request`` and the hex SHA-256 of the canonical request.
3. Signing key: HMAC chain over date, region, service and ``aws4_request`` starting from
   ``"AWS4" + secret``. It depends only on the day, so it is cached until the day (or the
   secret) changes: per request we do two SHA-256 hashes and one HMAC, nothing more.

We sign ``host``, ``content-type`` and every ``x-amz-*`` header (the service requires the
latter to be signed when present), and always send ``x-amz-content-sha256`` because it
costs nothing once the body hash is computed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from llm_gateway.providers.bedrock.credentials import Credentials

__all__ = ["ALGORITHM", "SigV4Signer", "canonical_query", "canonical_uri", "signing_key"]

ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = "-_.~"  # RFC 3986 unreserved characters besides letters and digits


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key for one day (``YYYYMMDD``), region and service."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_uri(path: str) -> str:
    """``path`` as sent on the wire, each segment URI-encoded once more (non-S3 rule)."""
    if not path:
        return "/"
    return "/".join(quote(segment, safe=_UNRESERVED) for segment in path.split("/"))


def canonical_query(query: str | Iterable[tuple[str, str]]) -> str:
    """The canonical query string: pairs encoded, then sorted by name and value.

    A string is taken as already encoded on the wire (``a=1&b=%20``) and is only sorted,
    as the signature covers what is sent; pairs are raw values and are encoded here.
    """
    if isinstance(query, str):
        if not query:
            return ""
        pairs = [tuple(part.partition("=")[::2]) for part in query.split("&")]
        return "&".join(f"{k}={v}" for k, v in sorted(pairs))
    encoded = sorted((quote(k, safe=_UNRESERVED), quote(v, safe=_UNRESERVED)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _trim(value: str) -> str:
    # "Trimall": strip, and squeeze runs of spaces to one, as the spec asks.
    return " ".join(value.split())


def amz_date(now: dt.datetime | None = None) -> str:
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


class SigV4Signer:
    """Signs requests for one region and service; holds the day's derived key."""

    __slots__ = ("_key", "_key_for", "region", "service")

    def __init__(self, region: str, service: str = "bedrock") -> None:
        self.region = region
        self.service = service
        self._key_for: tuple[str, str] | None = None  # (secret, date) of the cached key
        self._key = b""

    def _signing_key(self, secret: str, date: str) -> bytes:
        if self._key_for != (secret, date):
            self._key = signing_key(secret, date, self.region, self.service)
            self._key_for = (secret, date)
        return self._key

    def sign(
        self,
        credentials: Credentials,
        method: str,
        host: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        query: str | Iterable[tuple[str, str]] = "",
        now: dt.datetime | None = None,
        content_sha256_header: bool = True,
    ) -> dict[str, str]:
        """The headers to add for this request: ``x-amz-date``, ``x-amz-content-sha256``,
        ``x-amz-security-token`` (with temporary credentials) and ``authorization``.

        ``host`` is the Host header exactly as the HTTP client sends it (with a port when
        it is not the scheme's default) and ``path`` the request target's path as sent.
        ``content_sha256_header=False`` leaves out ``x-amz-content-sha256`` (the published
        test vectors sign without it; Bedrock accepts either).
        """
        timestamp = amz_date(now)
        date = timestamp[:8]
        body_hash = hashlib.sha256(body).hexdigest()
        added = {"x-amz-date": timestamp}
        if content_sha256_header:
            added["x-amz-content-sha256"] = body_hash
        if credentials.session_token:
            added["x-amz-security-token"] = credentials.session_token
        signed: dict[str, str] = {"host": _trim(host)}
        for name, value in headers.items():
            key = name.lower()
            if key == "content-type" or key.startswith("x-amz-"):
                signed[key] = _trim(value)
        signed.update(added)
        names = sorted(signed)
        signed_headers = ";".join(names)
        canonical = "\n".join(
            (
                method.upper(),
                canonical_uri(path),
                canonical_query(query),
                "".join(f"{n}:{signed[n]}\n" for n in names),
                signed_headers,
                body_hash,
            )
        )
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        string_to_sign = (
            f"{ALGORITHM}\n{timestamp}\n{scope}\n"
            f"{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
        )
        signing = self._signing_key(credentials.secret_access_key, date)
        signature = hmac.new(signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        added["authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )
        return added
