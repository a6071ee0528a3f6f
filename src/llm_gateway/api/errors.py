"""Rendering of ``GatewayError`` in the OpenAI error shape."""

from __future__ import annotations

import msgspec

from llm_gateway.api.openai.stream import error_payload
from llm_gateway.core.errors import GatewayError, InvalidRequestError, NotFoundError


def openai_error_body(error: GatewayError) -> bytes:
    return msgspec.json.encode(error_payload(error))


def error_headers(error: GatewayError, request_id: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())]
    if error.retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(error.retry_after))).encode()))
        headers.append((b"retry-after-ms", str(int(error.retry_after * 1000)).encode()))
    if error.extra_headers:
        headers.extend(error.extra_headers)
    return headers


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    default_code = "method_not_allowed"


def http_error(status: int, method: str, path: str) -> GatewayError:
    """A routing failure (unknown path, wrong method) as a gateway error."""
    if status == 404:
        return NotFoundError(f"Unknown request URL: {method} {path}.", code="unknown_url")
    if status == 405:
        return MethodNotAllowedError(f"Method {method} is not allowed for {path}.")
    error = InvalidRequestError(f"{method} {path} failed with status {status}.")
    error.status = status
    return error
