"""Admin input bounds: values the gateway cannot represent are a 400 naming the field,
refused before anything is stored; a stored out-of-range time cannot break the listing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from llm_gateway.gate.keys import mint_key
from tests.api.admin_harness import AdminGateway, admin_gateway

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest) -> Iterator[AdminGateway]:
    with admin_gateway(backend=request.param) as gateway:
        yield gateway


def _ids(gw: AdminGateway) -> set[str]:
    listing = gw.admin("GET", "/admin/keys")
    assert listing.status_code == 200, listing.text
    return {k["id"] for k in listing.json()["data"]}


def _names(gw: AdminGateway) -> list[str]:
    return [k["name"] for k in gw.admin("GET", "/admin/keys").json()["data"]]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"expires_in_days": 4_000_000}, "expires_in_days"),  # the review's repro
        ({"expires_in_days": 36_501}, "expires_in_days"),
        ({"expires_in_days": "inf"}, "expires_in_days"),
        ({"expires_at": "9999-12-31T12:00:00Z"}, "expires_at"),
        ({"expires_at": "9999-12-31T23:00:00-05:00"}, "expires_at"),
        ({"expires_at": 1e17}, "expires_at"),
        ({"rpm": 10**10}, "rpm"),
        ({"tpm": 10**13}, "tpm"),
        ({"budget": 1e10}, "budget"),
        ({"budget": "NaN"}, "budget"),
        ({"allowed_models": ["x" * 201]}, "allowed_models"),
    ],
)
def test_out_of_range_is_a_400_naming_the_field_and_nothing_is_stored(
    gw: AdminGateway, extra: dict[str, Any], param: str
) -> None:
    name = f"bounds-{param}"
    response = gw.admin("POST", "/admin/keys", json={"name": name, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]
    assert "sk-gw-" not in response.text  # no secret was minted and shown
    # Nothing was stored, and listing every key still works.
    assert name not in _names(gw)


def test_the_largest_accepted_values_round_trip(gw: AdminGateway) -> None:
    created = gw.create_key(name="edge-days", expires_in_days=36_500, rpm=10**9, tpm=10**12)
    assert created["expires_at"][:4] in {"2126", "2127"}
    far = gw.create_key(name="edge-date", expires_at="9999-12-29T23:59:59Z", budget=1e9)
    assert far["expires_at"].startswith("9999-12-29T23:59:59")
    assert {created["id"], far["id"]} <= _ids(gw)
    shown = gw.admin("GET", f"/admin/keys/{far['id']}").json()
    assert (shown["budget"], shown["status"]) == (1e9, "active")


def test_patch_is_bounded_too_and_leaves_the_key_unchanged(gw: AdminGateway) -> None:
    key = gw.create_key(name="patch-bounds", expires_in_days=1)
    for body, param in [
        ({"expires_in_days": 4_000_000}, "expires_in_days"),
        ({"expires_at": "9999-12-31T12:00:00Z"}, "expires_at"),
        ({"rpm": 10**10}, "rpm"),
    ]:
        response = gw.admin("PATCH", f"/admin/keys/{key['id']}", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    after = gw.admin("GET", f"/admin/keys/{key['id']}").json()
    assert after["expires_at"] == key["expires_at"] and after["rpm"] is None


def test_a_stored_time_out_of_range_does_not_break_the_listing(gw: AdminGateway) -> None:
    # A row from an older version (or written by hand) with an absurd expiry: the listing
    # shows it at the nearest representable time instead of failing for every key.
    _, absurd = mint_key("absurd", expires_at=4e11)  # about year 14600
    gw.run(gw.storage.add_key(absurd))
    listing = gw.admin("GET", "/admin/keys")
    assert listing.status_code == 200, listing.text
    shown = {k["id"]: k for k in listing.json()["data"]}[absurd.id]
    assert shown["expires_at"].startswith("9999-12-31")
    assert shown["status"] == "active"
    one = gw.admin("GET", f"/admin/keys/{absurd.id}")
    assert one.status_code == 200 and one.json()["expires_at"].startswith("9999-12-31")


def test_openapi_shows_the_bounds_and_a_listing_example(gw: AdminGateway) -> None:
    doc = gw.http.get(gw.url + "/openapi.json").json()
    props = doc["components"]["schemas"]["KeyCreate"]["properties"]
    days = props["expires_in_days"]["anyOf"][0]
    assert days["maximum"] == 36_500
    listing = doc["paths"]["/admin/keys"]["get"]["responses"]["200"]["content"]
    example = listing["application/json"]["example"]
    assert example["object"] == "list" and example["data"][0]["prefix"].startswith("sk-gw-")
    assert "key" not in example["data"][0]
    assert doc["components"]["schemas"]["KeyList"]["examples"][0] == example
