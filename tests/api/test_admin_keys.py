"""``/admin/keys`` over a real socket: create, list, read, change, revoke, spend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from llm_gateway.core.records import UsageRecord
from llm_gateway.gate.gate import period_id
from llm_gateway.storage.memory import MemoryStorage
from tests.api.admin_harness import AdminGateway, admin_gateway

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest) -> Iterator[AdminGateway]:
    with admin_gateway(backend=request.param) as gateway:
        yield gateway


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The OpenAI error object of a response that must have failed with ``status``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    return error


def test_create_shows_the_secret_once_and_never_the_hash(gw: AdminGateway) -> None:
    before = time.time()
    created = gw.create_key(
        name="checkout",
        owner="alice",
        team="payments",
        allowed_models=["mock*"],
        rpm=60,
        tpm=1000,
        budget=5.0,
        budget_period="monthly",
        metadata={"env": "prod", "n": 3},
        expires_in_days=2,
    )
    secret = created["key"]
    assert secret.startswith("sk-gw-") and len(secret) > 40
    assert created["prefix"] == secret[:10]
    assert created["status"] == "active"
    assert "key_hash" not in created
    fields = {k: created[k] for k in ("name", "owner", "team", "allowed_models", "rpm", "tpm")}
    assert fields == {
        "name": "checkout",
        "owner": "alice",
        "team": "payments",
        "allowed_models": ["mock*"],
        "rpm": 60,
        "tpm": 1000,
    }
    assert (created["budget"], created["budget_period"]) == (5.0, "monthly")
    assert created["metadata"] == {"env": "prod", "n": 3}
    expires = _epoch(created["expires_at"])
    assert before + 2 * 86400 - 5 < expires < time.time() + 2 * 86400 + 5

    # Read back: the record, without the secret.
    shown = gw.admin("GET", f"/admin/keys/{created['id']}")
    assert shown.status_code == 200
    assert "key" not in shown.json()
    assert secret not in shown.text
    listing = gw.admin("GET", "/admin/keys")
    assert listing.status_code == 200
    assert secret not in listing.text
    assert "key_hash" not in listing.text
    mine = [k for k in listing.json()["data"] if k["id"] == created["id"]]
    assert len(mine) == 1 and mine[0]["prefix"] == secret[:10]


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_expires_at_accepts_iso_and_epoch(gw: AdminGateway) -> None:
    future = time.time() + 3600
    by_epoch = gw.create_key(name="e1", expires_at=future)
    assert abs(_epoch(by_epoch["expires_at"]) - future) < 0.01
    by_iso = gw.create_key(name="e2", expires_at="2999-01-02T03:04:05Z")
    assert by_iso["expires_at"].startswith("2999-01-02T03:04:05")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "rpm": 0}, "rpm"),
        ({"name": "x", "tpm": "many"}, "tpm"),
        ({"name": "x", "budget": -1}, "budget"),
        ({"name": "x", "budget_period": "weekly"}, "budget_period"),
        ({"name": "x", "allowed_models": [""]}, "allowed_models"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "expires_at": "soon"}, "expires_at"),
        ({"name": "x", "expires_at": 10.0}, "expires_at"),  # in the past
        ({"name": "x", "expires_in_days": 1, "expires_at": 4102444800}, "expires_in_days"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    gw: AdminGateway, body: dict[str, Any], param: str
) -> None:
    error = error_of(gw.admin("POST", "/admin/keys", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] is not None and param in error["param"]
    assert param in error["message"]


def test_unknown_key_is_a_404_in_the_error_shape(gw: AdminGateway) -> None:
    for method, path in [
        ("GET", "/admin/keys/key_nope"),
        ("PATCH", "/admin/keys/key_nope"),
        ("DELETE", "/admin/keys/key_nope"),
        ("GET", "/admin/keys/key_nope/spend"),
    ]:
        kwargs: dict[str, Any] = {"json": {"rpm": 5}} if method == "PATCH" else {}
        error = error_of(gw.admin(method, path, **kwargs), 404)
        assert error["code"] == "key_not_found"
        assert "key_nope" in error["message"]


def test_patch_changes_only_what_was_sent_and_null_clears(gw: AdminGateway) -> None:
    key = gw.create_key(name="p", rpm=10, tpm=100, budget=1.0, metadata={"a": "1"})
    changed = gw.admin(
        "PATCH",
        f"/admin/keys/{key['id']}",
        json={"rpm": None, "budget": 2.5, "allowed_models": ["m-*"], "name": "renamed"},
    )
    assert changed.status_code == 200, changed.text
    view = changed.json()
    assert (view["rpm"], view["tpm"], view["budget"]) == (None, 100, 2.5)
    assert view["allowed_models"] == ["m-*"]
    assert view["metadata"] == {"a": "1"}
    assert view["name"] == "renamed"
    assert view["prefix"] == key["prefix"] and view["created_at"] == key["created_at"]
    assert gw.admin("GET", f"/admin/keys/{key['id']}").json() == view

    error = error_of(gw.admin("PATCH", f"/admin/keys/{key['id']}", json={"name": None}), 400)
    assert error["param"] == "name"
    error = error_of(gw.admin("PATCH", f"/admin/keys/{key['id']}", json={"rpm": -3}), 400)
    assert "rpm" in (error["param"] or "")


def test_status_follows_expiry_and_revocation(gw: AdminGateway) -> None:
    key = gw.create_key(name="s")
    past = gw.admin("PATCH", f"/admin/keys/{key['id']}", json={"expires_at": time.time() - 1})
    assert past.json()["status"] == "expired"
    cleared = gw.admin("PATCH", f"/admin/keys/{key['id']}", json={"expires_at": None})
    assert cleared.json()["status"] == "active"

    revoked = gw.admin("DELETE", f"/admin/keys/{key['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    first = revoked.json()["revoked_at"]
    again = gw.admin("DELETE", f"/admin/keys/{key['id']}")  # idempotent; first time stands
    assert again.status_code == 200 and again.json()["revoked_at"] == first
    listed = {k["id"]: k for k in gw.admin("GET", "/admin/keys").json()["data"]}
    assert listed[key["id"]]["status"] == "revoked"


def test_spend_sums_the_ledger_since_the_period_start(gw: AdminGateway) -> None:
    key = gw.create_key(name="spender", budget=10.0, budget_period="monthly")
    now = time.time()
    _, start = period_id("monthly", now)
    records = [
        UsageRecord(
            request_id=f"spend-{key['id']}-{i}",
            created_at=at,
            endpoint="chat.completions",
            model="mock",
            key_id=key["id"],
            cost=cost,
        )
        for i, (at, cost) in enumerate([(now - 1, 1.25), (now - 2, 0.5), (start - 10, 100.0)])
    ]
    gw.run(gw.storage.insert_usage(records))
    spend = gw.admin("GET", f"/admin/keys/{key['id']}/spend")
    assert spend.status_code == 200, spend.text
    body = spend.json()
    assert body["key_id"] == key["id"]
    assert body["budget_period"] == "monthly"
    assert body["period"] == period_id("monthly", now)[0]
    assert abs(_epoch(body["period_start"]) - start) < 1e-3
    assert body["spend"] == pytest.approx(1.75)
    assert body["remaining"] == pytest.approx(8.25)

    unbudgeted = gw.create_key(name="free")
    body = gw.admin("GET", f"/admin/keys/{unbudgeted['id']}/spend").json()
    assert (body["spend"], body["budget"], body["remaining"], body["period"]) == (
        0.0,
        None,
        None,
        "total",
    )


def test_admin_routes_need_the_admin_key(gw: AdminGateway) -> None:
    user = gw.create_key(name="user")["key"]
    for headers, status, code in [
        ({}, 401, "missing_api_key"),
        ({"authorization": "Bearer sk-gw-not-a-real-key"}, 401, "invalid_api_key"),
        ({"authorization": f"Bearer {user}"}, 403, "admin_key_required"),
        ({"x-api-key": user}, 403, "admin_key_required"),
    ]:
        for method, path in [("GET", "/admin/keys"), ("POST", "/admin/keys")]:
            response = gw.http.request(method, gw.url + path, headers=headers, json={"name": "x"})
            error = error_of(response, status)
            assert error["code"] == code
            assert user not in response.text


def test_storage_outage_is_a_503_and_keys_keep_working(gw: AdminGateway) -> None:
    key = gw.create_key(name="outage")
    # Swap in a store that is down (the SQL backends' outages are the storage tests' job):
    # the admin API must answer 503 in the error shape, the hot path must not care.
    access = gw.state.access
    real = access.storage
    down = MemoryStorage()
    down.available = False
    access.storage = down
    try:
        error = error_of(gw.admin("GET", "/admin/keys"), 503)
        assert error["code"] == "storage_unavailable"
        assert error["type"] == "api_error"
        error_of(gw.admin("POST", "/admin/keys", json={"name": "x"}), 503)
        error_of(gw.admin("DELETE", f"/admin/keys/{key['id']}"), 503)
        error_of(gw.admin("GET", "/admin/usage"), 503)
        # The hot path reads the key snapshot, not the database.
        assert gw.chat(key["key"]).status_code == 200
    finally:
        access.storage = real
    assert gw.admin("GET", f"/admin/keys/{key['id']}").json()["status"] == "active"


def test_openapi_documents_the_admin_routes_with_examples(gw: AdminGateway) -> None:
    doc = gw.http.get(gw.url + "/openapi.json").json()
    for path in ["/admin/keys", "/admin/keys/{key_id}", "/admin/keys/{key_id}/spend"]:
        assert path in doc["paths"], path
    assert "/admin/usage" in doc["paths"]
    create = doc["components"]["schemas"]["KeyCreate"]
    assert create["examples"][0]["name"] == "checkout-service"
    assert "key" in doc["components"]["schemas"]["KeyCreated"]["properties"]
    assert "key_hash" not in str(doc["components"]["schemas"]["KeyView"])


def test_a_secret_where_an_id_belongs_is_refused_without_echo(gw: AdminGateway) -> None:
    key = gw.create_key(name="pasted")
    secret = key["key"]
    for method, path in [
        ("GET", f"/admin/keys/{secret}"),
        ("PATCH", f"/admin/keys/{secret}"),
        ("DELETE", f"/admin/keys/{secret}"),
        ("GET", f"/admin/keys/{secret}/spend"),
    ]:
        kwargs: dict[str, Any] = {"json": {"rpm": 5}} if method == "PATCH" else {}
        response = gw.admin(method, path, **kwargs)
        error = error_of(response, 400)
        assert (error["param"], error["code"]) == ("id", "secret_instead_of_id")
        assert secret[10:] not in response.text
    # Nothing was changed by the refused calls.
    assert gw.admin("GET", f"/admin/keys/{key['id']}").json()["status"] == "active"


def test_create_use_change_revoke_takes_effect_at_once(gw: AdminGateway) -> None:
    key = gw.create_key(name="flow")
    assert gw.chat(key["key"]).status_code == 200
    narrowed = gw.admin("PATCH", f"/admin/keys/{key['id']}", json={"allowed_models": ["gpt-*"]})
    assert narrowed.status_code == 200
    assert error_of(gw.chat(key["key"]), 403)["code"] == "model_not_allowed"
    gw.admin("PATCH", f"/admin/keys/{key['id']}", json={"allowed_models": []})
    assert gw.chat(key["key"]).status_code == 200
    assert gw.admin("DELETE", f"/admin/keys/{key['id']}").status_code == 200
    assert error_of(gw.chat(key["key"]), 401)["code"] == "revoked_api_key"


def test_open_mode_refuses_to_create_the_first_key() -> None:
    # No admin key and no keys: anyone local may call, admin API included; but the first
    # key would end open mode with nobody able to manage keys, so it is refused.
    with admin_gateway({"auth": {}}) as gw:
        assert gw.state.gate.open_mode
        assert gw.http.get(gw.url + "/admin/keys").json() == {"object": "list", "data": []}
        response = gw.http.post(gw.url + "/admin/keys", json={"name": "first"})
        error = error_of(response, 409)
        assert error["code"] == "admin_key_not_configured"
        assert "auth.admin_key" in error["message"]
        assert gw.http.get(gw.url + "/admin/keys").json()["data"] == []
        assert gw.chat(None).status_code == 200
