"""``gate.run``: every way a call ends finishes its ticket with the route, the usage, the
routes' reservations, the status and the error, and tells the route only what is its."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llm_gateway.core.errors import GatewayError, UpstreamError
from llm_gateway.core.events import StreamEvent, TextDelta, UsageEvent
from llm_gateway.core.records import UsageRecord
from llm_gateway.core.types import ChatRequest, ChatResponse, Message, Usage
from llm_gateway.gate import Gate
from llm_gateway.gate.auth import Caller
from llm_gateway.gate.keys import KeyRing, mint_key
from llm_gateway.gate.run import (
    ClientClosedError,
    ClientGone,
    InternalError,
    StreamCall,
    complete,
)
from llm_gateway.limits.base import LimitRule, Reservation
from llm_gateway.routing.model_table import ModelInfo, ModelTable, Prices
from llm_gateway.routing.route import Route
from llm_gateway.routing.router import CallTrace, ModelPlan

pytestmark = pytest.mark.timeout(10)

ROUTE = Route("up", "m-1", None, provider_type="openai", tpm=1000)
OTHER = Route("spare", "m-1", None, provider_type="openai", tpm=1000)
PLAN = ModelPlan("m", (ROUTE, OTHER))
TABLE = ModelTable([ModelInfo("openai", "m-1", prices=Prices(input=1.0, output=1.0))])
REQUEST = ChatRequest(model="m", messages=[Message(role="user", content="hello")])


def route_reservation(route: Route) -> Reservation:
    rule = LimitRule(f"route:{route.label}", None, route.tpm)
    return Reservation(f"res-{route.provider_name}", (rule,), 500, time.time())


class Limiter:
    def __init__(self) -> None:
        self.settled: dict[str, int] = {}

    async def reserve(self, rules: tuple[LimitRule, ...], tokens: int) -> Reservation:
        return Reservation("key-res", rules, tokens, time.time())

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        self.settled[reservation.id] = actual_tokens

    async def aclose(self) -> None:
        pass


class FakeRouter:
    """Tried the spare route first (it failed), answered on ROUTE."""

    def __init__(
        self,
        batches: list[list[StreamEvent]] | None = None,
        failure: BaseException | None = None,
        fail_at: int | None = None,
    ) -> None:
        self.batches = batches or [[TextDelta("Hel")], [TextDelta("lo")]]
        self.failure = failure
        self.fail_at = fail_at
        self.ended: list[GatewayError | None] = []
        self.closed = False

    def _trace(self, trace: CallTrace) -> None:
        trace.reservations.extend([route_reservation(OTHER), route_reservation(ROUTE)])
        trace.route = ROUTE

    async def complete(
        self, plan: ModelPlan, request: ChatRequest, trace: CallTrace
    ) -> tuple[ChatResponse, Route]:
        self._trace(trace)
        if self.failure is not None:
            raise self.failure
        response = ChatResponse(id="x", model="m-1", created=0, content="Hello")
        return response, ROUTE

    async def open_stream(
        self, plan: ModelPlan, request: ChatRequest, trace: CallTrace
    ) -> tuple[Route, list[StreamEvent], AsyncIterator[list[StreamEvent]]]:
        self._trace(trace)
        if self.failure is not None and self.fail_at == 0:
            raise self.failure
        trace._on_finished = self.ended.append
        return ROUTE, self.batches[0], self._rest()

    async def _rest(self) -> AsyncIterator[list[StreamEvent]]:
        try:
            for index, batch in enumerate(self.batches[1:], start=1):
                if self.failure is not None and self.fail_at == index:
                    raise self.failure
                await asyncio.sleep(0)
                yield batch
        finally:
            self.closed = True


def fake(
    batches: list[list[StreamEvent]] | None = None,
    failure: BaseException | None = None,
    fail_at: int | None = None,
) -> Any:
    """A ``FakeRouter``, typed loosely: it stands in for the real ``Router``."""
    return FakeRouter(batches, failure, fail_at)


class Started:
    def __init__(self, started: bool) -> None:
        self.started = started


async def admitted(limiter: Limiter) -> tuple[Gate, Any, list[UsageRecord]]:
    _, key = mint_key("k", tpm=10_000)
    gate = Gate(admin_key="a", table=TABLE, limiter=limiter, keys=KeyRing([key]))
    records: list[UsageRecord] = []
    gate.add_observer(records.append)
    ticket = await gate.admit(Caller(key=key), PLAN, REQUEST, endpoint="e", request_id="r")
    return gate, ticket, records


async def test_complete_settles_the_route_that_answered_and_releases_the_others() -> None:
    limiter = Limiter()
    gate, ticket, records = await admitted(limiter)
    (text, route), record = await complete(
        fake(), PLAN, REQUEST, ticket, CallTrace(), lambda r, route: (r.content, route)
    )
    await gate.drain()
    assert (text, route) == ("Hello", ROUTE) and records == [record]
    assert record is not None and record.status == 200 and record.provider == "up"
    assert record.tokens_estimated and record.completion_tokens > 0  # no usage: counted
    assert record.ttft_ms is not None and record.ttft_ms > 0
    used = record.prompt_tokens + record.completion_tokens
    assert limiter.settled == {"key-res": used, "res-up": used, "res-spare": 0}


@pytest.mark.parametrize(
    ("failure", "raised", "status", "code"),
    [
        (UpstreamError("boom"), UpstreamError, 502, "upstream_error"),
        (ValueError("bug"), InternalError, 500, "internal_error"),
        (asyncio.CancelledError(), asyncio.CancelledError, 499, "client_closed_request"),
    ],
)
async def test_a_failed_complete_is_recorded_with_its_route_and_reservations(
    failure: BaseException, raised: type[BaseException], status: int, code: str
) -> None:
    limiter = Limiter()
    gate, ticket, records = await admitted(limiter)
    with pytest.raises(raised):
        await complete(fake(failure=failure), PLAN, REQUEST, ticket, CallTrace(), lambda *a: a)
    await gate.drain()
    [record] = records
    assert (record.status, record.error_code) == (status, code)
    assert set(limiter.settled) == {"key-res", "res-up", "res-spare"}


async def test_a_render_bug_is_the_500_that_is_recorded() -> None:
    _, ticket, records = await admitted(Limiter())

    def render(response: ChatResponse, route: Route) -> None:
        raise KeyError("oops")

    with pytest.raises(InternalError):
        await complete(fake(), PLAN, REQUEST, ticket, CallTrace(), render)
    assert [(r.status, r.error_code) for r in records] == [(500, "internal_error")]


async def relay(run: StreamCall, emit: list[str]) -> None:
    def send(batch: list[StreamEvent]) -> None:
        run.meter.observe(batch)
        for event in batch:
            if isinstance(event, TextDelta):
                if event.text == "GONE":
                    raise ClientGone()
                emit.append(event.text)

    send(await run.open())
    assert run.events is not None
    async for batch in run.events:
        send(batch)


async def test_a_stream_is_recorded_once_with_usage_reservations_and_first_token() -> None:
    limiter = Limiter()
    gate, ticket, records = await admitted(limiter)
    router = fake([[TextDelta("a")], [TextDelta("b"), UsageEvent(Usage(3, 2, 5))]])
    out: list[str] = []
    async with StreamCall(router, PLAN, REQUEST, ticket) as run:
        await relay(run, out)
    await gate.drain()
    assert out == ["a", "b"] and router.closed and router.ended == [None]
    assert records == [run.record]
    record = records[0]
    assert record.status == 200 and record.streamed and record.error_code is None
    assert (record.prompt_tokens, record.completion_tokens) == (3, 2)
    assert not record.tokens_estimated and record.ttft_ms is not None
    assert limiter.settled == {"key-res": 5, "res-up": 5, "res-spare": 0}


@pytest.mark.parametrize(
    ("failure", "fail_at", "raised", "status", "code", "route_told"),
    [
        # Opening failed: the upstream's status, no route (nothing answered).
        (UpstreamError("down"), 0, UpstreamError, 502, "upstream_error", False),
        # Failed after the first batch: the stream had started, so 200 with the error.
        (UpstreamError("cut"), 1, UpstreamError, 200, "upstream_error", True),
        # Our bug: a 500 to answer, never held against the route.
        (ValueError("bug"), 1, InternalError, 200, "internal_error", False),
        # The client left: recorded as 499-coded, not the route's fault.
        (asyncio.CancelledError(), 1, asyncio.CancelledError, 200, "client_closed_request", False),
        (asyncio.CancelledError(), 0, asyncio.CancelledError, 499, "client_closed_request", False),
    ],
)
async def test_every_way_a_stream_ends_is_recorded(
    failure: BaseException,
    fail_at: int,
    raised: type[BaseException],
    status: int,
    code: str,
    route_told: bool,
) -> None:
    limiter = Limiter()
    gate, ticket, records = await admitted(limiter)
    router = fake(failure=failure, fail_at=fail_at)
    with pytest.raises(raised):
        async with StreamCall(router, PLAN, REQUEST, ticket) as run:
            await relay(run, [])
    await gate.drain()
    [record] = records
    assert (record.status, record.error_code) == (status, code)
    assert (len(router.ended) == 1) is route_told
    assert set(limiter.settled) == {"key-res", "res-up", "res-spare"}
    if fail_at > 0:
        assert router.closed and record.provider == "up"
        assert record.completion_tokens > 0  # what was produced is counted


async def test_client_gone_mid_stream_and_a_committed_response() -> None:
    _, ticket, records = await admitted(Limiter())
    router = fake([[TextDelta("a")], [TextDelta("GONE")]])
    with pytest.raises(ClientGone):
        async with StreamCall(router, PLAN, REQUEST, ticket) as run:
            await relay(run, [])
    assert records[0].error_code == ClientClosedError.default_code and router.closed
    # A heartbeat already committed the response to a 200: an open failure records 200.
    _, ticket, records = await admitted(Limiter())
    router = fake(failure=UpstreamError("down"), fail_at=0)
    with pytest.raises(UpstreamError):
        async with StreamCall(router, PLAN, REQUEST, ticket, Started(True)) as run:
            await relay(run, [])
    assert (records[0].status, records[0].error_code) == (200, "upstream_error")
