"""``llm-gateway keys create|list|revoke`` against a real gateway on a real socket."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from tests.api.admin_harness import AdminGateway, admin_gateway

from llm_gateway.cli.keys import keys

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def gw() -> Iterator[AdminGateway]:
    with admin_gateway() as gateway:
        yield gateway


def run(gw: AdminGateway, *args: str, admin_key: str | None = None) -> tuple[int, str, str]:
    key = gw.admin_key if admin_key is None else admin_key
    result = CliRunner().invoke(keys, [*args, "--url", gw.url, "--admin-key", key])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_key_once_and_it_works(gw: AdminGateway) -> None:
    code, out, err = run(
        gw,
        "create",
        "billing",
        "--owner",
        "bob",
        "--team",
        "money",
        "--model",
        "mock*",
        "--model",
        "gpt-*",
        "--rpm",
        "100",
        "--tpm",
        "5000",
        "--budget",
        "2.5",
        "--period",
        "daily",
        "--expires-in-days",
        "7",
        "--metadata",
        "env=prod",
        "--metadata",
        "tier=gold=1",
    )
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert lines[0].startswith("Created key key_") and "(billing)" in lines[0]
    secret = lines[1]
    assert secret.startswith("sk-gw-")
    assert "cannot be shown again" in err
    assert gw.admin_key not in out + err

    stored = [k for k in gw.admin("GET", "/admin/keys").json()["data"] if k["name"] == "billing"]
    assert len(stored) == 1
    record = stored[0]
    assert record["prefix"] == secret[:10]
    assert (record["owner"], record["team"]) == ("bob", "money")
    assert record["allowed_models"] == ["mock*", "gpt-*"]
    assert (record["rpm"], record["tpm"], record["budget"]) == (100, 5000, 2.5)
    assert record["budget_period"] == "daily"
    assert record["metadata"] == {"env": "prod", "tier": "gold=1"}
    assert record["expires_at"] is not None
    assert gw.chat(secret).status_code == 200


def test_create_json_for_scripts(gw: AdminGateway) -> None:
    code, out, _ = run(gw, "create", "scripted", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["name"] == "scripted"
    assert created["key"].startswith("sk-gw-")
    assert created["budget_period"] == "total"


def test_list_shows_a_table_without_secrets_then_revoke(gw: AdminGateway) -> None:
    secret = gw.create_key(name="listed", rpm=7, budget=3.0, budget_period="monthly")["key"]
    code, out, _ = run(gw, "list")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split()[:4] == ["ID", "NAME", "PREFIX", "STATUS"]
    row = next(r for r in rows if " listed " in r)
    assert secret[:10] in row and "active" in row and "3/monthly" in row
    assert secret not in out

    key_id = row.split()[0]
    code, out, _ = run(gw, "revoke", key_id)
    assert code == 0
    assert out.strip() == f"Revoked key {key_id} (listed)."
    assert gw.chat(secret).status_code == 401

    code, out, _ = run(gw, "list", "--json")
    assert code == 0
    listed = {k["id"]: k for k in json.loads(out)}
    assert listed[key_id]["status"] == "revoked"
    assert secret not in out and "key_hash" not in out


def test_revoke_unknown_id_is_a_clean_error(gw: AdminGateway) -> None:
    code, out, err = run(gw, "revoke", "key_nope")
    assert code == 1
    assert "404" in err and "key_nope" in err
    assert "Traceback" not in out + err


def test_wrong_admin_key_is_a_clean_error_that_never_prints_it(gw: AdminGateway) -> None:
    wrong = "sk-admin-wrong-" + "x" * 20
    code, out, err = run(gw, "list", admin_key=wrong)
    assert code == 1
    assert "401" in err and "admin key is wrong" in err
    assert wrong not in out + err and gw.admin_key not in out + err
    assert "Traceback" not in out + err

    user = gw.create_key(name="not-admin")["key"]
    code, out, err = run(gw, "list", admin_key=user)
    assert code == 1
    assert "403" in err and user not in out + err


def test_missing_admin_key_says_how_to_give_one(gw: AdminGateway) -> None:
    result = CliRunner(env={"LLM_GATEWAY_ADMIN_KEY": None}).invoke(keys, ["list", "--url", gw.url])
    assert result.exit_code == 1
    assert "LLM_GATEWAY_ADMIN_KEY" in result.stderr


def test_environment_variables_give_url_and_admin_key(gw: AdminGateway) -> None:
    runner = CliRunner(env={"LLM_GATEWAY_URL": gw.url, "LLM_GATEWAY_ADMIN_KEY": gw.admin_key})
    result = runner.invoke(keys, ["create", "from-env"])
    assert result.exit_code == 0, result.output
    assert "(from-env)" in result.stdout


def test_unreachable_gateway_is_a_clean_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(
        keys, ["list", "--url", f"http://127.0.0.1:{port}", "--admin-key", "sk-admin-secret"]
    )
    assert result.exit_code == 1
    assert "Cannot reach the gateway" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
    assert "sk-admin-secret" not in result.output
    assert "Traceback" not in result.output


def test_bad_metadata_is_a_usage_error(gw: AdminGateway) -> None:
    code, _, err = run(gw, "create", "x", "--metadata", "novalue")
    assert code == 2
    assert "KEY=VALUE" in err


def test_revoke_refuses_the_secret_before_sending_it(gw: AdminGateway) -> None:
    created = gw.create_key(name="pasted-cli")
    code, out, err = run(gw, "revoke", created["key"])
    assert code == 2
    assert "not the key itself" in err
    assert created["key"][10:] not in out + err
    assert gw.admin("GET", f"/admin/keys/{created['id']}").json()["status"] == "active"
