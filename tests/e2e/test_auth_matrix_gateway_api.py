"""Who may call what on the gateway's own API and its WebSockets.

The companion of ``test_auth_matrix.py`` (OpenAI and Anthropic surfaces): every credential
case (none, wrong, revoked, expired, a key restricted to other models, a valid key, the
admin key) against ``POST /api/llm/generate``, ``GET /api/models``, ``GET /v1/models``,
``GET /api/llm/health?check=true``, ``WS /ws`` and ``WS /api/llm/ws/status``; keys revoked
or expired while their WebSocket is open; who sees which ``stats`` on the status feed; and
open mode's refusal of other websites (``Origin``/``Host``). One real gateway (mock
provider, admin key, SQLite ledger) on a real socket, real WebSocket clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from llm_gateway.api.origin import loopback_host, loopback_origin, loopback_request_ok
from tests.api.admin_harness import AdminGateway, admin_gateway
from tests.conftest import MOCK_ONLY, serve_gateway

pytestmark = pytest.mark.timeout(60)

STATUS = "/api/llm/ws/status"
STATUS_INTERVAL = 0.3  # the feed's key re-check runs at least this often


class Keys:
    def __init__(self, gw: AdminGateway) -> None:
        self.valid = gw.create_key(name="valid")["key"]
        revoked = gw.create_key(name="revoked")
        assert gw.admin("DELETE", f"/admin/keys/{revoked['id']}").status_code == 200
        self.revoked = revoked["key"]
        expired = gw.create_key(name="expired")
        gw.admin("PATCH", f"/admin/keys/{expired['id']}", json={"expires_at": time.time() - 5})
        self.expired = expired["key"]
        self.narrow = gw.create_key(name="narrow", allowed_models=["gpt-*"])["key"]
        self.wrong = "sk-gw-" + "Z" * 43
        self.admin = gw.admin_key


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[AdminGateway, Keys]]:
    extra = {"status": {"interval_seconds": STATUS_INTERVAL, "check_on_startup": False}}
    with admin_gateway(extra) as gw:
        yield gw, Keys(gw)


REFUSED = [
    (None, "missing_api_key"),
    ("wrong", "invalid_api_key"),
    ("revoked", "revoked_api_key"),
    ("expired", "expired_api_key"),
]
REFUSED_IDS = [code for _, code in REFUSED]


def auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key is not None else {}


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert {"message", "type", "code"} <= set(error), error
    return error


def ws_base(gw: AdminGateway) -> str:
    return gw.url.replace("http://", "ws://")


async def recv(ws: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    return frame


async def closed_with(ws: ClientConnection, within: float = 5.0) -> int | None:
    """Reads until the server closes; the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def chat_frame(request_id: str, model: str = "mock") -> str:
    data = {"messages": [{"role": "user", "content": "hi"}], "modelId": model}
    return json.dumps({"action": "llm/chat", "requestId": request_id, "data": data})


# --- HTTP ------------------------------------------------------------------------------


@pytest.mark.parametrize(("attr", "code"), REFUSED, ids=REFUSED_IDS)
def test_refused_keys_on_the_gateway_http_api(
    setup: tuple[AdminGateway, Keys], attr: str | None, code: str
) -> None:
    gw, keys = setup
    key = getattr(keys, attr) if attr else None
    calls = [
        ("POST", "/api/llm/generate", {"prompt": "hi", "model": "mock"}),
        ("GET", "/api/models", None),
        ("GET", "/api/llm/providers", None),
        ("GET", "/api/llm/health", None),
    ]
    for method, path, body in calls:
        response = gw.http.request(method, gw.url + path, json=body, headers=auth(key))
        error = openai_error(response, 401)
        assert (error["type"], error["code"]) == ("authentication_error", code), path
        if key is not None:
            assert key not in response.text


@pytest.mark.parametrize("attr", ["valid", "admin"])
def test_valid_and_admin_keys_generate_and_list(
    setup: tuple[AdminGateway, Keys], attr: str
) -> None:
    gw, keys = setup
    headers = auth(getattr(keys, attr))
    body = {"prompt": "hi", "model": "mock"}
    generated = gw.http.post(gw.url + "/api/llm/generate", json=body, headers=headers)
    assert generated.status_code == 200, generated.text
    assert generated.json()["text"].startswith("This is a mock")
    listed = gw.http.get(gw.url + "/api/models", headers=headers)
    assert "mock" in [m["id"] for m in listed.json()["data"]]


def test_a_restricted_key_is_refused_other_models_and_does_not_see_them(
    setup: tuple[AdminGateway, Keys],
) -> None:
    gw, keys = setup
    headers = auth(keys.narrow)
    response = gw.http.post(
        gw.url + "/api/llm/generate", json={"prompt": "hi", "model": "mock"}, headers=headers
    )
    error = openai_error(response, 403)
    assert (error["type"], error["code"]) == ("permission_error", "model_not_allowed")
    listed = gw.http.get(gw.url + "/api/models", headers=headers).json()["data"]
    assert all(m["id"].startswith("gpt-") for m in listed)


def test_v1_models_needs_a_key_and_honours_the_allow_list(
    setup: tuple[AdminGateway, Keys],
) -> None:
    gw, keys = setup
    if gw.http.get(gw.url + "/v1/models").status_code == 200:
        pytest.skip("waits on the lead's wiring: models_routes(state.catalog, state.gate)")
    for attr, code in REFUSED:
        key = getattr(keys, attr) if attr else None
        for path in ("/v1/models", "/v1/models/mock"):
            error = openai_error(gw.http.get(gw.url + path, headers=auth(key)), 401)
            assert error["code"] == code, path
    for attr in ("valid", "admin"):
        listed = gw.http.get(gw.url + "/v1/models", headers=auth(getattr(keys, attr))).json()
        assert "mock" in [m["id"] for m in listed["data"]]
        one = gw.http.get(gw.url + "/v1/models/mock", headers=auth(getattr(keys, attr)))
        assert one.status_code == 200 and one.json()["id"] == "mock"
    narrow = auth(keys.narrow)
    listed = gw.http.get(gw.url + "/v1/models", headers=narrow).json()["data"]
    assert all(m["id"].startswith("gpt-") for m in listed)
    hidden = gw.http.get(gw.url + "/v1/models/mock", headers=narrow)
    assert openai_error(hidden, 404)["code"] == "model_not_found"


def test_live_health_checks_need_the_admin_key(setup: tuple[AdminGateway, Keys]) -> None:
    gw, keys = setup
    params = {"check": "true", "provider": "mock"}
    for attr in ("valid", "narrow"):
        response = gw.http.get(
            gw.url + "/api/llm/health", params=params, headers=auth(getattr(keys, attr))
        )
        assert openai_error(response, 403)["code"] == "admin_key_required"
        plain = gw.http.get(gw.url + "/api/llm/health", headers=auth(getattr(keys, attr)))
        assert plain.status_code == 200 and plain.json()["checks"] is None
    checked = gw.http.get(gw.url + "/api/llm/health", params=params, headers=auth(keys.admin))
    assert checked.status_code == 200
    assert [c["ok"] for c in checked.json()["checks"]] == [True]


# --- WebSockets: connect ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws", STATUS])
@pytest.mark.parametrize(("attr", "code"), REFUSED, ids=REFUSED_IDS)
async def test_refused_keys_get_an_error_frame_then_1008(
    setup: tuple[AdminGateway, Keys], path: str, attr: str | None, code: str
) -> None:
    gw, keys = setup
    key = getattr(keys, attr) if attr else None
    for how in ("query", "header"):
        if key is None and how == "header":
            continue
        url = ws_base(gw) + path + (f"?token={key}" if key and how == "query" else "")
        headers = auth(key) if how == "header" else {}
        async with connect(url, additional_headers=headers, open_timeout=5) as ws:
            error = await recv(ws)
            assert error["type"] == "error", error
            assert (error["error"]["type"], error["error"]["code"]) == (
                "authentication_error",
                code,
            )
            assert await closed_with(ws) == 1008


@pytest.mark.parametrize("attr", ["valid", "admin"])
async def test_valid_keys_chat_and_watch_the_feed(
    setup: tuple[AdminGateway, Keys], attr: str
) -> None:
    gw, keys = setup
    key = getattr(keys, attr)
    async with connect(f"{ws_base(gw)}/ws?token={key}", open_timeout=5) as ws:
        await ws.send(chat_frame("a-1"))
        reply = await recv(ws)
        assert (reply["type"], reply["requestId"]) == ("response", "a-1")
    async with connect(f"{ws_base(gw)}{STATUS}", additional_headers=auth(key)) as ws:
        first = await recv(ws)
        assert first["type"] == "status" and first["seq"] == 0


async def test_a_restricted_key_on_ws_is_refused_the_model_and_keeps_its_connection(
    setup: tuple[AdminGateway, Keys],
) -> None:
    gw, keys = setup
    async with connect(f"{ws_base(gw)}/ws?token={keys.narrow}", open_timeout=5) as ws:
        await ws.send(chat_frame("n-1"))
        error = await recv(ws)
        assert (error["type"], error["requestId"]) == ("error", "n-1")
        assert error["error"]["code"] == "model_not_allowed"
        await ws.send("{")  # the connection still serves
        assert (await recv(ws))["error"]["code"] == "invalid_json"


# --- WebSockets: keys changing while connected -----------------------------------------


@pytest.mark.parametrize("change", ["revoke", "expire", "restrict-then-revoke"])
async def test_ws_rechecks_the_key_before_each_request(
    setup: tuple[AdminGateway, Keys], change: str
) -> None:
    gw, _ = setup
    created = gw.create_key(name=f"ws-{change}")
    async with connect(f"{ws_base(gw)}/ws?token={created['key']}", open_timeout=5) as ws:
        await ws.send(chat_frame("before"))
        assert (await recv(ws))["type"] == "response"
        if change == "restrict-then-revoke":
            # An allow-list change applies to the open connection's next request.
            patched = gw.admin(
                "PATCH", f"/admin/keys/{created['id']}", json={"allowed_models": ["gpt-*"]}
            )
            assert patched.status_code == 200
            await ws.send(chat_frame("restricted"))
            assert (await recv(ws))["error"]["code"] == "model_not_allowed"
            assert gw.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 200
            code = "revoked_api_key"
        elif change == "revoke":
            assert gw.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 200
            code = "revoked_api_key"
        else:
            body = {"expires_at": time.time() - 1}
            assert gw.admin("PATCH", f"/admin/keys/{created['id']}", json=body).status_code == 200
            code = "expired_api_key"
        await ws.send(chat_frame("after"))
        error = await recv(ws)
        assert (error["type"], error["requestId"], error["error"]["code"]) == (
            "error",
            "after",
            code,
        )
        assert await closed_with(ws) == 1008


@pytest.mark.parametrize("change", ["revoke", "expire"])
async def test_status_feed_closes_once_its_key_is_revoked_or_expired(
    setup: tuple[AdminGateway, Keys], change: str
) -> None:
    gw, _ = setup
    created = gw.create_key(name=f"feed-{change}")
    async with connect(f"{ws_base(gw)}{STATUS}?token={created['key']}", open_timeout=5) as ws:
        assert (await recv(ws))["type"] == "status"
        if change == "revoke":
            assert gw.admin("DELETE", f"/admin/keys/{created['id']}").status_code == 200
        else:
            body = {"expires_at": time.time() - 1}
            gw.admin("PATCH", f"/admin/keys/{created['id']}", json=body)
        changed = time.monotonic()
        async with asyncio.timeout(5):
            while (frame := await recv(ws))["type"] != "error":
                pass
        assert frame["error"]["code"] == f"{change}d_api_key"
        assert await closed_with(ws) == 1008
        assert time.monotonic() - changed < STATUS_INTERVAL + 1.0


# --- the status feed: who sees which stats ---------------------------------------------


async def next_stats(ws: ClientConnection, within: float) -> dict[str, Any] | None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while (frame := await recv(ws, within))["type"] != "stats":
                pass
            return frame
    return None


async def test_a_key_sees_only_its_own_stats_the_admin_sees_all(
    setup: tuple[AdminGateway, Keys],
) -> None:
    gw, keys = setup
    alice, bob = gw.create_key(name="alice"), gw.create_key(name="bob")
    base = ws_base(gw) + STATUS
    async with (
        connect(f"{base}?token={alice['key']}") as alice_feed,
        connect(f"{base}?token={bob['key']}") as bob_feed,
        connect(f"{base}?token={keys.admin}") as admin_feed,
    ):
        for feed in (alice_feed, bob_feed, admin_feed):
            assert (await recv(feed))["type"] == "status"
        body = {"model": "mock", "messages": [{"role": "user", "content": "private"}]}
        headers = {**auth(alice["key"]), "x-request-id": "alice-secret-request"}
        reply = gw.http.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
        assert reply.status_code == 200
        seen_by_admin = await next_stats(admin_feed, 3.0)
        seen_by_alice = await next_stats(alice_feed, 3.0)
        assert seen_by_admin is not None and seen_by_alice is not None
        assert seen_by_admin["request_id"] == seen_by_alice["request_id"]
        assert seen_by_alice["request_id"] == "alice-secret-request"
        assert await next_stats(bob_feed, 0.6) is None  # nothing of alice's reached bob
        # Bob's feed works: his own request shows up, numbered without gaps.
        headers = {**auth(bob["key"]), "x-request-id": "bob-request"}
        assert gw.http.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
        mine = await next_stats(bob_feed, 3.0)
        assert mine is not None and mine["request_id"] == "bob-request"


# --- open mode: other websites -------------------------------------------------------------


@pytest.fixture(scope="module")
def open_gateway() -> Iterator[str]:
    with serve_gateway(MOCK_ONLY) as server:
        yield f"ws://127.0.0.1:{server.port}"


@contextlib.asynccontextmanager
async def ws_with(url: str, headers: dict[str, str]) -> AsyncIterator[ClientConnection]:
    async with connect(url, additional_headers=headers, open_timeout=5) as ws:
        yield ws


@pytest.mark.parametrize("path", ["/ws", STATUS])
@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://localhost.evil.example", "null", "http://10.0.0.5:8000"],
)
async def test_open_mode_refuses_other_websites(open_gateway: str, path: str, origin: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_with(open_gateway + path, {"Origin": origin}):
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("path", ["/ws", STATUS])
@pytest.mark.parametrize(
    "origin", ["http://localhost:5173", "http://127.0.0.1", "http://[::1]:3000"]
)
async def test_open_mode_serves_local_pages(open_gateway: str, path: str, origin: str) -> None:
    async with ws_with(open_gateway + path, {"Origin": origin}) as ws:
        await ws.send("{")
        frame = await recv(ws)
        assert frame["type"] in ("status", "error")


async def test_open_mode_refuses_a_rebound_host_name(open_gateway: str) -> None:
    # DNS rebinding: the page's own (attacker's) name arrives as the Host header.
    with pytest.raises(InvalidStatus) as refused:
        async with ws_with(open_gateway + "/ws", {"Host": "rebind.evil.example:8000"}):
            pass
    assert refused.value.response.status_code == 403


def test_loopback_rules() -> None:
    for host in (
        "localhost",
        "127.0.0.1",
        "127.1.2.3",
        "[::1]",
        "::1",
        "app.localhost",
        "LOCALHOST.",
    ):
        assert loopback_host(host.lower()), host
    for host in ("evil.example", "localhost.evil.example", "10.0.0.1", "127.0.0.1.nip.io", ""):
        assert not loopback_host(host), host
    assert loopback_origin("http://localhost:8000") and loopback_origin("https://[::1]")
    assert not loopback_origin("null") and not loopback_origin("file://")
    assert not loopback_origin("chrome-extension://abc")

    def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"type": "http", "headers": list(headers)}

    assert loopback_request_ok(scope((b"host", b"127.0.0.1:8000")))
    assert loopback_request_ok(scope())  # no Host (HTTP/1.0, raw ASGI): nothing to judge
    assert not loopback_request_ok(scope((b"host", b"evil.example")))
    assert not loopback_request_ok(
        scope((b"host", b"localhost:8000"), (b"origin", b"https://evil.example"))
    )
