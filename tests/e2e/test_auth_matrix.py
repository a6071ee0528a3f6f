"""Who may call what: every credential case, its status, and its error shape.

One real gateway (mock provider, admin key, SQLite ledger) on a real socket. The
OpenAI surface answers in OpenAI's error shape (``{"error": {message, type, param,
code}}``), the Anthropic surface (``/v1/messages`` with ``x-api-key``) in Anthropic's
(``{"type": "error", "error": {type, message}}``), the admin API in OpenAI's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.admin_harness import PRICED_MOCK, AdminGateway, admin_gateway

pytestmark = pytest.mark.timeout(60)


class Keys:
    """One key per case, made through the admin API."""

    def __init__(self, gw: AdminGateway) -> None:
        self.valid = gw.create_key(name="valid")["key"]
        revoked = gw.create_key(name="revoked")
        assert gw.admin("DELETE", f"/admin/keys/{revoked['id']}").status_code == 200
        self.revoked = revoked["key"]
        expired = gw.create_key(name="expired")
        patched = gw.admin(
            "PATCH", f"/admin/keys/{expired['id']}", json={"expires_at": time.time() - 5}
        )
        assert patched.json()["status"] == "expired"
        self.expired = expired["key"]
        self.narrow = gw.create_key(name="narrow", allowed_models=["gpt-*", "claude-*"])["key"]
        self.wrong = "sk-gw-" + "Z" * 43
        self.admin = gw.admin_key


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[AdminGateway, Keys]]:
    with admin_gateway(PRICED_MOCK) as gw:
        yield gw, Keys(gw)


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def anthropic_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error", body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"type", "message"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


# (case, key attribute, status, OpenAI type, code, Anthropic type)
REFUSED = [
    ("no key", None, 401, "authentication_error", "missing_api_key", "authentication_error"),
    ("wrong key", "wrong", 401, "authentication_error", "invalid_api_key", "authentication_error"),
    ("revoked", "revoked", 401, "authentication_error", "revoked_api_key", "authentication_error"),
    ("expired", "expired", 401, "authentication_error", "expired_api_key", "authentication_error"),
    (
        "model not allowed",
        "narrow",
        403,
        "permission_error",
        "model_not_allowed",
        "permission_error",
    ),
]


@pytest.mark.parametrize(
    ("case", "attr", "status", "openai_type", "code", "anthropic_type"),
    REFUSED,
    ids=[c[0] for c in REFUSED],
)
def test_refused_on_both_surfaces(
    setup: tuple[AdminGateway, Keys],
    case: str,
    attr: str | None,
    status: int,
    openai_type: str,
    code: str,
    anthropic_type: str,
) -> None:
    gw, keys = setup
    key = getattr(keys, attr) if attr else None

    response = gw.chat(key)
    error = openai_error(response, status)
    assert (error["type"], error["code"]) == (openai_type, code), case
    assert response.headers.get("x-request-id")
    if key is not None:
        assert key not in response.text  # the key is never echoed back

    # Same key through the OpenAI surface's other header.
    if key is not None:
        error = openai_error(gw.chat(key, header="x-api-key"), status)
        assert error["code"] == code

    response = gw.messages(key)
    error = anthropic_error(response, status)
    assert error["type"] == anthropic_type, case
    if key is not None:
        assert key not in response.text


def test_allowed_model_glob_admits(setup: tuple[AdminGateway, Keys]) -> None:
    gw, _ = setup
    key = gw.create_key(name="globbed", allowed_models=["mo*"])["key"]
    assert gw.chat(key).status_code == 200
    assert gw.messages(key).status_code == 200


@pytest.mark.parametrize("attr", ["valid", "admin"])
def test_valid_key_and_admin_key_may_call_models(
    setup: tuple[AdminGateway, Keys], attr: str
) -> None:
    gw, keys = setup
    key = getattr(keys, attr)
    response = gw.chat(key)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("This is a mock")
    assert gw.chat(key, header="x-api-key").status_code == 200
    response = gw.messages(key)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"


@pytest.mark.parametrize("attr", ["valid", "narrow"])
def test_user_keys_on_admin_routes_are_403(setup: tuple[AdminGateway, Keys], attr: str) -> None:
    gw, keys = setup
    key = getattr(keys, attr)
    for method, path in [
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("GET", "/admin/usage"),
        ("DELETE", "/admin/keys/key_whatever"),
    ]:
        response = gw.http.request(
            method, gw.url + path, headers={"authorization": f"Bearer {key}"}, json={"name": "x"}
        )
        error = openai_error(response, 403)
        assert (error["type"], error["code"]) == ("permission_error", "admin_key_required")
        assert key not in response.text


@pytest.mark.parametrize(
    ("attr", "status", "code"),
    [
        (None, 401, "missing_api_key"),
        ("wrong", 401, "invalid_api_key"),
        ("revoked", 401, "revoked_api_key"),
        ("expired", 401, "expired_api_key"),
    ],
)
def test_bad_credentials_on_admin_routes_are_401(
    setup: tuple[AdminGateway, Keys], attr: str | None, status: int, code: str
) -> None:
    gw, keys = setup
    headers = {"authorization": f"Bearer {getattr(keys, attr)}"} if attr else {}
    error = openai_error(gw.http.get(gw.url + "/admin/keys", headers=headers), status)
    assert error["code"] == code


def test_admin_calls_are_budget_free_and_never_spend_a_keys_budget(
    setup: tuple[AdminGateway, Keys],
) -> None:
    gw, _ = setup
    if gw.state.access.spend is None:
        pytest.skip("waits on the lead's wiring of the spend counter (gate.attach_limits)")
    # At $0.10 a token one mock answer costs more than $1: the first call is admitted
    # (nothing spent yet), then the budget is used up.
    spender = gw.create_key(name="spender", budget=1.0)
    assert gw.chat(spender["key"]).status_code == 200
    deadline = time.monotonic() + 5
    while True:  # the spend settles just behind the response
        response = gw.chat(spender["key"])
        if response.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    error = openai_error(response, 402)
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert anthropic_error(gw.messages(spender["key"]), 402)["type"] == "permission_error"

    # The admin key is not held to any key's budget, and its calls count against none.
    other = gw.create_key(name="other", budget=1.0)
    for _ in range(3):
        assert gw.chat(gw.admin_key).status_code == 200
    assert gw.chat(other["key"]).status_code == 200  # its own budget untouched by admin calls
    assert gw.chat(spender["key"]).status_code == 402  # the admin key unlocked nothing

    if gw.state.writer is not None:
        page = gw.wait_for_usage(1, key_id=other["id"])
        assert page["totals"]["requests"] == 1
        spend = gw.admin("GET", f"/admin/keys/{spender['id']}/spend").json()
        before = spend["spend"]
        assert before > 1.0
        for _ in range(2):
            assert gw.chat(gw.admin_key).status_code == 200
        time.sleep(0.3)
        assert gw.admin("GET", f"/admin/keys/{spender['id']}/spend").json()["spend"] == before
