"""Budgets under a race: 50 concurrent requests against a budget that allows 10.

Spend must never exceed the budget plus one request's reservation, whether the counter is
in-process or on Redis; the requests refused get OpenAI's ``insufficient_quota`` error.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from typing import Any

import httpx
import pytest

from llm_gateway.core.types import ChatRequest, Message
from llm_gateway.gate.keys import mint_key
from llm_gateway.routing.estimate import estimate_completion_tokens, estimate_prompt_tokens
from llm_gateway.storage import open_storage
from tests.conftest import read_ledger, serve_gateway, wait_for_ledger

ADMIN = "admin-" + uuid.uuid4().hex
PRICE = 1_000_000.0  # USD per 1M tokens: one dollar a token keeps the arithmetic readable
MAX_TOKENS = 16  # the reservation's completion part; the mock answers with fewer
CONCURRENT = 50
ALLOWED = 10


def _body(n: int) -> dict[str, Any]:
    return {
        "model": "mock",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": f"race {n:02d}"}],
    }


def _reservation() -> float:
    """What the gate reserves per request: estimated prompt plus max_tokens, at PRICE."""
    request = ChatRequest(
        model="mock", messages=[Message(role="user", content="race 00")], max_tokens=MAX_TOKENS
    )
    tokens = estimate_prompt_tokens(request) + estimate_completion_tokens(request)
    return tokens * PRICE / 1e6


@pytest.mark.parametrize("counter", ["memory", "redis"])
async def test_concurrent_requests_cannot_overspend_a_budget(counter: str) -> None:
    reservation = _reservation()
    budget = ALLOWED * reservation
    secret, key = mint_key("racer", budget=budget, budget_period="total")
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/gateway.db"
        store = open_storage(url)
        await store.start()
        await store.add_key(key)
        await store.aclose()
        config: dict[str, Any] = {
            "auth": {"admin_key": ADMIN},
            "storage": {"url": url, "flush_seconds": 0.05},
            "providers": {"mock": {"type": "mock", "chunk_delay_ms": 0}},
            "models": {"mock": {"routes": [{"provider": "mock", "model": "mock-1"}]}},
            "model_table": {"mock/mock-1": {"prices": {"input": PRICE, "output": PRICE}}},
        }
        if counter == "redis":
            config["redis"] = {"url": "redis://127.0.0.1:6379/0", "prefix": uuid.uuid4().hex}
        with serve_gateway(config) as gateway:
            async with httpx.AsyncClient(
                base_url=gateway.url, headers={"authorization": f"Bearer {secret}"}, timeout=20
            ) as client:
                answers = await asyncio.gather(
                    *(client.post("/v1/chat/completions", json=_body(n)) for n in range(CONCURRENT))
                )
            await asyncio.to_thread(wait_for_ledger, gateway.url)
        ok = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code != 200]
        assert {a.status_code for a in refused} == {402}
        error = refused[0].json()["error"]
        assert error["code"] == "insufficient_quota" and error["type"] == "insufficient_quota"
        assert "budget" in error["message"] and secret not in error["message"]
        # Each answer really cost no more than its reservation: the bound below is tight.
        costs = [
            (a.json()["usage"]["prompt_tokens"] + a.json()["usage"]["completion_tokens"]) * PRICE
            for a in ok
        ]
        assert all(c / 1e6 <= reservation for c in costs)
        records = await read_ledger(url, key_id=key.id)
        spent = sum(r.cost for r in records)
        served = [r for r in records if r.status == 200]
        assert sorted(r.request_id for r in served) == sorted(a.headers["x-request-id"] for a in ok)
        # Refusals are in the ledger too, costing nothing.
        rejected = [r for r in records if r.status == 402]
        assert len(rejected) == len(refused) and all(r.cost == 0 for r in rejected)
        assert {r.error_code for r in rejected} == {"insufficient_quota"}
        assert spent <= budget + reservation
        assert len(ok) >= ALLOWED  # the budget was used, not refused early
