"""The gate on its own: who is calling, may they, and what the record of a call says."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from llm_gateway.core.errors import (
    AuthenticationError,
    GatewayError,
    InsufficientQuotaError,
    PermissionDeniedError,
    RateLimitError,
)
from llm_gateway.core.records import UsageRecord
from llm_gateway.core.types import ChatRequest, Message, Usage
from llm_gateway.gate import Gate, Outcome, StreamMeter
from llm_gateway.gate.gate import period_id
from llm_gateway.gate.keys import KEY_PREFIX, KeyRing, hash_key, mint_key
from llm_gateway.limits.base import (
    BudgetExceeded,
    LimitRule,
    LimitState,
    RateLimitExceeded,
    Reservation,
    SpendReservation,
)
from llm_gateway.routing.model_table import ModelInfo, ModelTable, Prices
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import ModelPlan

ADMIN_KEY = "admin-secret-123"


def scope(*headers: tuple[bytes, bytes], kind: str = "http", query: bytes = b"") -> dict[str, Any]:
    return {"type": kind, "headers": list(headers), "query_string": query}


def bearer(secret: str) -> tuple[bytes, bytes]:
    return (b"authorization", b"Bearer " + secret.encode())


def request(model: str = "gpt-x", text: str = "hello there") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=text)])


ROUTE = Route("openai", "gpt-x", None, provider_type="openai")
PLAN = ModelPlan(name="gpt-x", routes=(ROUTE,))
TABLE = ModelTable([ModelInfo("openai", "gpt-x", prices=Prices(input=1.0, output=2.0))])


def gate_with(*keys: Any, admin: str | None = ADMIN_KEY, **kwargs: Any) -> Gate:
    return Gate(admin_key=admin, table=TABLE, keys=KeyRing(keys), **kwargs)


class RecordingLimiter:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.settled: list[tuple[Reservation, int]] = []
        self.reserved: list[tuple[tuple[LimitRule, ...], int]] = []

    async def reserve(self, rules: tuple[LimitRule, ...], tokens: int) -> Reservation:
        self.reserved.append((rules, tokens))
        if self.refuse:
            raise RateLimitExceeded(rules[0].subject, "requests", 12.5, LimitState(60, 0, 12.5))
        return Reservation("r1", rules, tokens, time.time(), requests=LimitState(60, 59, 1.0))

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        self.settled.append((reservation, actual_tokens))

    async def aclose(self) -> None:
        pass


class RecordingSpend:
    def __init__(self, spent: float = 0.0) -> None:
        self.spent_total = spent
        self.settled: list[float] = []

    async def seed(self, key_id: str, period: str, spent: float) -> None:
        pass

    async def reserve(
        self, key_id: str, period: str, budget: float, amount: float
    ) -> SpendReservation:
        if self.spent_total >= budget:
            raise BudgetExceeded(key_id, budget, self.spent_total)
        return SpendReservation(key_id, period, amount)

    async def settle(self, reservation: SpendReservation, actual: float) -> None:
        self.settled.append(actual)

    async def spent(self, key_id: str, period: str) -> float:
        return self.spent_total

    async def aclose(self) -> None:
        pass


# -- authentication -----------------------------------------------------------------------


def test_minted_key_is_random_prefixed_and_only_its_hash_is_kept() -> None:
    secret, key = mint_key("app", rpm=10)
    other, _ = mint_key("app")
    assert secret.startswith(KEY_PREFIX) and len(secret) > 40 and secret != other
    assert key.key_hash == hash_key(secret) and secret not in msgspec.json.encode(key).decode()
    assert secret.startswith(key.prefix) and len(key.prefix) == 10


def test_open_mode_lets_anyone_in_and_ignores_sent_keys() -> None:
    gate = gate_with(admin=None)
    assert gate.open_mode
    assert gate.authenticate(scope()).key is None
    assert gate.authenticate(scope(bearer("sk-whatever"))).key is None


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ((), "missing_api_key"),
        ((bearer("sk-gw-wrong"),), "invalid_api_key"),
        (((b"authorization", b"Basic abc"),), "missing_api_key"),
    ],
)
def test_a_bad_or_missing_key_is_401(headers: tuple[tuple[bytes, bytes], ...], code: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        gate_with().authenticate(scope(*headers))
    assert info.value.status == 401 and info.value.code == code


def test_valid_key_by_bearer_x_api_key_and_websocket_token() -> None:
    secret, key = mint_key("app")
    gate = gate_with(key)
    assert gate.authenticate(scope(bearer(secret))).key == key
    assert gate.authenticate(scope((b"x-api-key", secret.encode()))).key == key
    ws = scope(kind="websocket", query=b"token=" + secret.encode())
    assert gate.authenticate(ws).key == key
    # ?token= is for browsers' WebSockets only: plain HTTP must send a header.
    with pytest.raises(AuthenticationError):
        gate.authenticate(scope(query=b"token=" + secret.encode()))


def test_revoked_and_expired_keys_are_refused_with_their_own_codes() -> None:
    revoked_secret, revoked = mint_key("old")
    revoked.revoked_at = time.time() - 1
    expired_secret, expired = mint_key("late", expires_at=time.time() - 1)
    gate = gate_with(revoked, expired)
    for secret, code in [(revoked_secret, "revoked_api_key"), (expired_secret, "expired_api_key")]:
        with pytest.raises(AuthenticationError) as info:
            gate.authenticate(scope(bearer(secret)))
        assert info.value.code == code and secret not in info.value.message


def test_admin_key_is_admin_and_user_keys_are_not() -> None:
    secret, key = mint_key("app")
    gate = gate_with(key)
    assert gate.require_admin(scope(bearer(ADMIN_KEY))).admin
    with pytest.raises(PermissionDeniedError):
        gate.require_admin(scope(bearer(secret)))
    with pytest.raises(AuthenticationError):
        gate.require_admin(scope())


# -- admission ----------------------------------------------------------------------------


async def test_model_allow_list_uses_globs() -> None:
    secret, key = mint_key("app", allowed_models=["gpt-*", "anthropic/*"])
    gate = gate_with(key)
    caller = gate.authenticate(scope(bearer(secret)))
    gate.check_model(caller, "gpt-x")
    gate.check_model(caller, "anthropic/claude-3")
    with pytest.raises(PermissionDeniedError) as info:
        gate.check_model(caller, "groq/llama")
    assert info.value.status == 403 and info.value.param == "model"


async def test_rate_limited_key_gets_429_with_headers_and_nothing_charged() -> None:
    secret, key = mint_key("app", rpm=60)
    limiter = RecordingLimiter(refuse=True)
    gate = gate_with(key, limiter=limiter)
    caller = gate.authenticate(scope(bearer(secret)))
    with pytest.raises(RateLimitError) as info:
        await gate.admit(caller, PLAN, request(), endpoint="chat.completions", request_id="r")
    error = info.value
    assert error.status == 429 and error.retry_after == 12.5
    headers = dict(error.extra_headers)
    assert headers[b"x-ratelimit-limit-requests"] == b"60"
    assert headers[b"x-ratelimit-remaining-requests"] == b"0"
    assert limiter.reserved[0][0] == (LimitRule(f"key:{key.id}", 60, None),)


async def test_reservation_is_settled_with_real_tokens_and_cost() -> None:
    secret, key = mint_key("app", rpm=60, budget=5.0)
    limiter, spend = RecordingLimiter(), RecordingSpend()
    gate = gate_with(key, limiter=limiter, spend=spend)
    records: list[UsageRecord] = []
    gate.add_observer(records.append)
    caller = gate.authenticate(scope(bearer(secret)))
    ticket = await gate.admit(caller, PLAN, request(), endpoint="chat.completions", request_id="r1")
    assert dict(ticket.headers())[b"x-ratelimit-remaining-requests"] == b"59"
    usage = Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
    record = ticket.finish(Outcome(route=ROUTE, usage=usage))
    assert ticket.finish(Outcome()) is None  # exactly once
    await gate.drain()
    assert record is not None and records == [record]
    assert record.key_id == key.id and record.provider == "openai"
    assert record.cost == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert limiter.settled[0][1] == 1500
    assert spend.settled == [pytest.approx(record.cost)]


async def test_spent_budget_is_402_insufficient_quota_and_releases_the_rate_reservation() -> None:
    secret, key = mint_key("app", rpm=60, budget=1.0)
    limiter = RecordingLimiter()
    gate = gate_with(key, limiter=limiter, spend=RecordingSpend(spent=1.0))
    caller = gate.authenticate(scope(bearer(secret)))
    with pytest.raises(InsufficientQuotaError) as info:
        await gate.admit(caller, PLAN, request(), endpoint="chat.completions", request_id="r")
    assert info.value.status == 402 and info.value.code == "insufficient_quota"
    await gate.drain()
    assert [tokens for _, tokens in limiter.settled] == [0]


async def test_missing_usage_is_counted_locally_and_flagged() -> None:
    gate = gate_with(admin=None)
    ticket = await gate.admit(
        gate.authenticate(scope()), PLAN, request(text="x" * 400), endpoint="e", request_id="r"
    )
    record = ticket.finish(Outcome(route=ROUTE, produced_text="y" * 80, streamed=True))
    assert record is not None and record.tokens_estimated and record.streamed
    assert record.prompt_tokens > 50 and record.completion_tokens > 5


async def test_failure_before_any_upstream_costs_nothing() -> None:
    gate = gate_with(admin=None)
    ticket = await gate.admit(
        gate.authenticate(scope()), PLAN, request(), endpoint="e", request_id="r"
    )
    error = GatewayError("down")
    record = ticket.finish(Outcome(status=503, error=error))
    assert record is not None and record.cost == 0 and record.prompt_tokens == 0
    assert record.status == 503 and not record.tokens_estimated


def test_an_observer_that_raises_does_not_break_the_call() -> None:
    gate = gate_with(admin=None)

    def broken(_: UsageRecord) -> None:
        raise ValueError("bug")

    seen: list[UsageRecord] = []
    gate.add_observer(broken)
    gate.add_observer(seen.append)

    async def run() -> None:
        ticket = await gate.admit(
            gate.authenticate(scope()), PLAN, request(), endpoint="e", request_id="r"
        )
        ticket.finish(Outcome(route=ROUTE, usage=Usage(1, 1, 2)))

    asyncio.run(run())
    assert len(seen) == 1


def test_budget_periods_are_utc_days_and_months() -> None:
    moment = datetime(2026, 11, 22, 23, 59, tzinfo=UTC).timestamp()
    assert period_id("total", moment) == ("total", 0.0)
    day, start = period_id("daily", moment)
    assert day == "d2026-11-22" and start == datetime(2026, 11, 22, tzinfo=UTC).timestamp()
    month, start = period_id("monthly", moment)
    assert month == "m2026-11" and start == datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def test_stream_meter_collects_text_usage_and_first_token_time() -> None:
    from llm_gateway.core.events import TextDelta, ToolCallDelta, UsageEvent

    meter = StreamMeter(started=time.monotonic() - 0.05)
    meter.observe([TextDelta("Hel")])
    meter.observe([TextDelta("lo"), ToolCallDelta(0, "c1", "fn", '{"a":1}')])
    assert meter.usage is None and meter.produced_text() == 'Hellofn{"a":1}'
    meter.observe([UsageEvent(Usage(3, 4, 7))])
    assert meter.usage == Usage(3, 4, 7) and meter.chunks == 3
    assert meter.ttft_ms is not None and meter.ttft_ms >= 50


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("gateway.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    from llm_gateway.gate.loopback import is_loopback

    assert is_loopback(host) is loopback
