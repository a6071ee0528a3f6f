"""Transport-level failures of the upstream HTTP client.

These say *where* an exchange broke, which is what decides whether the provider edge may
fall back or retry: a failure before any response byte means the upstream never answered
(safe to try another route), a failure after it means a reply was cut short. Mapping them
to ``core.errors`` is the provider edge's job; this package knows nothing of the gateway.
"""

from __future__ import annotations


class HttpError(Exception):
    """Base of every client failure; ``message`` is the human-readable reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectError(HttpError):
    """No answer at all: refused, DNS or TLS failure, or closed/reset before any response byte."""


class ConnectTimeout(HttpError):
    """TCP connect plus TLS handshake took longer than ``connect_timeout``."""


class ReadTimeout(HttpError):
    """No response bytes (headers or body) arrived for ``read_timeout`` seconds: an idle gap."""


class RemoteProtocolError(HttpError):
    """The connection closed mid-response, or the response was not valid HTTP/1.1."""


class FirstByteTimeout(ReadTimeout):
    """No response byte at all within the first-byte limit (the answer never started)."""


class DeadlineExceeded(HttpError):
    """The request's overall deadline (``core.context.CallLimits.deadline``) passed."""
