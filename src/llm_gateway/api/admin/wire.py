"""The admin API's JSON shapes: what ``/admin/keys`` and ``/admin/usage`` take and return.

Pydantic models so FastAPI validates bodies (a bad field is a 400 naming it) and shows
them, with examples, in ``/docs``. Times go out as ISO-8601 UTC; times coming in may be
ISO-8601 or Unix epoch seconds (pydantic accepts both for ``datetime``); a time without a
zone is taken as UTC.

A key's secret appears in exactly one shape, ``KeyCreated``, returned once by
``POST /admin/keys``. No shape carries the stored hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llm_gateway.core.records import BudgetPeriod, UsageRecord, VirtualKey
from llm_gateway.storage.base import UsageTotals

KeyStatus = Literal["active", "revoked", "expired"]

_EXAMPLE_ID = "key_4f1c2a9be0d37a65"
_EXAMPLE_PREFIX = "sk-gw-AbCd"


def to_datetime(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def to_epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # the API speaks UTC: a bare time means UTC, not server-local
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def key_status(key: VirtualKey, now: float) -> KeyStatus:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and now >= key.expires_at:
        return "expired"
    return "active"


class _Limits(BaseModel):
    """Fields a key is created with and that PATCH may change."""

    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(None, max_length=200, description="Who the key belongs to.")
    team: str | None = Field(None, max_length=200, description="The owner's team.")
    allowed_models: list[str] | None = Field(
        None,
        description="Glob patterns over the model names clients send (`gpt-4o*`, "
        "`anthropic/*`). Empty or omitted: every model.",
    )
    rpm: int | None = Field(None, ge=1, description="Requests per minute; null: unlimited.")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute; null: unlimited.")
    budget: float | None = Field(
        None, ge=0, description="Spend limit in USD per budget period; null: unlimited."
    )
    budget_period: BudgetPeriod | None = Field(
        None, description="daily and monthly periods start at 00:00 UTC; total never resets."
    )
    metadata: dict[str, Any] | None = Field(None, description="Free-form labels.")
    expires_at: datetime | None = Field(
        None, description="When the key stops working: ISO-8601, or Unix epoch seconds."
    )
    expires_in_days: float | None = Field(
        None, gt=0, description="Alternative to expires_at: days from now."
    )

    @field_validator("allowed_models")
    @classmethod
    def _no_blank_patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not p.strip() for p in value):
            raise ValueError("patterns must not be empty")
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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
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
            ]
        }
    )

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
            created_at=datetime.fromtimestamp(key.created_at, UTC),
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


class UsageRecordView(BaseModel):
    request_id: str
    created_at: datetime
    endpoint: str
    model: str
    key_id: str | None
    provider: str | None
    route_model: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: float
    latency_ms: float
    ttft_ms: float | None
    status: int
    error_code: str | None
    cache_hit: bool
    streamed: bool
    tokens_estimated: bool

    @classmethod
    def of(cls, record: UsageRecord) -> UsageRecordView:
        fields = {name: getattr(record, name) for name in record.__struct_fields__}
        fields["created_at"] = datetime.fromtimestamp(record.created_at, UTC)
        return cls(**fields)


class UsageTotalsView(BaseModel):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: float
    errors: int
    cache_hits: int

    @classmethod
    def of(cls, totals: UsageTotals) -> UsageTotalsView:
        return cls(**{name: getattr(totals, name) for name in totals.__struct_fields__})


class UsagePage(BaseModel):
    """``GET /admin/usage``: totals over every matching record, and one page of them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "totals": {
                        "requests": 2,
                        "prompt_tokens": 30,
                        "completion_tokens": 12,
                        "cached_tokens": 0,
                        "reasoning_tokens": 0,
                        "cost": 0.00021,
                        "errors": 0,
                        "cache_hits": 0,
                    },
                    "records": [],
                    "limit": 100,
                    "offset": 0,
                }
            ]
        }
    )

    totals: UsageTotalsView
    records: list[UsageRecordView]
    limit: int
    offset: int


__all__ = [
    "KeyCreate",
    "KeyCreated",
    "KeyList",
    "KeySpend",
    "KeyStatus",
    "KeyUpdate",
    "KeyView",
    "UsagePage",
    "UsageRecordView",
    "UsageTotalsView",
    "key_status",
    "to_datetime",
    "to_epoch",
]
