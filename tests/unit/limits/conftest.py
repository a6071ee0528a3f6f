"""Fixtures for limiter tests: a real Redis client and a key prefix no other test uses."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from llm_gateway.limits.redis import connect

REDIS_URL = "redis://127.0.0.1:6379/0"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def prefix() -> str:
    return f"test-limits-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(prefix: str) -> AsyncIterator[aioredis.Redis]:
    # Generous timeouts: these tests check exactness, not failure handling, and the
    # machine may be busy with other test runs.
    client = connect(REDIS_URL, timeout=10, max_connections=32)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()
