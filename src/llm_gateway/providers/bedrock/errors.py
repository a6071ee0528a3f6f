"""Bedrock errors as gateway errors: HTTP error responses (JSON ``{"message"}`` plus the
``x-amzn-errortype`` header) and in-stream ``:message-type exception``/``error`` frames.

Mapped by the exception *name* first, then by status: 403 alone cannot tell a bad
signature (a gateway configuration problem) from missing model access, nor 429 throttling
from a model that is still loading. Names and statuses are the Smithy model's
(botocore ``bedrock-runtime/2023-09-30/service-2.json``) plus the generic AWS auth errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from llm_gateway.core.errors import (
    ContextWindowExceededError,
    GatewayError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderOverloadedError,
    ProviderUnavailableError,
    RateLimitError,
    UpstreamAuthenticationError,
    UpstreamError,
    UpstreamTimeoutError,
    error_for_status,
    parse_retry_after,
)

__all__ = ["error_from_exception_type", "error_from_wire"]

_decode = msgspec.json.decode

# Lower-cased exception names (HTTP ``x-amzn-errortype`` uses PascalCase, in-stream
# ``:exception-type`` camelCase) -> error class and the status Bedrock gives each.
_BY_TYPE: dict[str, tuple[type[GatewayError], int]] = {
    "validationexception": (InvalidRequestError, 400),
    "accessdeniedexception": (PermissionDeniedError, 403),
    "unrecognizedclientexception": (UpstreamAuthenticationError, 403),
    "invalidsignatureexception": (UpstreamAuthenticationError, 403),
    "incompletesignatureexception": (UpstreamAuthenticationError, 403),
    "missingauthenticationtokenexception": (UpstreamAuthenticationError, 403),
    "expiredtokenexception": (UpstreamAuthenticationError, 403),
    "invalidclienttokenid": (UpstreamAuthenticationError, 403),
    "signaturedoesnotmatch": (UpstreamAuthenticationError, 403),
    "resourcenotfoundexception": (ModelNotFoundError, 404),
    "modeltimeoutexception": (UpstreamTimeoutError, 408),
    "throttlingexception": (RateLimitError, 429),
    "servicequotaexceededexception": (RateLimitError, 429),
    # The model is loading: a short wait or another route helps, the caller did nothing.
    "modelnotreadyexception": (ProviderUnavailableError, 429),
    "serviceunavailableexception": (ProviderOverloadedError, 503),
    "internalserverexception": (UpstreamError, 500),
    "modelerrorexception": (UpstreamError, 424),
    "modelstreamerrorexception": (UpstreamError, 424),
}
# Bedrock has no error code for context overflow: the message is the only signal, so the
# phrases the model families use are listed here (lower case).
_CONTEXT_PHRASES = (
    "input is too long",
    "too many input tokens",
    "prompt is too long",
    "exceed context limit",
    "exceeds the context window",
    "context length",
    "maximum context",
    "too many total text bytes",
)


def _is_context_overflow(message: str) -> bool:
    lowered = message.lower()
    return any(phrase in lowered for phrase in _CONTEXT_PHRASES)


def _build(
    cls: type[GatewayError],
    type_name: str | None,
    message: str,
    status: int,
    headers: Mapping[str, str],
    provider: str | None,
) -> GatewayError:
    if cls is InvalidRequestError and _is_context_overflow(message):
        cls = ContextWindowExceededError
    text = f"{message} ({type_name})" if type_name else message
    return cls(
        text,
        code=None if cls.default_code else (type_name or None),
        retry_after=parse_retry_after(headers),
        provider=provider,
        upstream_status=status,
    )


def error_from_exception_type(
    type_name: str, message: str, provider: str | None = None
) -> GatewayError:
    """An in-stream ``:message-type exception`` (or ``error``) frame as a gateway error."""
    cls, status = _BY_TYPE.get(type_name.lower(), (UpstreamError, 502))
    return _build(
        cls, type_name, message or f"upstream stream failed: {type_name}", status, {}, provider
    )


def error_from_wire(
    status: int, headers: Mapping[str, str], body: bytes, provider: str | None
) -> GatewayError:
    """Map an HTTP error: by the ``x-amzn-errortype`` name first (403 alone cannot tell a
    bad signature from missing model access, nor 429 throttling from a loading model),
    then by status. ``headers`` must have lower-case keys."""
    payload: Any = None
    try:
        payload = _decode(body) if body else None
    except msgspec.DecodeError:
        payload = body[:500].decode("utf-8", "replace").strip()
    message = ""
    type_name = headers.get("x-amzn-errortype", "").split(":", 1)[0].strip()
    if isinstance(payload, dict):
        raw = payload.get("message") or payload.get("Message")
        message = raw if isinstance(raw, str) else ""
        if not type_name:
            kind = payload.get("__type") or payload.get("code")
            if isinstance(kind, str):
                type_name = kind.rsplit("#", 1)[-1].split(":", 1)[0]
    elif isinstance(payload, str):
        message = payload
    entry = _BY_TYPE.get(type_name.lower()) if type_name else None
    cls = entry[0] if entry is not None else error_for_status(status)
    return _build(
        cls, type_name or None, message or f"upstream returned HTTP {status}", status, headers,
        provider,
    )  # fmt: skip
