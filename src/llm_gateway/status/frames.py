"""The JSON shapes of provider status, shared by the HTTP endpoints and the status feed.

Documented in docs/status-api.md; the pydantic models in api/gateway/status_routes.py
describe the same shapes for the OpenAPI document.
"""

from __future__ import annotations

import re
from typing import Any

from llm_gateway.core.records import UsageRecord
from llm_gateway.status.tracker import ErrorInfo, ProviderStatus, ProviderTracker, StateChange


def error_dict(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"message": error.message, "code": error.code, "status": error.status, "at": error.at}


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def provider_dict(status: ProviderStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "type": status.type,
        "state": status.state.value,
        "error": error_dict(status.error),
        "changed_at": status.changed_at,
        "checked_at": status.checked_at,
        "models": list(status.models),
        "latency": {
            "p50_ms": _round(status.p50_ms),
            "p95_ms": _round(status.p95_ms),
            "last_check_ms": _round(status.check_ms),
            "samples": status.samples,
        },
        "calls": {"successes": status.successes, "failures": status.failures},
        "open_circuits": list(status.open_circuits),
    }


def status_frame(tracker: ProviderTracker, now: float) -> dict[str, Any]:
    """``{"type": "status", "status": overall, "providers": [...], "ts": ...}``."""
    return {
        "type": "status",
        "status": tracker.overall(),
        "providers": [provider_dict(s) for s in tracker.snapshots()],
        "ts": now,
    }


def change_frame(change: StateChange, overall: str) -> dict[str, Any]:
    return {
        "type": "provider_state",
        "provider": change.provider,
        "state": change.state.value,
        "previous": change.previous.value,
        "error": error_dict(change.error),
        "status": overall,
        "ts": change.changed_at,
    }


# The ledger keeps a caller-chosen id (x-request-id, or a /ws requestId) with a random
# suffix, "~" and 16 hex digits (api/asgi.py ledger_id, api/ws/chat_protocol.py); the feed
# shows the id the caller chose.
_LEDGER_SUFFIX = re.compile(r"~[0-9a-f]{16}$")


def stats_frame(record: UsageRecord) -> dict[str, Any]:
    """One finished request's figures. A ``UsageRecord`` holds no prompt or completion
    text, so neither can leak here."""
    seconds = record.latency_ms / 1000.0
    tokens_per_second = record.completion_tokens / seconds if seconds > 0 else None
    return {
        "type": "stats",
        "request_id": _LEDGER_SUFFIX.sub("", record.request_id),
        "ledger_id": record.request_id,
        "endpoint": record.endpoint,
        "model": record.model,
        "provider": record.provider,
        "route_model": record.route_model,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": record.prompt_tokens + record.completion_tokens,
        "tokens_estimated": record.tokens_estimated,
        "ttft_ms": _round(record.ttft_ms),
        "latency_ms": _round(record.latency_ms),
        "tokens_per_second": _round(tokens_per_second),
        "cost": record.cost,
        "status": record.status,
        "error_code": record.error_code,
        "streamed": record.streamed,
        "cache_hit": record.cache_hit,
        "ts": record.created_at,
    }
