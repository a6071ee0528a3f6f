"""Admission under absurd inputs and failures: the estimate is capped, and whatever ends
admission early gives the rate reservation back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from llm_gateway.core.errors import AuthenticationError, GatewayError
from llm_gateway.core.types import ChatRequest, Message
from llm_gateway.gate import Gate
from llm_gateway.gate.auth import Caller
from llm_gateway.gate.gate import COMPLETION_CEILING, MAX_RESERVED_COST
from llm_gateway.gate.keys import KeyRing, mint_key
from llm_gateway.limits.base import LimitRule, Reservation, SpendReservation
from llm_gateway.routing.estimate import estimate_prompt_tokens
from llm_gateway.routing.model_table import ModelInfo, ModelTable, Prices
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import ModelPlan

pytestmark = pytest.mark.timeout(10)

KNOWN = Route("openai", "gpt-known", None, provider_type="openai")
UNKNOWN = Route("openai", "gpt-unknown", None, provider_type="openai")
TABLE = ModelTable(
    [
        ModelInfo(
            "openai",
            "gpt-known",
            max_output_tokens=8192,
            prices=Prices(input=1e15, output=1e15),  # absurd on purpose
        )
    ]
)


def ask(max_tokens: int | None) -> ChatRequest:
    return ChatRequest(
        model="m", messages=[Message(role="user", content="hi")], max_tokens=max_tokens
    )


class Limiter:
    def __init__(self) -> None:
        self.reserved: list[int] = []
        self.settled: list[int] = []

    async def reserve(self, rules: tuple[LimitRule, ...], tokens: int) -> Reservation:
        self.reserved.append(tokens)
        return Reservation(f"r{len(self.reserved)}", rules, tokens, time.time())

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        self.settled.append(actual_tokens)

    async def aclose(self) -> None:
        pass


class Spend:
    def __init__(self, failure: BaseException | None = None, block: bool = False) -> None:
        self.failure = failure
        self.block = block
        self.amounts: list[float] = []

    async def seed(self, key_id: str, period: str, spent: float) -> None:
        pass

    async def reserve(
        self, key_id: str, period: str, budget: float, amount: float
    ) -> SpendReservation:
        self.amounts.append(amount)
        if self.block:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure
        return SpendReservation(key_id, period, amount)

    async def settle(self, reservation: SpendReservation, actual: float) -> None:
        pass

    async def spent(self, key_id: str, period: str) -> float:
        return 0.0

    async def aclose(self) -> None:
        pass


def gate(spend: Spend | None = None) -> tuple[Gate, Limiter, Caller]:
    _, key = mint_key("k", tpm=1000, budget=5.0)
    limiter = Limiter()
    g = Gate(admin_key="admin", table=TABLE, limiter=limiter, spend=spend, keys=KeyRing([key]))
    return g, limiter, Caller(key=key)


@pytest.mark.parametrize(
    ("routes", "max_tokens", "completion"),
    [
        ((KNOWN,), 10**12, 8192),  # the model table's output limit
        ((UNKNOWN,), 10**12, COMPLETION_CEILING),  # unknown: the ceiling
        ((KNOWN, UNKNOWN), 10**12, COMPLETION_CEILING),  # any unknown route may use more
        ((KNOWN,), 100, 100),  # what the caller asked, when it fits
        ((KNOWN,), None, 512),  # the default
    ],
)
async def test_the_completion_estimate_is_capped(
    routes: tuple[Route, ...], max_tokens: int | None, completion: int
) -> None:
    g, limiter, caller = gate()
    request = ask(max_tokens)
    await g.admit(caller, ModelPlan("m", routes), request, endpoint="e", request_id="r")
    assert limiter.reserved == [estimate_prompt_tokens(request) + completion]


async def test_the_reserved_cost_stays_far_inside_64_bit_nano_dollars() -> None:
    spend = Spend()
    g, _, caller = gate(spend)
    await g.admit(caller, ModelPlan("m", (KNOWN,)), ask(10**12), endpoint="e", request_id="r")
    assert spend.amounts == [MAX_RESERVED_COST]
    assert spend.amounts[0] * 1e9 < 2**63


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("bug"), GatewayError("counter unreachable"), KeyboardInterrupt()],
)
async def test_any_failure_after_the_rate_reservation_gives_it_back(
    failure: BaseException,
) -> None:
    g, limiter, caller = gate(Spend(failure=failure))
    with pytest.raises(type(failure)):
        await g.admit(caller, ModelPlan("m", (KNOWN,)), ask(10), endpoint="e", request_id="r")
    await g.drain()
    assert len(limiter.reserved) == 1 and limiter.settled == [0]


async def test_cancellation_during_admission_gives_the_rate_reservation_back() -> None:
    g, limiter, caller = gate(Spend(block=True))
    task = asyncio.ensure_future(
        g.admit(caller, ModelPlan("m", (KNOWN,)), ask(10), endpoint="e", request_id="r")
    )
    for _ in range(100):  # until the limiter reserved and the spend counter blocks
        if limiter.reserved:
            break
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await g.drain()
    assert limiter.settled == [0]


def test_recheck_follows_the_current_key_snapshot() -> None:
    _, key = mint_key("k", rpm=5)
    g = Gate(admin_key="admin", table=TABLE, keys=KeyRing([key]))
    caller = Caller(key=key)
    assert g.recheck(caller) is caller
    changed: Any = mint_key("k")[1]
    changed.id, changed.rpm = key.id, 50
    g.set_keys(KeyRing([changed]))
    assert g.recheck(caller).key is changed  # limits as they are now
    revoked: Any = mint_key("k")[1]
    revoked.id, revoked.revoked_at = key.id, time.time()
    g.set_keys(KeyRing([revoked]))
    with pytest.raises(AuthenticationError) as info:
        g.recheck(caller)
    assert info.value.code == "revoked_api_key"
    g.set_keys(KeyRing([]))
    with pytest.raises(AuthenticationError) as info:
        g.recheck(caller)
    assert info.value.code == "invalid_api_key"
    assert g.recheck(Caller(admin=True)).admin
