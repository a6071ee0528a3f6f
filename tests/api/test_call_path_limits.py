"""The call path under limits, over real sockets: huge max_tokens, bugs during admission,
refusals in the ledger, and route limits settled on every HTTP surface.

Each gateway gets its own SQLite ledger and (where Redis is used) its own key prefix.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from llm_gateway.core.records import UsageRecord
from llm_gateway.limits.base import LimitRule, Reservation
from tests.api.admin_harness import PRICED_MOCK, AdminGateway, admin_gateway
from tests.conftest import serve_gateway

pytestmark = pytest.mark.timeout(30)

HUGE = 10**12
REDIS = "redis://127.0.0.1:6379/0"


def redis_config() -> dict[str, Any]:
    return {"redis": {"url": REDIS, "prefix": "test-callpath-" + uuid.uuid4().hex}}


@pytest.fixture(scope="module")
def gw() -> Iterator[AdminGateway]:
    with admin_gateway({**PRICED_MOCK, **redis_config()}) as gateway:
        yield gateway


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def chat_body(max_tokens: int | None = None, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "mock",
        "stream": stream,
        "messages": [{"role": "user", "content": "hello there"}],
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def ask_everywhere(gw: AdminGateway, secret: str, max_tokens: int) -> list[httpx.Response]:
    """One request per HTTP surface with ``max_tokens``, streamed and not."""
    url, http = gw.url, gw.http
    prompt = {"prompt": "hello there", "model": "mock", "max_tokens": max_tokens}
    anthropic = {"x-api-key": secret, "anthropic-version": "2023-06-01"}
    messages = {**chat_body(max_tokens), "stream": False}
    return [
        http.post(f"{url}/v1/chat/completions", json=chat_body(max_tokens), headers=bearer(secret)),
        http.post(
            f"{url}/v1/chat/completions", json=chat_body(max_tokens, True), headers=bearer(secret)
        ),
        http.post(f"{url}/v1/messages", json=messages, headers=anthropic),
        http.post(f"{url}/api/llm/generate", json=prompt, headers=bearer(secret)),
        http.post(f"{url}/api/llm/stream", json=prompt, headers=bearer(secret)),
    ]


def test_huge_max_tokens_on_redis_is_admitted_within_a_ceiling(gw: AdminGateway) -> None:
    # Before: 10**12 tokens at $0.1 a token overflowed Redis' 64-bit counters (a plain-text
    # 500) after the tpm reservation was taken, locking the key out for a minute.
    secret = gw.create_key(name="huge", tpm=10_000_000, budget=1_000_000.0)["key"]
    for response in ask_everywhere(gw, secret, HUGE):
        assert response.status_code == 200, response.text
        assert "mock" in response.text and "error" not in response.text
    normal = gw.chat(secret)
    assert normal.status_code == 200, normal.text
    assert normal.json()["choices"][0]["message"]["content"].startswith("This is a mock")


def eventually_ok(gw: AdminGateway, secret: str, within: float = 3.0) -> float:
    """Seconds until a normal request of ``secret`` is served (a leaked reservation of
    a huge request would keep the key out for the whole minute)."""
    started = time.monotonic()
    while True:
        response = gw.chat(secret)
        if response.status_code == 200:
            return time.monotonic() - started
        assert response.status_code == 429, response.text
        assert time.monotonic() - started < within, response.text
        time.sleep(0.05)


def test_huge_max_tokens_over_a_small_tpm_is_a_clean_answer_then_settled(
    gw: AdminGateway,
) -> None:
    # Into an empty window a request is admitted whatever its estimate (limits/_common);
    # with tokens already used it is a clean 429. Either way the reservation (capped at
    # the model's limit) is given back or replaced by the real usage: the next normal
    # request is served, where a leaked reservation kept the key out for a minute.
    secret = gw.create_key(name="small-tpm", tpm=5_000, budget=1_000_000.0)["key"]
    prompt = {"prompt": "hello there", "model": "mock", "max_tokens": HUGE}
    paths = [
        ("/api/llm/stream", prompt),
        ("/v1/chat/completions", chat_body(HUGE)),
        ("/v1/chat/completions", chat_body(HUGE, stream=True)),
        ("/api/llm/generate", prompt),
    ]
    statuses = []
    for path, body in paths:
        response = gw.http.post(f"{gw.url}{path}", json=body, headers=bearer(secret))
        statuses.append(response.status_code)
        if response.status_code == 429:
            error = response.json()["error"]
            assert error["code"] == "rate_limit_exceeded" and "5000 tokens" in error["message"]
        else:
            assert response.status_code == 200, response.text
            assert "mock" in response.text and "error" not in response.text
        assert eventually_ok(gw, secret) < 3.0
    assert statuses[0] == 200 and set(statuses[1:]) == {429}


class BrokenSpend:
    """A spend counter with a bug: admission must answer 500 and give back the tpm."""

    async def seed(self, key_id: str, period: str, spent: float) -> None:
        pass

    async def reserve(self, key_id: str, period: str, budget: float, amount: float) -> Any:
        raise RuntimeError("counter bug: secret internals")

    async def settle(self, reservation: Any, actual: float) -> None:
        pass

    async def spent(self, key_id: str, period: str) -> float:
        return 0.0

    async def aclose(self) -> None:
        pass


class CountingLimiter:
    def __init__(self) -> None:
        self.open: set[str] = set()
        self.count = 0

    async def reserve(self, rules: tuple[LimitRule, ...], tokens: int) -> Reservation:
        self.count += 1
        rid = f"r{self.count}"
        self.open.add(rid)
        return Reservation(rid, rules, tokens, time.time())

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        self.open.discard(reservation.id)

    async def aclose(self) -> None:
        pass


def test_a_bug_during_admission_is_an_internal_error_in_each_dialect() -> None:
    with admin_gateway(PRICED_MOCK) as gw:
        secret = gw.create_key(name="bugged", tpm=100_000, budget=10.0)["key"]
        records: list[UsageRecord] = []
        gw.state.gate.add_observer(records.append)
        limiter = CountingLimiter()
        gw.state.gate.attach_limits(limiter, BrokenSpend())
        answers = ask_everywhere(gw, secret, 100)
        for response in answers:
            assert response.status_code == 500, response.text
            assert "secret internals" not in response.text
        for response in (answers[0], answers[1], answers[3], answers[4]):
            error = response.json()["error"]
            assert error["code"] == "internal_error" and error["type"] == "api_error"
        anthropic = answers[2].json()
        assert anthropic["type"] == "error" and anthropic["error"]["type"] == "api_error"
        deadline = time.monotonic() + 5
        while limiter.open and time.monotonic() < deadline:
            time.sleep(0.01)
        assert limiter.count == 5 and not limiter.open  # every tpm reservation given back
        refused = [r for r in records if r.status == 500]
        assert len(refused) == 5 and {r.error_code for r in refused} == {"internal_error"}
        assert {r.endpoint for r in refused} == {
            "chat.completions",
            "messages",
            "api.generate",
            "api.stream",
        }


def test_refusals_on_the_gateway_api_are_in_the_ledger(gw: AdminGateway) -> None:
    narrow = gw.create_key(name="narrow", allowed_models=["gpt-*"])["key"]
    spent = gw.create_key(name="spent", budget=0.000_001)["key"]
    records: list[UsageRecord] = []
    gw.state.gate.add_observer(records.append)
    body = {"prompt": "hello there", "model": "mock"}
    chat = {"model": "mock", "messages": [{"role": "user", "content": "x"}]}
    first = gw.http.post(f"{gw.url}/api/llm/generate", json=body, headers=bearer(spent))
    assert first.status_code == 200  # the first request of a small budget is let through
    time.sleep(0.3)  # its spend is settled behind the answer
    cases = [
        ("/api/llm/generate", body, narrow, 403, "model_not_allowed"),
        ("/api/llm/stream", body, narrow, 403, "model_not_allowed"),
        ("/api/chat/stream", chat, narrow, 403, "model_not_allowed"),
        ("/api/llm/generate", {**body, "model": "nope"}, narrow, 404, "model_not_found"),
        ("/api/llm/stream", body, spent, 402, "insufficient_quota"),
    ]
    for path, sent, secret, status, code in cases:
        response = gw.http.post(
            f"{gw.url}{path}", json=sent, headers={**bearer(secret), "x-request-id": code}
        )
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
    deadline = time.monotonic() + 5
    while len([r for r in records if r.status >= 400]) < len(cases):
        assert time.monotonic() < deadline, records
        time.sleep(0.01)
    refused = [r for r in records if r.status >= 400]
    assert [(r.status, r.error_code) for r in refused] == [(c[3], c[4]) for c in cases]
    assert [r.endpoint for r in refused] == [
        "api.generate",
        "api.stream",
        "api.stream",
        "api.generate",
        "api.stream",
    ]
    assert all(r.cost == 0 and r.provider is None for r in refused)
    assert all(r.request_id.startswith(r.error_code + "~") for r in refused if r.error_code)
    assert all(len(r.request_id.split("~")[1]) == 16 for r in refused)
    assert refused[3].model == "nope" and refused[0].key_id is not None


def sse_stats(text: str) -> dict[str, Any]:
    """The data of the one ``stats`` frame of an SSE answer."""
    found = [
        json.loads(block.split("\ndata: ", 1)[1])
        for block in text.split("\n\n")
        if block.startswith("event: stats\n")
    ]
    assert len(found) == 1, text
    stats: dict[str, Any] = found[0]
    return stats


ROUTE_LIMITED: dict[str, Any] = {
    "providers": {
        "small": {"type": "mock", "chunk_delay_ms": 0, "tpm": 1000},
        "big": {"type": "mock", "chunk_delay_ms": 0},
    },
    "models": {
        "m": {
            "routes": [
                {"provider": "small", "model": "mock-1"},
                {"provider": "big", "model": "mock-1"},
            ]
        }
    },
}


@pytest.mark.parametrize("limits", ["memory", "redis"])
def test_route_limits_are_settled_on_the_gateway_api(limits: str) -> None:
    # Each request reserves ~410 of the small route's 1000 tokens a minute; settled with
    # what it really used (~20) every request fits. Unsettled, the third fell back to big.
    config = {**ROUTE_LIMITED, **(redis_config() if limits == "redis" else {})}
    prompt = {"prompt": "hello there", "model": "m", "max_tokens": 400}
    chat = {
        "model": "m",
        "max_tokens": 400,
        "messages": [{"role": "user", "content": "hello there"}],
    }
    with serve_gateway(config) as gateway, httpx.Client(base_url=gateway.url, timeout=10) as http:
        served: list[str] = []
        for _ in range(2):
            served.append(http.post("/api/llm/generate", json=prompt).json()["provider"])
            for path, body in (("/api/llm/stream", prompt), ("/api/chat/stream", chat)):
                served.append(sse_stats(http.post(path, json=body).text)["provider"])
            served.append(
                http.post("/v1/chat/completions", json=chat).headers["x-gateway-provider"]
            )
    assert served == ["small"] * 8


async def test_refusals_on_the_websocket_chat_are_in_the_ledger(gw: AdminGateway) -> None:
    # The WebSocket chat admits through the same Generator.admit as /api/llm.
    narrow = gw.create_key(name="ws-narrow", allowed_models=["gpt-*"])["key"]
    records: list[UsageRecord] = []
    gw.state.gate.add_observer(records.append)
    frame = {
        "action": "llm/chat",
        "requestId": "ws-1",
        "data": {"messages": [{"role": "user", "content": "hi"}], "modelId": "mock"},
    }
    url = "ws" + gw.url[len("http") :] + "/ws"
    async with websockets.connect(url, additional_headers=bearer(narrow), open_timeout=5) as ws:
        await ws.send(json.dumps(frame))
        async with asyncio.timeout(5):
            reply = json.loads(await ws.recv())
    assert reply["type"] == "error" and reply["requestId"] == "ws-1"
    assert reply["error"]["code"] == "model_not_allowed"
    for _ in range(500):  # the record is emitted on the server's thread
        if records:
            break
        await asyncio.sleep(0.01)
    [record] = records
    assert (record.status, record.error_code, record.model) == (403, "model_not_allowed", "mock")
    assert record.request_id.startswith("ws-1~") and record.cost == 0
