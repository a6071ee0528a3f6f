"""The admin API's key shapes: what ``/admin/keys`` takes and returns (usage shapes are in
``usage_wire``).

Pydantic models so FastAPI validates bodies (a bad field is a 400 naming it) and shows
them, with examples, in ``/docs``. Times go out as ISO-8601 UTC; times coming in may be
ISO-8601 or Unix epoch seconds (pydantic accepts both for ``datetime``); a time without a
zone is taken as UTC.

Every number a key is created with is bounded: a value the rest of the gateway cannot
represent (a year past 9999, a budget past int64 nano-dollars) must be refused here, as a
400 naming the field, before anything is stored; otherwise the key would be stored and
then fail every listing that shows it.

A key's secret appears in exactly one shape, ``KeyCreated``, returned once by
``POST /admin/keys``. No shape carries the stored hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm_gateway.api.admin.times import moment, to_datetime, to_epoch
from llm_gateway.core.records import BudgetPeriod, VirtualKey

KeyStatus = Literal["active", "revoked", "expired"]

_EXAMPLE_ID = "key_4f1c2a9be0d37a65"
_EXAMPLE_PREFIX = "sk-gw-AbCd"
_VIEW_EXAMPLE: dict[str, Any] = {
    "id": _EXAMPLE_ID,
    "name": "checkout-service",
    "prefix": _EXAMPLE_PREFIX,
    "status": "active",
    "owner": "alice@example.com",
    "team": "payments",
    "allowed_models": ["gpt-4o*"],
    "rpm": 600,
    "tpm": 200000,
    "budget": 50.0,
    "budget_period": "monthly",
    "metadata": {"env": "prod"},
    "created_at": "2026-01-05T09:30:00Z",
    "expires_at": "2026-04-05T09:30:00Z",
    "revoked_at": None,
}
KEY_LIST_EXAMPLE: dict[str, Any] = {"object": "list", "data": [_VIEW_EXAMPLE]}

# The latest expiry accepted: a day short of what datetime can show, so a time zone
# offset cannot push a stored expiry out of range. Further than anyone means anyway.
MAX_EXPIRES_AT = datetime(9999, 12, 30, tzinfo=UTC)
MAX_EXPIRES_IN_DAYS = 36500  # a hundred years
# Far above any real use, and within what the columns and limiters hold: rpm is a 32-bit
# column, budgets are counted in int64 nano-dollars (1e9 USD is 1e18 of them).
MAX_RPM = 10**9
MAX_TPM = 10**12
MAX_BUDGET = 1e9
MAX_PATTERNS = 1000


def key_status(key: VirtualKey, now: float) -> KeyStatus:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and now >= key.expires_at:
        return "expired"
    return "active"


class _Limits(BaseModel):
    """Fields a key is created with and that PATCH may change."""

    # No NaN or infinity: they would pass the bounds below (comparisons with NaN are false).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    owner: str | None = Field(None, max_length=200, description="Who the key belongs to.")
    team: str | None = Field(None, max_length=200, description="The owner's team.")
    allowed_models: list[str] | None = Field(
        None,
        max_length=MAX_PATTERNS,
        description="Glob patterns over the model names clients send (`gpt-4o*`, "
        "`anthropic/*`). Empty or omitted: every model.",
    )
    rpm: int | None = Field(
        None, ge=1, le=MAX_RPM, description="Requests per minute; null: unlimited."
    )
    tpm: int | None = Field(
        None, ge=1, le=MAX_TPM, description="Tokens per minute; null: unlimited."
    )
    budget: float | None = Field(
        None,
        ge=0,
        le=MAX_BUDGET,
        description="Spend limit in USD per budget period; null: unlimited.",
    )
    budget_period: BudgetPeriod | None = Field(
        None, description="daily and monthly periods start at 00:00 UTC; total never resets."
    )
    metadata: dict[str, Any] | None = Field(None, description="Free-form labels.")
    expires_at: datetime | None = Field(
        None,
        description="When the key stops working: ISO-8601, or Unix epoch seconds "
        "(at the latest 9999-12-30).",
    )
    expires_in_days: float | None = Field(
        None,
        gt=0,
        le=MAX_EXPIRES_IN_DAYS,
        description="Alternative to expires_at: days from now (at most 36500).",
    )

    @field_validator("allowed_models")
    @classmethod
    def _no_blank_patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not p.strip() or len(p) > 200 for p in value):
            raise ValueError("patterns must be 1 to 200 characters")
        return value

    @field_validator("expires_at")
    @classmethod
    def _representable(cls, value: datetime | None) -> datetime | None:
        if value is not None:
            aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            if aware > MAX_EXPIRES_AT:
                raise ValueError("must be at the latest 9999-12-30T00:00:00Z")
        return value


class KeyCreate(_Limits):
    """``POST /admin/keys``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "checkout-service",
                    "owner": "alice@example.com",
                    "team": "payments",
                    "allowed_models": ["gpt-4o*", "claude-*"],
                    "rpm": 600,
                    "tpm": 200000,
                    "budget": 50.0,
                    "budget_period": "monthly",
                    "metadata": {"env": "prod"},
                    "expires_in_days": 90,
                }
            ]
        },
    )

    name: str = Field(..., min_length=1, max_length=200, description="A label for people.")


class KeyUpdate(_Limits):
    """``PATCH /admin/keys/{id}``: only the fields sent change; ``null`` clears a limit."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"rpm": 1200, "budget": 100.0, "expires_at": None}]},
    )

    name: str | None = Field(None, min_length=1, max_length=200)


class KeyView(BaseModel):
    """A key as the admin API shows it: never the secret, never its hash."""

    model_config = ConfigDict(json_schema_extra={"examples": [_VIEW_EXAMPLE]})

    id: str
    name: str
    prefix: str = Field(..., description="The first characters of the key, to recognise it.")
    status: KeyStatus
    owner: str | None
    team: str | None
    allowed_models: list[str]
    rpm: int | None
    tpm: int | None
    budget: float | None
    budget_period: BudgetPeriod
    metadata: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: VirtualKey, now: float) -> KeyView:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            status=key_status(key, now),
            owner=key.owner,
            team=key.team,
            allowed_models=list(key.allowed_models),
            rpm=key.rpm,
            tpm=key.tpm,
            budget=key.budget,
            budget_period=key.budget_period,
            metadata=dict(key.metadata),
            created_at=moment(key.created_at),
            expires_at=to_datetime(key.expires_at),
            revoked_at=to_datetime(key.revoked_at),
        )


class KeyCreated(KeyView):
    """The new key's record and, this one time only, its secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "sk-gw-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg",
                    "id": _EXAMPLE_ID,
                    "name": "checkout-service",
                    "prefix": _EXAMPLE_PREFIX,
                    "status": "active",
                    "owner": None,
                    "team": None,
                    "allowed_models": [],
                    "rpm": None,
                    "tpm": None,
                    "budget": None,
                    "budget_period": "total",
                    "metadata": {},
                    "created_at": "2026-01-05T09:30:00Z",
                    "expires_at": None,
                    "revoked_at": None,
                }
            ]
        }
    )

    key: str = Field(..., description="The secret. Shown only here: store it now.")


class KeyList(BaseModel):
    """``GET /admin/keys``: every key, oldest first; never a secret or a hash."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"object": "list", "data": [_VIEW_EXAMPLE]}]}
    )

    object: Literal["list"] = "list"
    data: list[KeyView]


class KeySpend(BaseModel):
    """A key's spend in its current budget period, from the usage ledger."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key_id": _EXAMPLE_ID,
                    "budget_period": "monthly",
                    "period": "m2026-01",
                    "period_start": "2026-01-01T00:00:00Z",
                    "spend": 12.5,
                    "budget": 50.0,
                    "remaining": 37.5,
                }
            ]
        }
    )

    key_id: str
    budget_period: BudgetPeriod
    period: str = Field(..., description="The period's id: 'total', 'd2026-01-05', 'm2026-01'.")
    period_start: datetime
    spend: float = Field(..., description="USD recorded in the ledger since period_start.")
    budget: float | None
    remaining: float | None


__all__ = [
    "KEY_LIST_EXAMPLE",
    "MAX_EXPIRES_AT",
    "MAX_EXPIRES_IN_DAYS",
    "KeyCreate",
    "KeyCreated",
    "KeyList",
    "KeySpend",
    "KeyStatus",
    "KeyUpdate",
    "KeyView",
    "key_status",
    "moment",
    "to_datetime",
    "to_epoch",
]
