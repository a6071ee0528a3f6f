"""Three real gateway processes sharing Redis and Postgres, as a scaled-out deployment runs.

A key limited to 60 requests a minute must admit at most 60 requests across all three
replicas under concurrent load; a key created through one replica's admin API must work
on the others at once (the key-change announcement over Redis), and every admitted
request must land in the shared ledger exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from llm_gateway.gate.keys import mint_key
from llm_gateway.storage import UsageQuery, open_storage
from tests.e2e.test_serve_process import clean_env, free_port

ADMIN = "admin-" + uuid.uuid4().hex
PG = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
REPLICAS = 3
RPM = 60
PER_REPLICA = 50  # 150 requests in all, well over the limit


def _services_up() -> bool:
    import socket

    for port in (5432, 6379):
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return False
    return True


pytestmark = pytest.mark.skipif(not _services_up(), reason="needs Postgres and Redis")


@contextmanager
def replicas(tmp_path: Path, schema: str, prefix: str) -> Iterator[list[str]]:
    config = {
        "auth": {"admin_key": ADMIN, "keys_refresh_seconds": 300},
        "storage": {"url": f"{PG}?schema={schema}", "flush_seconds": 0.05},
        "redis": {"url": REDIS, "prefix": prefix},
        "status": {"check_on_startup": False},
        "providers": {"mock": {"type": "mock", "chunk_delay_ms": 0}},
        "models": {"mock": {"routes": [{"provider": "mock", "model": "mock-1"}]}},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    ports = [free_port() for _ in range(REPLICAS)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "llm_gateway", "serve", "--config", str(path), "--port", str(p)],
            cwd=tmp_path,
            env=clean_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in ports
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/v1/models", timeout=2, headers=_auth(ADMIN)).is_success:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "a replica did not start"
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _ask(client: httpx.AsyncClient, url: str, key: str, n: int) -> httpx.Response:
    return await client.post(
        f"{url}/v1/chat/completions",
        headers=_auth(key),
        json={"model": "mock", "messages": [{"role": "user", "content": f"request {n}"}]},
    )


async def test_three_replicas_share_one_rate_limit_and_one_ledger(tmp_path: Path) -> None:
    schema = "t_" + uuid.uuid4().hex[:12]
    prefix = "test-" + uuid.uuid4().hex[:8]
    secret, key = mint_key("shared", rpm=RPM)
    store = open_storage(PG, schema=schema)
    await store.start()
    try:
        await store.add_key(key)
        with replicas(tmp_path, schema, prefix) as urls:
            async with httpx.AsyncClient(timeout=30) as client:
                answers = await asyncio.gather(
                    *(_ask(client, url, secret, i) for url in urls for i in range(PER_REPLICA))
                )
                ok = [a for a in answers if a.status_code == 200]
                refused = [a for a in answers if a.status_code == 429]
                assert len(ok) + len(refused) == len(answers), {a.status_code for a in answers}
                # Exact across replicas: every request ran inside one minute.
                assert len(ok) == RPM
                served_by = {a.request.url.port for a in ok}
                assert len(served_by) >= 2  # the limit really was shared, not per process
                sample = refused[0]
                assert sample.json()["error"]["code"] == "rate_limit_exceeded"
                assert int(sample.headers["retry-after"]) >= 1
                assert sample.headers["x-ratelimit-limit-requests"] == str(RPM)
                assert sample.headers["x-ratelimit-remaining-requests"] == "0"
                assert ok[0].headers["x-ratelimit-limit-requests"] == str(RPM)

                # A key made on one replica works on another at once.
                made = await client.post(
                    f"{urls[0]}/admin/keys", headers=_auth(ADMIN), json={"name": "fresh"}
                )
                assert made.status_code == 201, made.text
                fresh = made.json()["key"]
                deadline = time.monotonic() + 3
                while True:
                    answer = await _ask(client, urls[2], fresh, 0)
                    if answer.status_code == 200 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.05)
                assert answer.status_code == 200, answer.text
        # The replicas have stopped (their writers flushed): one record per admitted call.
        records = await store.query_usage(UsageQuery(key_id=key.id, limit=1000))
        served = sorted(r.request_id for r in records if r.status == 200)
        assert served == sorted(a.headers["x-request-id"] for a in ok)
        assert sum(r.status == 429 for r in records) == len(refused)
    finally:
        await store.aclose()
        await _drop_schema(schema)
        os.environ.pop("LLM_GATEWAY_CONFIG", None)
