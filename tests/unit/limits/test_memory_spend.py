"""The in-process spend counter: admission, settle, seed, expiry, concurrency."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.limits.conftest import FakeClock

from llm_gateway.limits.base import BudgetExceeded
from llm_gateway.limits.memory import MemorySpendCounter


async def test_admits_while_something_is_left(clock: FakeClock) -> None:
    counter = MemorySpendCounter(clock=clock)
    # The first request of a small budget is never refused for its estimate alone.
    first = await counter.reserve("k1", "total", budget=1.0, amount=3.0)
    with pytest.raises(BudgetExceeded) as refused:
        await counter.reserve("k1", "total", budget=1.0, amount=0.01)
    assert refused.value.key_id == "k1"
    assert refused.value.budget == 1.0
    assert refused.value.spent == pytest.approx(3.0)  # spent and in flight
    await counter.settle(first, 0.25)  # it cost far less than estimated
    assert await counter.spent("k1", "total") == pytest.approx(0.25)
    assert await counter.reserved("k1", "total") == 0.0
    await counter.reserve("k1", "total", budget=1.0, amount=0.5)
    await counter.reserve("k1", "total", budget=1.0, amount=0.125)  # 0.875 < 1.0: admitted
    await counter.reserve("k1", "total", budget=1.0, amount=0.125)  # 1.0: nothing left
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k1", "total", budget=1.0, amount=0.2)


async def test_periods_and_keys_are_separate(clock: FakeClock) -> None:
    counter = MemorySpendCounter(clock=clock)
    held = await counter.reserve("k", "d2026-11-22", budget=1.0, amount=1.0)
    await counter.settle(held, 1.0)
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k", "d2026-11-22", budget=1.0, amount=0.1)
    await counter.reserve("k", "d2026-11-23", budget=1.0, amount=0.1)
    await counter.reserve("other", "d2026-11-22", budget=1.0, amount=0.1)


async def test_seed_raises_spend_to_the_ledger_and_never_lowers_it(clock: FakeClock) -> None:
    counter = MemorySpendCounter(clock=clock)
    await counter.seed("k", "m2026-11", 4.0)
    assert await counter.spent("k", "m2026-11") == 4.0
    await counter.seed("k", "m2026-11", 1.0)  # a ledger lagging behind: ignored
    assert await counter.spent("k", "m2026-11") == 4.0
    with pytest.raises(BudgetExceeded) as refused:
        await counter.reserve("k", "m2026-11", budget=4.0, amount=0.1)
    assert refused.value.spent == 4.0
    held = await counter.reserve("j", "m2026-11", budget=4.0, amount=0.1)
    await counter.settle(held, 0.5)
    # The ledger knows more (another worker's spend): the counter takes the larger figure.
    await counter.seed("j", "m2026-11", 9.0)
    assert await counter.spent("j", "m2026-11") == 9.0
    await counter.seed("j", "m2026-11", 0.5)
    assert await counter.spent("j", "m2026-11") == 9.0


async def test_past_periods_are_forgotten(clock: FakeClock) -> None:
    counter = MemorySpendCounter(clock=clock, reservation_ttl=100.0)
    for day in range(1, 11):
        held = await counter.reserve("k", f"d2026-11-{day:02d}", budget=5.0, amount=0.1)
        await counter.settle(held, 0.25)
        clock.advance(30)  # past the sweep interval (ttl / 4)
    in_flight = await counter.reserve("k", "m2026-10", budget=5.0, amount=0.1)
    await counter.seed("k", "m2026-11", 1.0)
    await counter.seed("k", "total", 2.0)
    clock.advance(30)
    await counter.reserve("other", "d2026-11-01", budget=5.0, amount=0.1)  # sweeps
    # Kept: k's newest day, both months (October's reservation is still in flight),
    # total, and the other key's day.
    assert counter.periods() == 5
    assert await counter.spent("k", "d2026-11-10") == 0.25
    assert await counter.spent("k", "d2026-11-09") == 0.0  # forgotten
    assert await counter.spent("k", "total") == 2.0
    await counter.settle(in_flight, 0.0)
    clock.advance(30)
    await counter.reserve("other", "d2026-11-01", budget=5.0, amount=0.1)
    assert counter.periods() == 4  # October went once settled
    assert await counter.spent("k", "m2026-11") == 1.0


async def test_unsettled_reservations_expire(clock: FakeClock) -> None:
    counter = MemorySpendCounter(clock=clock, reservation_ttl=100.0)
    lost = await counter.reserve("k", "total", budget=1.0, amount=2.0)  # never settled
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k", "total", budget=1.0, amount=0.1)
    clock.advance(99)
    with pytest.raises(BudgetExceeded):
        await counter.reserve("k", "total", budget=1.0, amount=0.1)
    clock.advance(30)  # past the ttl and the next sweep
    late = await counter.reserve("k", "total", budget=1.0, amount=0.1)
    assert await counter.reserved("k", "total") == pytest.approx(0.1)
    # The lost call's settle still counts its spend, without releasing anything twice.
    await counter.settle(lost, 0.3)
    await counter.settle(late, 0.1)
    assert await counter.spent("k", "total") == pytest.approx(0.4)
    assert await counter.reserved("k", "total") == 0.0


async def test_budget_race_overshoots_by_at_most_one_reservation() -> None:
    counter = MemorySpendCounter()
    amount, budget = 0.03, 0.30

    async def one() -> None:
        await asyncio.sleep(0)
        try:
            held = await counter.reserve("race", "total", budget, amount)
        except BudgetExceeded:
            return
        await asyncio.sleep(0.001)
        await counter.settle(held, amount)

    await asyncio.gather(*(one() for _ in range(50)))
    spent = await counter.spent("race", "total")
    assert budget <= spent <= budget + amount + 1e-9
