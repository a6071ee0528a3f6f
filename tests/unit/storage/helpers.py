"""Shared pieces for storage tests: Postgres schemas of their own, records, a flaky store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import asyncpg

from llm_gateway.core.records import UsageRecord
from llm_gateway.storage.base import StorageUnavailableError

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_DSN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


def pg_url(schema: str, *, host: str = PG_HOST, port: int = PG_PORT) -> str:
    return f"postgresql://postgres@{host}:{port}/test?schema={schema}"


def new_schema_name() -> str:
    return f"test_storage_{uuid.uuid4().hex[:12]}"


async def drop_schema(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def pg_request_ids(schema: str) -> list[str]:
    """Every request id in a schema's ledger, duplicates kept (there must be none)."""
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        rows = await conn.fetch(f'SELECT request_id FROM "{schema}".gateway_usage')
    finally:
        await conn.close()
    return [r["request_id"] for r in rows]


def record(request_id: str, **fields: object) -> UsageRecord:
    values: dict[str, object] = {
        "request_id": request_id,
        "created_at": time.time(),
        "endpoint": "chat.completions",
        "model": "gpt-4o-mini",
        "key_id": "key-1",
        "provider": "openai",
        "route_model": "gpt-4o-mini-2024-07-18",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost": 0.001,
        "latency_ms": 12.5,
    }
    values.update(fields)
    return UsageRecord(**values)  # type: ignore[arg-type]


def records(prefix: str, n: int) -> list[UsageRecord]:
    return [record(f"{prefix}-{i}") for i in range(n)]


class FlakyStore:
    """A ``UsageStore`` in memory whose writes fail while ``down`` is true.

    ``lose_commit`` simulates the nastiest outage: the batch is stored, but the reply is
    lost, so the writer sees a failure and must write it again (exactly once then rests
    on the unique request id).
    """

    def __init__(self) -> None:
        self.rows: dict[str, UsageRecord] = {}
        self.attempts = 0
        self.batches: list[int] = []
        self.down = False
        self.lose_commit = False
        self.poison: set[str] = set()  # ids the "database" refuses as bad values

    async def insert_usage(self, batch: list[UsageRecord]) -> int:
        self.attempts += 1
        if self.down:
            raise StorageUnavailableError("writing usage records: down")
        if any(r.request_id in self.poison for r in batch):
            raise ValueError("invalid input for query argument")
        new = 0
        for r in batch:
            if r.request_id not in self.rows:
                self.rows[r.request_id] = r
                new += 1
        self.batches.append(len(batch))
        if self.lose_commit:
            raise StorageUnavailableError("writing usage records: connection lost at commit")
        return new

    def ids(self) -> Iterable[str]:
        return self.rows.keys()


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``condition`` until true; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def journal_lines(path: Path) -> int:
    """Lines in a journal and its replay file together."""
    files = [path, path.with_name(path.name + ".replay")]
    return sum(len(p.read_bytes().splitlines()) for p in files if p.exists())
