"""Shared fixtures: a gateway on a real socket built from a config dict."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from llm_gateway.app import create_app
from llm_gateway.config.schema import GatewayConfig
from llm_gateway.core.records import UsageRecord
from tests.fakes.server import RunningServer, run_server

MOCK_ONLY: dict[str, Any] = {
    "providers": {"mock": {"type": "mock", "chunk_delay_ms": 0}},
    "models": {"mock": {"routes": [{"provider": "mock", "model": "mock-1"}]}},
}

GatewayFactory = Callable[[dict[str, Any]], AbstractContextManager[RunningServer]]


@contextmanager
def serve_gateway(config: dict[str, Any]) -> Iterator[RunningServer]:
    """A gateway on a real socket. Without a ``storage`` section it gets its own SQLite
    file in a temporary directory, so tests never write ./gateway.db; without a ``status``
    section no start-up checks run."""
    with tempfile.TemporaryDirectory(prefix="gw-test-") as scratch:
        if "storage" not in config:
            config = {**config, "storage": {"url": f"sqlite:///{scratch}/gateway.db"}}
        # Start-up model listings warm upstream pools and add GET /models to fake upstreams'
        # logs; tests that want them set "status" themselves.
        config = {"status": {"check_on_startup": False}, **config}
        app = create_app(GatewayConfig.model_validate(config))
        with run_server(app, lifespan="on", http="httptools", loop="uvloop") as server:
            yield server


@pytest.fixture
def gateway_factory() -> GatewayFactory:
    return serve_gateway


@pytest.fixture(scope="module")
def mock_gateway() -> Iterator[RunningServer]:
    with serve_gateway(MOCK_ONLY) as server:
        yield server


def wait_for_ledger(gateway_url: str, timeout: float = 10.0) -> None:
    """Until the gateway's storage is open (it opens just behind start-up with SQLite).

    A gateway stopped before that keeps what it served in its journal for the next start;
    tests that read the database right after stopping wait for this first.
    """
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(f"{gateway_url}/health", timeout=5).json()
        if health["components"].get("database", {}).get("status") == "ok":
            return
        assert time.monotonic() < deadline, health
        time.sleep(0.05)


async def read_ledger(url: str, **filters: Any) -> list[UsageRecord]:
    """The usage records in the database at ``url`` (``UsageQuery`` filters; 1000 at most)."""
    from llm_gateway.storage import UsageQuery, open_storage

    store = open_storage(url)
    await store.start()
    try:
        return await store.query_usage(UsageQuery(limit=1000, **filters))
    finally:
        await store.aclose()
