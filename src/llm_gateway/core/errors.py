"""The typed error tree.

Every error knows its HTTP status, whether a retry or fallback may help, and its error
type in each inbound dialect, so one exception handler per dialect renders any of them.
Upstream failures are mapped to this tree once, at the provider edge, by status first.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import ClassVar


class GatewayError(Exception):
    # An instance may override its class's status (AllRoutesFailedError does).
    status: int = 500
    retryable: ClassVar[bool] = False
    openai_type: ClassVar[str] = "api_error"
    anthropic_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    # Response headers the error adds (x-ratelimit-* on a 429); set per instance.
    extra_headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after = retry_after
        self.provider = provider
        self.upstream_status = upstream_status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


# --- the caller's own mistakes: never retried, never a reason to fall back -------------


class InvalidRequestError(GatewayError):
    status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class ContextWindowExceededError(InvalidRequestError):
    """The prompt does not fit the route's context window; a larger route may serve it."""

    default_code = "context_length_exceeded"


class AuthenticationError(GatewayError):
    status = 401
    openai_type = "authentication_error"
    anthropic_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    openai_type = "permission_error"
    anthropic_type = "permission_error"


class NotFoundError(GatewayError):
    status = 404
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class PayloadTooLargeError(GatewayError):
    status = 413
    openai_type = "invalid_request_error"
    anthropic_type = "request_too_large"
    default_code = "request_too_large"


# --- upstream and capacity failures: a retry or another route may succeed -------------


class RateLimitError(GatewayError):
    status = 429
    retryable = True
    openai_type = "rate_limit_error"  # OpenAI sends type "requests"/"tokens"; SDKs key on status
    anthropic_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class InsufficientQuotaError(GatewayError):
    """A virtual key's spend budget is used up: 402 with OpenAI's ``insufficient_quota``.

    OpenAI itself answers a spent quota with 429, which SDKs retry; 402 (Payment Required)
    tells clients not to, while the code and type stay OpenAI's so callers that branch on
    ``insufficient_quota`` work unchanged.
    """

    status = 402
    openai_type = "insufficient_quota"
    anthropic_type = "permission_error"
    default_code = "insufficient_quota"


class UpstreamError(GatewayError):
    """The provider failed (5xx, malformed answer, broken connection)."""

    status = 502
    retryable = True
    openai_type = "api_error"
    anthropic_type = "api_error"
    default_code = "upstream_error"


class ProviderOverloadedError(UpstreamError):
    """Anthropic's 529, Bedrock throttling of capacity, OpenAI's 503 'overloaded'."""

    status = 503
    anthropic_type = "overloaded_error"
    default_code = "provider_overloaded"


class ProviderUnavailableError(UpstreamError):
    """Connection refused or reset before any answer, or a provider that is not configured."""

    status = 503
    default_code = "provider_unavailable"


class CircuitOpenError(ProviderUnavailableError):
    """A route's circuit breaker is open: it failed repeatedly and is not called until a
    probe after the cooldown succeeds. Fails fast instead of paying for more retries."""

    default_code = "circuit_open"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    openai_type = "timeout"
    anthropic_type = "timeout_error"
    default_code = "timeout"


class ConnectTimeoutError(UpstreamTimeoutError):
    default_code = "connect_timeout"


class FirstTokenTimeoutError(UpstreamTimeoutError):
    default_code = "first_token_timeout"


class IdleTimeoutError(UpstreamTimeoutError):
    default_code = "idle_timeout"


class TotalTimeoutError(UpstreamTimeoutError):
    default_code = "total_timeout"


class UpstreamAuthenticationError(AuthenticationError):
    """The provider rejected the gateway's own credentials (a configuration problem)."""

    default_code = "upstream_authentication_failed"


class AllRoutesFailedError(GatewayError):
    """Every route of a model failed; the message lists what each one returned."""

    openai_type = "api_error"

    def __init__(self, model: str, failures: list[tuple[str, GatewayError]]) -> None:
        detail = "; ".join(f"{route}: {err.status} {err.message}" for route, err in failures)
        last = failures[-1][1] if failures else None
        super().__init__(
            f"all routes for model '{model}' failed: {detail}",
            code="all_routes_failed",
            retry_after=last.retry_after if last else None,
        )
        self.failures = failures
        # The caller sees the status of the last failure: it is what the final route said.
        self.status = last.status if last else 502


def error_for_status(status: int) -> type[GatewayError]:
    """The error class for an upstream HTTP status (the provider edge refines it)."""
    if status == 400 or status == 422:
        return InvalidRequestError
    if status == 401:
        return UpstreamAuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 408:
        return UpstreamTimeoutError
    if status == 413:
        return PayloadTooLargeError
    if status == 429:
        return RateLimitError
    if status == 529 or status == 503:
        return ProviderOverloadedError
    return UpstreamError


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms``, ``retry-after`` (seconds or HTTP date).

    ``headers`` must have lower-case keys. Returns None when absent or unparseable.
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
        return seconds if seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, delta)
