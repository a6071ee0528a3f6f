"""Admin input turned into records: ids, times, expiry, and the fields a PATCH changes.

Kept apart from the routes so the rules (what counts as a time, what ``null`` means,
what may not be null) read in one place and are testable without HTTP.
"""

from __future__ import annotations

import math
from datetime import datetime

import msgspec

from llm_gateway.api.admin.wire import KeyCreate, KeyUpdate, to_epoch
from llm_gateway.core.errors import InvalidRequestError
from llm_gateway.core.records import VirtualKey
from llm_gateway.gate.keys import KEY_PREFIX

DAY = 86400.0


def check_key_id(key_id: str, field: str) -> None:
    """Refuse a secret where a key id belongs, without repeating it anywhere.

    Pasting the key instead of its id is an easy mistake; answered with "no key with id
    sk-gw-..." it would put the secret in an error message, and passed on it would reach
    the database's statement logs.
    """
    if key_id.startswith(KEY_PREFIX):
        raise InvalidRequestError(
            f"'{field}' takes a key's id (key_...), not the key itself; "
            "GET /admin/keys lists the ids.",
            param=field,
            code="secret_instead_of_id",
        )


def parse_time(raw: str | None, field: str) -> float | None:
    """ISO-8601 (a bare time is UTC) or Unix epoch seconds, as epoch seconds."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise InvalidRequestError(f"Invalid value for '{field}': not a finite time.", param=field)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(
            f"Invalid value for '{field}': expected an ISO-8601 time or Unix epoch seconds.",
            param=field,
        ) from None
    return to_epoch(moment)


def expiry(body: KeyCreate | KeyUpdate, now: float) -> float | None:
    """The expiry the body asks for (at most one of the two ways of saying it)."""
    sent = body.model_fields_set
    if "expires_at" in sent and "expires_in_days" in sent:
        raise InvalidRequestError(
            "Send either 'expires_at' or 'expires_in_days', not both.", param="expires_in_days"
        )
    if body.expires_in_days is not None:
        return now + body.expires_in_days * DAY
    return to_epoch(body.expires_at)


def apply_update(key: VirtualKey, body: KeyUpdate, now: float) -> VirtualKey:
    """``key`` with the fields the PATCH body sent; ``null`` clears a limit."""
    sent = body.model_fields_set
    changes: dict[str, object] = {}
    for field in ("owner", "team", "rpm", "tpm", "budget"):
        if field in sent:
            changes[field] = getattr(body, field)
    for field in ("name", "budget_period"):
        if field in sent:
            value = getattr(body, field)
            if value is None:
                raise InvalidRequestError(f"'{field}' cannot be null.", param=field)
            changes[field] = value
    if "allowed_models" in sent:
        changes["allowed_models"] = list(body.allowed_models or [])
    if "metadata" in sent:
        changes["metadata"] = dict(body.metadata or {})
    if "expires_at" in sent or "expires_in_days" in sent:
        changes["expires_at"] = expiry(body, now)
    return msgspec.structs.replace(key, **changes)


__all__ = ["apply_update", "check_key_id", "expiry", "parse_time"]
