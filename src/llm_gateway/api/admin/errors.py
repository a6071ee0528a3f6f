"""The admin API's own errors; they render in the OpenAI error shape like every other.

Each is a ``core.errors`` class with its own code (and status), so the error types in each
dialect come from the error tree rather than being restated here.
"""

from __future__ import annotations

import logging

from llm_gateway.core.errors import GatewayError, InvalidRequestError, NotFoundError
from llm_gateway.storage.base import StorageUnavailableError

log = logging.getLogger("llm_gateway.admin")


class StorageDownError(GatewayError):
    """The database behind the admin API is unreachable (the hot path is unaffected)."""

    status = 503  # the types stay GatewayError's: api_error in both dialects
    default_code = "storage_unavailable"


class OpenModeKeyError(InvalidRequestError):
    """A key may not be created in open mode (see ``create_key``): the request conflicts
    with the gateway's state, hence 409 rather than the parent's 400."""

    status = 409
    default_code = "admin_key_not_configured"


class KeyNotFoundError(NotFoundError):
    default_code = "key_not_found"


def storage_down(exc: StorageUnavailableError) -> StorageDownError:
    """The 503 for an outage; logs the error class only (driver messages may carry URLs)."""
    log.warning("admin: storage unavailable: %s", type(exc).__name__)
    return StorageDownError("The key and usage database is unavailable; try again shortly.")


__all__ = ["KeyNotFoundError", "OpenModeKeyError", "StorageDownError", "storage_down"]
