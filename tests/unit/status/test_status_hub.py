"""The broadcaster: one encode, never waits, drops whoever falls behind, numbers frames."""

from __future__ import annotations

import asyncio
import json

from llm_gateway.api.ws.hub import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, StatusHub
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
    tracker.breaker_changed("a", "a/m", "open")  # a state change: pushed
    got_first, got_second = frames(first.queue), frames(second.queue)
    assert [f["type"] for f in got_first] == ["status", "x", "provider_state"]
    assert [f["seq"] for f in got_first] == [0, 1, 2]
    assert [f["type"] for f in got_second] == ["status", "provider_state"]
    assert [f["seq"] for f in got_second] == [0, 1]  # numbered per connection
    change = got_second[1]
    assert change["provider"] == "a" and change["state"] == "UNHEALTHY"
    assert change["previous"] == "HEALTHY" and change["status"] == "unhealthy"
    assert change["error"]["message"] == "circuit open on route a/m"  # type: ignore[index]


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
        request_id="req-1~0a1b2c3d4e5f6071",
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
    assert stats["ledger_id"] == "req-1~0a1b2c3d4e5f6071"
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


def _record(key_id: str | None, request_id: str) -> UsageRecord:
    return UsageRecord(
        request_id=request_id, created_at=1.0, endpoint="ws.chat", model="mock", key_id=key_id
    )


async def test_stats_go_to_their_own_key_and_to_those_who_see_all() -> None:
    hub = StatusHub(ProviderTracker({"a": "openai"}, {}), interval=30)
    admin = hub.subscribe()  # admin key or open mode
    alice = hub.subscribe(key_id="key_alice", sees_all=False)
    bob = hub.subscribe(key_id="key_bob", sees_all=False)
    hub.on_usage(_record("key_alice", "a-1"))
    hub.on_usage(_record("key_bob", "b-1"))
    hub.on_usage(_record(None, "admin-1"))  # the admin key's own call
    hub.broadcast({"type": "provider_state", "provider": "a"})  # provider news: everyone
    got = {
        name: frames(sub.queue) for name, sub in [("admin", admin), ("alice", alice), ("bob", bob)]
    }
    ids = {name: [f.get("request_id", f["type"]) for f in fs] for name, fs in got.items()}
    assert ids == {
        "admin": ["status", "a-1", "b-1", "admin-1", "provider_state"],
        "alice": ["status", "a-1", "provider_state"],
        "bob": ["status", "b-1", "provider_state"],
    }
    # Numbered per connection: no gap betrays other tenants' traffic.
    assert [f["seq"] for f in got["alice"]] == [0, 1, 2]
    assert [f["seq"] for f in got["admin"]] == [0, 1, 2, 3, 4]


def test_ledger_suffix_is_stripped_only_in_its_own_format() -> None:
    from llm_gateway.status.frames import stats_frame

    assert stats_frame(_record(None, "r~0123456789abcdef"))["request_id"] == "r"
    assert stats_frame(_record(None, "r~01234567"))["request_id"] == "r~01234567"
    assert (
        stats_frame(_record(None, "0123456789abcdef" * 2))["request_id"] == "0123456789abcdef" * 2
    )
