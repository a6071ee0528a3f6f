"""A real gateway on a real socket with the admin API, for the admin, CLI and auth tests.

``admin_gateway()`` serves the mock provider with an admin key and a fresh database (a
SQLite file in a temporary directory, the product's default, or with
``backend="postgres"`` a schema of its own on the local Postgres, dropped after), and
gives tests:
- ``url``, ``admin_key``, ``state`` (the ``GatewayState``) and ``storage``;
- ``run(coro)``: run a coroutine on the server's own event loop (storage objects belong
  to it), from a synchronous test;
- small helpers to create keys and call endpoints with httpx.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from llm_gateway.app import GatewayApp, GatewayState, create_app
from llm_gateway.config.schema import GatewayConfig
from llm_gateway.storage.base import Storage
from llm_gateway.storage.memory import MemoryStorage
from tests.conftest import MOCK_ONLY
from tests.fakes.server import run_server

T = TypeVar("T")

# The mock model priced so budgets can be spent (USD per 1M tokens).
PRICED_MOCK: dict[str, Any] = {
    "model_table": {"mock/mock-1": {"prices": {"input": 100_000.0, "output": 100_000.0}}},
}


class _LoopCapture:
    """Remembers the event loop the server runs on (the first ASGI call is the lifespan)."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@dataclass
class AdminGateway:
    url: str
    admin_key: str
    app: GatewayApp
    loop: asyncio.AbstractEventLoop
    http: httpx.Client = field(repr=False)

    @property
    def state(self) -> GatewayState:
        return self.app.state

    @property
    def storage(self) -> Storage:
        return self.state.storage

    @property
    def memory(self) -> MemoryStorage | None:
        """The storage, when it is the in-memory one (outage switch available)."""
        storage = self.state.access.storage
        return storage if isinstance(storage, MemoryStorage) else None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- HTTP helpers ---------------------------------------------------------------------

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.admin_key}", **kwargs.pop("headers", {})}
        return self.http.request(method, self.url + path, headers=headers, **kwargs)

    def create_key(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "test-key")
        response = self.admin("POST", "/admin/keys", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def chat(
        self, key: str | None, model: str = "mock", *, header: str = "authorization"
    ) -> httpx.Response:
        headers: dict[str, str] = {}
        if key is not None:
            headers = {header: f"Bearer {key}" if header == "authorization" else key}
        body = {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
        return self.http.post(self.url + "/v1/chat/completions", json=body, headers=headers)

    def messages(self, key: str | None, model: str = "mock") -> httpx.Response:
        headers = {"anthropic-version": "2023-06-01"}
        if key is not None:
            headers["x-api-key"] = key
        body = {
            "model": model,
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hello there"}],
        }
        return self.http.post(self.url + "/v1/messages", json=body, headers=headers)

    def wait_for_usage(self, count: int, timeout: float = 5.0, **filters: Any) -> dict[str, Any]:
        """Poll ``/admin/usage`` until ``count`` records match (the ledger writes behind)."""
        deadline = time.monotonic() + timeout
        while True:
            page: dict[str, Any] = self.admin("GET", "/admin/usage", params=filters).json()
            if page["totals"]["requests"] >= count or time.monotonic() > deadline:
                return page
            time.sleep(0.05)


PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def _database(backend: str, scratch: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{scratch}/gateway.db"
        return
    assert backend == "postgres", backend
    schema = "test_admin_" + secrets.token_hex(6)
    try:
        yield f"{PG_DSN}?schema={schema}"
    finally:
        asyncio.run(_drop_schema(schema))


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextmanager
def admin_gateway(
    extra: dict[str, Any] | None = None,
    *,
    admin_key: str | None = None,
    backend: str = "sqlite",
    **server_options: Any,
) -> Iterator[AdminGateway]:
    """A gateway with the admin API; ``extra`` is merged over the config (top level),
    ``server_options`` go to uvicorn (``access_log=True``, ``log_config=None``).
    ``backend`` is "sqlite" (a fresh file) or "postgres" (a fresh schema, dropped after)."""
    key = admin_key or "sk-admin-" + secrets.token_urlsafe(24)
    with (
        tempfile.TemporaryDirectory(prefix="gw-admin-") as scratch,
        _database(backend, scratch) as url,
    ):
        config: dict[str, Any] = {
            **MOCK_ONLY,
            "auth": {"admin_key": key},
            "storage": {"url": url, "flush_seconds": 0.05},
            **(extra or {}),
        }
        app = create_app(GatewayConfig.model_validate(config))
        capture = _LoopCapture(app)
        with (
            run_server(
                capture, lifespan="on", http="httptools", loop="uvloop", **server_options
            ) as server,
            httpx.Client(timeout=10.0) as http,
        ):
            assert capture.loop is not None
            yield AdminGateway(url=server.url, admin_key=key, app=app, loop=capture.loop, http=http)


__all__ = ["PRICED_MOCK", "AdminGateway", "admin_gateway"]
