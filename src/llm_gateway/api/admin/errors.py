"""The admin API's own errors; they render in the OpenAI error shape like every other."""

from __future__ import annotations

import logging

from llm_gateway.core.errors import GatewayError, NotFoundError
from llm_gateway.storage.base import StorageUnavailableError

log = logging.getLogger("llm_gateway.admin")


class StorageDownError(GatewayError):
    """The database behind the admin API is unreachable (the hot path is unaffected)."""

    status = 503
    openai_type = "api_error"
    anthropic_type = "api_error"
    default_code = "storage_unavailable"


class OpenModeKeyError(GatewayError):
    """A key may not be created in open mode (see ``create_key``)."""

    status = 409
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"
    default_code = "admin_key_not_configured"


class KeyNotFoundError(NotFoundError):
    default_code = "key_not_found"


def storage_down(exc: StorageUnavailableError) -> StorageDownError:
    """The 503 for an outage; logs the error class only (driver messages may carry URLs)."""
    log.warning("admin: storage unavailable: %s", type(exc).__name__)
    return StorageDownError("The key and usage database is unavailable; try again shortly.")


__all__ = ["KeyNotFoundError", "OpenModeKeyError", "StorageDownError", "storage_down"]
