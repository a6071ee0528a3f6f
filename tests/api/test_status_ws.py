"""WS /api/llm/ws/status over real sockets with a real WebSocket client (``websockets``)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from llm_gateway.app import GatewayApp, create_app
from llm_gateway.config.schema import GatewayConfig
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import ErrorSpec, Scenario
from tests.fakes.server import RunningServer, run_server

pytestmark = pytest.mark.timeout(60)

PATH = "/api/llm/ws/status"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@contextmanager
def gateway(config: dict[str, Any]) -> Iterator[tuple[RunningServer, GatewayApp]]:
    app = create_app(GatewayConfig.model_validate({"storage": {"url": "memory://"}, **config}))
    with run_server(app, lifespan="on", http="httptools", loop="uvloop") as server:
        yield server, app


def ws_url(server: RunningServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}{PATH}{query}"


def upstream_config(url: str, *, interval: float = 30.0, **status: Any) -> dict[str, Any]:
    return {
        "providers": {
            "up": {"type": "openai_compatible", "base_url": f"{url}/v1"},
            "mock": {"type": "mock", "chunk_delay_ms": 0},
            "off": {"type": "openai"},  # no key: NOT_CONFIGURED
        },
        "models": {
            "m": {"routes": ["up/x"], "retries": {"attempts": 1}},
            "mock": {"routes": ["mock/mock-1"]},
        },
        "status": {"interval_seconds": interval, "check_on_startup": False, **status},
    }


async def recv(ws: ClientConnection, within: float = 2.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    return frame


async def next_of(ws: ClientConnection, kind: str, within: float = 2.0) -> dict[str, Any]:
    """The next frame of ``kind``, skipping others, within ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            frame = await recv(ws, within)
            if frame["type"] == kind:
                return frame


async def test_status_on_connect() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    with run_server(upstream) as fake, gateway(upstream_config(fake.url)) as (gw, _):
        async with connect(ws_url(gw)) as ws:
            first = await recv(ws)
            assert first["type"] == "status" and first["status"] == "healthy"
            assert isinstance(first["ts"], float) and isinstance(first["seq"], int)
            providers = {p["name"]: p for p in first["providers"]}
            assert {n: p["state"] for n, p in providers.items()} == {
                "up": "HEALTHY",
                "mock": "HEALTHY",
                "off": "NOT_CONFIGURED",
            }
            assert providers["off"]["error"]["code"] == "not_configured"
            assert providers["up"]["type"] == "openai_compatible"
            assert set(providers["up"]["latency"]) == {
                "p50_ms",
                "p95_ms",
                "last_check_ms",
                "samples",
            }
            # The client may ask again, and ping.
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}
            await ws.send(json.dumps({"type": "status"}))
            assert (await recv(ws))["type"] == "status"
            await ws.send("not json")
            error = await recv(ws)
            assert error["type"] == "error" and error["error"]["code"] == "invalid_json"


async def test_periodic_status_with_a_short_interval() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    config = upstream_config("http://127.0.0.1:9", interval=0.2)
    with run_server(upstream), gateway(config) as (gw, _):
        async with connect(ws_url(gw)) as ws:
            initial = await recv(ws)
            stamps = []
            for _ in range(3):
                frame = await next_of(ws, "status", within=1.0)
                stamps.append(frame["ts"])
                assert len(frame["providers"]) == 3
            gaps = [b - a for a, b in zip([initial["ts"], *stamps], stamps, strict=False)]
            assert all(0.1 <= gap <= 0.6 for gap in gaps[1:]), gaps


async def test_push_on_provider_state_change_then_recovery() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    with run_server(upstream) as fake, gateway(upstream_config(fake.url)) as (gw, _):
        async with connect(ws_url(gw)) as ws, httpx.AsyncClient(base_url=gw.url) as http:
            await recv(ws)
            # Three failures in a row (one is not enough: hysteresis), then two successes.
            upstream.queue(*[Scenario(error=ErrorSpec("server", "upstream exploded"))] * 3)
            for _ in range(3):
                failed = await http.post("/v1/chat/completions", json=CHAT)
                assert failed.status_code == 502
            answered = time.monotonic()
            change = await next_of(ws, "provider_state", within=1.0)
            assert time.monotonic() - answered < 1.0
            assert change["provider"] == "up"
            assert (change["state"], change["previous"]) == ("UNHEALTHY", "HEALTHY")
            assert change["error"]["status"] == 500
            assert "upstream exploded" in change["error"]["message"]
            assert change["status"] == "degraded"  # mock is still healthy
            for _ in range(2):
                ok = await http.post("/v1/chat/completions", json=CHAT)
                assert ok.status_code == 200
            answered = time.monotonic()
            change = await next_of(ws, "provider_state", within=1.0)
            assert time.monotonic() - answered < 1.0
            assert (change["state"], change["previous"], change["error"]) == (
                "HEALTHY",
                "UNHEALTHY",
                None,
            )


async def test_stats_frame_after_a_chat_request_without_prompt_text() -> None:
    secret = "the-prompt-must-never-leak-4711"
    config = upstream_config("http://127.0.0.1:9")
    with gateway(config) as (gw, _):
        async with connect(ws_url(gw)) as ws, httpx.AsyncClient(base_url=gw.url) as http:
            await recv(ws)
            reply = await http.post(
                "/v1/chat/completions",
                json={"model": "mock", "messages": [{"role": "user", "content": secret}]},
                headers={"x-request-id": "stats-req-1"},
            )
            assert reply.status_code == 200 and secret in reply.text  # the mock echoes it
            raw = await asyncio.wait_for(ws.recv(), 2.0)
            assert secret not in str(raw)
            stats = json.loads(raw)
            assert stats["type"] == "stats" and stats["request_id"] == "stats-req-1"
            assert (stats["model"], stats["provider"], stats["route_model"]) == (
                "mock",
                "mock",
                "mock-1",
            )
            usage = reply.json()["usage"]
            assert stats["prompt_tokens"] == usage["prompt_tokens"]
            assert stats["completion_tokens"] == usage["completion_tokens"]
            assert stats["total_tokens"] == usage["total_tokens"]
            assert stats["status"] == 200 and stats["latency_ms"] > 0
            assert stats["tokens_per_second"] > 0


async def test_hundred_clients_all_receive_every_broadcast() -> None:
    config = upstream_config("http://127.0.0.1:9")
    with gateway(config) as (gw, app):
        clients = await asyncio.gather(*(connect(ws_url(gw)) for _ in range(100)))
        try:
            initial = await asyncio.gather(*(recv(ws, 5.0) for ws in clients))
            assert all(f["type"] == "status" for f in initial)
            assert len(app.state.hub) == 100
            async with httpx.AsyncClient(base_url=gw.url) as http:
                ids = [f"burst-{i}" for i in range(20)]
                for rid in ids:
                    body = {"model": "mock", "messages": [{"role": "user", "content": "x"}]}
                    reply = await http.post(
                        "/v1/chat/completions", json=body, headers={"x-request-id": rid}
                    )
                    assert reply.status_code == 200

            async def collect(ws: ClientConnection) -> list[dict[str, Any]]:
                return [await recv(ws, 5.0) for _ in range(len(ids))]

            got = await asyncio.gather(*(collect(ws) for ws in clients))
            for frames, first in zip(got, initial, strict=True):
                assert [f["request_id"] for f in frames] == ids
                assert [f["seq"] for f in frames] == list(
                    range(first["seq"] + 1, first["seq"] + 1 + len(ids))
                )
        finally:
            await asyncio.gather(*(ws.close() for ws in clients))


def _small_buffer_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_slow_client_is_dropped_while_others_keep_receiving() -> None:
    config = upstream_config("http://127.0.0.1:9")
    with gateway(config) as (gw, app):
        hub = app.state.hub
        hub.queue_size = 16
        # The hub lives on the server's event loop (another thread): broadcast there.
        assert hub._task is not None
        server_loop = hub._task.get_loop()
        # The slow client stops reading at once: websockets pauses the transport when its
        # frame buffer holds one frame, and the kernel buffer is small.
        # No compression: the padding must cost its real size on the wire.
        slow = await connect(
            ws_url(gw), sock=_small_buffer_socket(gw.port), max_queue=1, compression=None
        )
        good = [await connect(ws_url(gw), compression=None) for _ in range(2)]
        for ws in good:
            await recv(ws)
        assert len(hub) == 3
        # Paced rounds (the good clients read each round before the next) until the slow
        # one's queue overflows, then a few more rounds to show the rest are unaffected.
        pad, batch, sent, after_drop = "x" * 64_000, 8, 0, 0
        received: list[list[int]] = [[], []]
        started = time.monotonic()
        while after_drop < 5:
            assert sent < 2000, "the slow client was never dropped"
            for _ in range(batch):
                frame = {"type": "test", "n": sent, "pad": pad}
                server_loop.call_soon_threadsafe(hub.broadcast, frame)
                sent += 1
            for ws, seen_by in zip(good, received, strict=True):
                seen_by.extend([(await recv(ws, 10.0))["n"] for _ in range(batch)])
            if hub.dropped_total:
                after_drop += 1
        assert received == [list(range(sent))] * 2
        assert time.monotonic() - started < 30
        assert hub.dropped_total == 1 and len(hub) == 2
        count = sent
        # The slow client gets what was already in flight, then the connection ends.
        seen = 0
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(15):
                while True:
                    await slow.recv()
                    seen += 1
        assert seen < count
        for ws in good:
            await ws.close()


async def test_connect_needs_a_key_when_keys_exist() -> None:
    config = upstream_config("http://127.0.0.1:9")
    config["auth"] = {"admin_key": "admin-secret-key-123"}
    with gateway(config) as (gw, _):
        async with connect(ws_url(gw)) as ws:
            error = await recv(ws)
            assert error["type"] == "error"
            assert error["error"]["code"] == "missing_api_key"
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with connect(ws_url(gw, "?token=admin-secret-key-123")) as ws:
            assert (await recv(ws))["type"] == "status"
        headers = {"Authorization": "Bearer admin-secret-key-123"}
        async with connect(ws_url(gw), additional_headers=headers) as ws:
            assert (await recv(ws))["type"] == "status"


async def test_bad_client_frames_get_errors_then_a_close() -> None:
    config = upstream_config("http://127.0.0.1:9")
    with gateway(config) as (gw, _):
        async with connect(ws_url(gw)) as ws:
            await recv(ws)
            await ws.send(b"\x00binary")
            assert (await recv(ws))["error"]["code"] == "binary_frame"
            await ws.send(json.dumps({"type": "subscribe"}))
            assert (await recv(ws))["error"]["code"] == "unknown_type"
            await ws.send(json.dumps([1, 2]))
            assert (await recv(ws))["error"]["code"] == "unknown_type"
            for _ in range(7):
                await ws.send("{")
                assert (await recv(ws))["error"]["code"] == "invalid_json"
            assert (await recv(ws))["error"]["code"] == "too_many_errors"
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with connect(ws_url(gw)) as ws:
            await recv(ws)
            await ws.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
            assert (await recv(ws))["error"]["code"] == "message_too_large"
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
