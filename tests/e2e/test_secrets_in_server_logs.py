"""A key sent as ``?token=`` never reaches the server's console log.

uvicorn logs every WebSocket handshake with its query string on ``uvicorn.error`` at INFO
("WebSocket /ws?token=sk-gw-..." [accepted]), whatever ``access_log`` says, and request
lines with their query on ``uvicorn.access``. The gateway installs a redacting filter on
both loggers at start-up (``runtime.apply_logging``), so it works however uvicorn is run.

Two set-ups: uvicorn's own logging config (handlers on stderr, as ``llm-gateway serve``
runs) and no logging config (records propagate to the root logger, caplog). Keys go as
``?token=`` to ``/ws`` and the status feed (accepted and refused: a valid key, a revoked
one, a wrong one, the admin key), and as a query parameter on HTTP requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.api.admin_harness import AdminGateway, admin_gateway

pytestmark = pytest.mark.timeout(60)


async def _use_sockets(gw: AdminGateway, keys: list[str]) -> None:
    base = gw.url.replace("http://", "ws://")
    for path in ("/ws", "/api/llm/ws/status"):
        for key in keys:
            async with connect(f"{base}{path}?token={key}&x=1", open_timeout=5) as ws:
                # /ws says nothing first: a bad frame gets an answer. The feed's first
                # frame is its status. A refused key's first frame is the refusal.
                with contextlib.suppress(ConnectionClosed):
                    await ws.send("{")
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert frame["type"] in ("error", "status")
    # Headers too: at DEBUG the WebSocket library logs every handshake header.
    for key in keys:
        for headers in ({"Authorization": f"Bearer {key}"}, {"x-api-key": key}):
            async with connect(f"{base}/api/llm/ws/status", additional_headers=headers) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] in (
                    "error",
                    "status",
                )


def _exercise(gw: AdminGateway) -> list[str]:
    valid = gw.create_key(name="logged")
    revoked = gw.create_key(name="revoked-one")
    assert gw.admin("DELETE", f"/admin/keys/{revoked['id']}").status_code == 200
    wrong = "sk-gw-" + "Q" * 43
    keys = [valid["key"], revoked["key"], wrong, gw.admin_key]
    asyncio.run(_use_sockets(gw, keys))
    for key in keys:  # a key in an HTTP query string: the access log line
        gw.http.get(gw.url + "/api/llm/providers", params={"token": key})
        gw.http.get(gw.url + f"/api/models?api_key={key}")
    return keys


def _assert_clean(logs: str, keys: list[str]) -> None:
    # The capture is real: the handshakes and the request lines are in it, redacted.
    assert "/ws?[redacted]" in logs, logs[-2000:]
    assert "/api/llm/ws/status?[redacted]" in logs
    assert "/api/llm/providers?[redacted]" in logs
    for key in keys:
        for needle in (key, key[10:]):
            assert needle not in logs, "a key reached the server log"


@pytest.mark.parametrize("level", ["info", "debug"])
def test_tokens_are_redacted_with_uvicorns_logging_config(
    capfd: pytest.CaptureFixture[str], level: str
) -> None:
    # uvicorn's default config: its loggers write to stderr and do not propagate.
    options: dict[str, Any] = {"access_log": True, "log_level": level}
    # An admin key that does not look like one: only where it appears can give it away.
    with admin_gateway(admin_key=f"operator-words-{secrets.token_hex(12)}", **options) as gw:
        keys = _exercise(gw)
    captured = capfd.readouterr()
    logs = captured.out + captured.err
    _assert_clean(logs, keys)
    if level == "debug":  # the handshake headers were logged, with the key redacted
        assert "x-api-key: [redacted]" in logs.lower()


def test_tokens_are_redacted_in_records_reaching_the_root_logger(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    with admin_gateway(access_log=True, log_config=None, log_level="info") as gw:
        keys = _exercise(gw)
    # The test's own clients (httpx, websockets' client side) log the URLs they request.
    client = ("httpx", "httpcore", "websockets.client")
    lines = [f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith(client)]
    # uvicorn's access formatter unpacks the record's arguments: they must still format.
    access = [r for r in caplog.records if r.name == "uvicorn.access"]
    assert access and all(isinstance(r.args, tuple) and len(r.args) == 5 for r in access)
    captured = capfd.readouterr()
    _assert_clean("\n".join(lines) + captured.out + captured.err, keys)
