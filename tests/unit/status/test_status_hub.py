"""The broadcaster: one encode, never waits, drops whoever falls behind, numbers frames."""

from __future__ import annotations

import asyncio
import json

from llm_gateway.api.ws.hub import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, StatusHub
from llm_gateway.core.errors import UpstreamError
from llm_gateway.core.records import UsageRecord
from llm_gateway.status import ProviderTracker


def frames(queue: asyncio.Queue[str]) -> list[dict[str, object]]:
    out = []
    while not queue.empty():
        out.append(json.loads(queue.get_nowait()))
    return out


async def test_subscribers_start_with_status_then_get_every_broadcast_in_order() -> None:
    tracker = ProviderTracker({"a": "openai"}, {})
    hub = StatusHub(tracker, interval=30, queue_size=8)
    first = hub.subscribe()
    hub.broadcast({"type": "x"})
    second = hub.subscribe()
    tracker.record_outcome("a", UpstreamError("down"), 0.1)  # a state change: pushed
    got_first, got_second = frames(first.queue), frames(second.queue)
    assert [f["type"] for f in got_first] == ["status", "x", "provider_state"]
    assert [f["seq"] for f in got_first] == [0, 1, 2]
    assert [f["type"] for f in got_second] == ["status", "provider_state"]
    assert [f["seq"] for f in got_second] == [1, 2]  # status carries the current seq
    change = got_second[1]
    assert change["provider"] == "a" and change["state"] == "UNHEALTHY"
    assert change["previous"] == "HEALTHY" and change["status"] == "unhealthy"
    assert change["error"]["message"] == "down"  # type: ignore[index]


async def test_a_full_queue_drops_only_that_subscriber() -> None:
    hub = StatusHub(ProviderTracker({"a": "openai"}, {}), interval=30, queue_size=4)
    slow, fast = hub.subscribe(), hub.subscribe()
    for i in range(10):
        hub.broadcast({"type": "n", "n": i})
        while not fast.queue.empty():  # the fast one keeps up
            fast.queue.get_nowait()
    assert slow.dropped.is_set() and slow.close_code == CLOSE_TOO_SLOW
    assert not fast.dropped.is_set()
    assert len(hub) == 1 and hub.dropped_total == 1
    assert slow.queue.qsize() == 4  # what it had: nothing more was queued for it


async def test_usage_records_become_stats_frames() -> None:
    hub = StatusHub(ProviderTracker({"mock": "mock"}, {}), interval=30)
    sub = hub.subscribe()
    record = UsageRecord(
        request_id="req-1~0a1b2c3d",
        created_at=1.0,
        endpoint="chat.completions",
        model="mock",
        provider="mock",
        route_model="mock-1",
        prompt_tokens=10,
        completion_tokens=50,
        latency_ms=500.0,
        ttft_ms=100.0,
        streamed=True,
    )
    hub.on_usage(record)
    stats = frames(sub.queue)[-1]
    assert stats["type"] == "stats" and stats["request_id"] == "req-1"
    assert stats["ledger_id"] == "req-1~0a1b2c3d"
    assert stats["total_tokens"] == 60 and stats["tokens_per_second"] == 100.0
    assert stats["ttft_ms"] == 100.0 and stats["status"] == 200


async def test_periodic_status_and_close() -> None:
    hub = StatusHub(ProviderTracker({"a": "openai"}, {}), interval=0.05)
    sub = hub.subscribe()
    hub.start()
    await asyncio.sleep(0.18)
    got = frames(sub.queue)
    assert [f["type"] for f in got].count("status") >= 3
    await hub.aclose()
    assert sub.dropped.is_set() and sub.close_code == CLOSE_GOING_AWAY and len(hub) == 0
