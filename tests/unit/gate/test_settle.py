"""The settlement queue: in order and cheap in-process, concurrent for slow counters,
bounded with one warning."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llm_gateway.gate.settle import BACKLOG_PER_WORKER, Settlements

pytestmark = pytest.mark.timeout(10)


async def test_instant_settlements_run_in_order_on_one_worker() -> None:
    settlements = Settlements()
    done: list[int] = []

    async def settle(n: int) -> None:
        done.append(n)

    for n in range(BACKLOG_PER_WORKER):
        settlements.put(settle(n))
    assert settlements.workers == 1
    await settlements.drain()
    assert done == list(range(BACKLOG_PER_WORKER)) and settlements.workers == 0


async def test_slow_settlements_get_more_workers_up_to_the_cap() -> None:
    settlements = Settlements(max_workers=4)
    running = 0
    peak = 0

    async def round_trip() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    started = asyncio.get_running_loop().time()
    for _ in range(BACKLOG_PER_WORKER * 8):
        settlements.put(round_trip())
    assert settlements.workers == 4
    await settlements.drain()
    elapsed = asyncio.get_running_loop().time() - started
    assert peak == 4 and len(settlements) == 0
    # 512 round trips of 10 ms: serially over 5 s, four at a time about 1.3 s.
    assert elapsed < 3.0


async def test_a_finished_worker_is_replaced_at_once() -> None:
    settlements = Settlements()
    done: list[str] = []

    async def settle(name: str) -> None:
        done.append(name)

    settlements.put(settle("a"))
    await asyncio.sleep(0)  # the worker ran and found the queue empty
    settlements.put(settle("b"))  # before its done-callback ran: must not be stranded
    await asyncio.wait_for(settlements.drain(), 1)
    await asyncio.sleep(0.01)
    assert done == ["a", "b"]


async def test_a_failing_settlement_is_logged_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settlements = Settlements()
    done: list[int] = []

    async def broken() -> None:
        raise ConnectionError("redis went away")

    async def fine() -> None:
        done.append(1)

    settlements.put(broken())
    settlements.put(fine())
    with caplog.at_level(logging.WARNING, "llm_gateway.gate"):
        await settlements.drain()
    assert done == [1]
    assert "redis went away" in caplog.text


async def test_beyond_the_bound_settlements_are_dropped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settlements = Settlements(max_queued=10)
    release = asyncio.Event()
    done: list[int] = []

    async def blocked(n: int) -> None:
        await release.wait()
        done.append(n)

    with caplog.at_level(logging.WARNING, "llm_gateway.gate"):
        for n in range(25):
            settlements.put(blocked(n))
        await asyncio.sleep(0)
    # Ten queued (the worker had not run yet); the other fifteen dropped (and closed, so
    # no "never awaited" warning), with a single log line.
    assert settlements.dropped == 15
    assert caplog.text.count("settlement queue full") == 1
    release.set()
    await settlements.drain()
    assert done == list(range(10))
