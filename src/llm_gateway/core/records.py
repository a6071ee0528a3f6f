"""What the gateway remembers: virtual keys and one usage record per request.

Pure data shared by the gate (auth, limits, budgets), the storage backends, the admin API
and the live status feed. No I/O here; times are Unix epoch seconds (float, UTC).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

BudgetPeriod = Literal["daily", "monthly", "total"]


class VirtualKey(msgspec.Struct, kw_only=True):
    """One API key the gateway issued. Only ``key_hash`` (sha256 hex of the key) is stored.

    ``allowed_models`` holds glob patterns (``fnmatch``) over the model names clients send
    (``gpt-4o*``, ``anthropic/*``); empty means every model. ``rpm``/``tpm`` are per-minute
    limits (None: unlimited); ``budget`` is USD per ``budget_period`` (None: unlimited).
    """

    id: str
    name: str
    key_hash: str
    prefix: str  # the first characters of the key, safe to show ("sk-gw-AbCd")
    owner: str | None = None
    team: str | None = None
    allowed_models: list[str] = msgspec.field(default_factory=list)
    rpm: int | None = None
    tpm: int | None = None
    budget: float | None = None
    budget_period: BudgetPeriod = "total"
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None

    def active(self, now: float) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


class UsageRecord(msgspec.Struct, kw_only=True):
    """One request, as the ledger keeps it. ``request_id`` is unique: writing twice is a no-op.

    Never holds prompt or completion contents. ``status`` is the HTTP status the client
    got (200 for a stream that started, even if it later failed or was abandoned;
    ``error_code`` then says why). ``tokens_estimated`` is true when the provider reported
    no usage and the counts come from the local tokenizer.
    """

    request_id: str
    created_at: float
    endpoint: str  # "chat.completions" | "messages" | "api.generate" | "api.stream" | "ws.chat"
    model: str  # what the client asked for
    key_id: str | None = None
    provider: str | None = None  # the configured provider name that answered
    route_model: str | None = None  # that provider's model id
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0  # USD
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: int = 200
    error_code: str | None = None
    cache_hit: bool = False
    streamed: bool = False
    tokens_estimated: bool = False


__all__ = ["BudgetPeriod", "UsageRecord", "VirtualKey"]
