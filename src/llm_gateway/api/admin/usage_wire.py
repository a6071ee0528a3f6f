"""The admin API's usage shapes: what ``GET /admin/usage`` returns.

Times go out as ISO-8601 UTC, like every admin shape (``wire.to_datetime``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from llm_gateway.api.admin.wire import to_datetime
from llm_gateway.core.records import UsageRecord
from llm_gateway.storage.base import UsageTotals


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
        fields["created_at"] = to_datetime(record.created_at)
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


__all__ = ["UsagePage", "UsageRecordView", "UsageTotalsView"]
