"""``llm-gateway usage`` against a real gateway on a real socket."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from tests.api.admin_harness import AdminGateway, admin_gateway

from llm_gateway.cli.usage import usage
from llm_gateway.core.records import UsageRecord

pytestmark = pytest.mark.timeout(60)

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z


@pytest.fixture(scope="module")
def gw() -> Iterator[AdminGateway]:
    with admin_gateway() as gateway:
        yield gateway


def seeded(gw: AdminGateway) -> str:
    key_id = "key_" + secrets.token_hex(8)
    records = [
        UsageRecord(
            request_id=f"req-{key_id}-{i}",
            created_at=T0 + i,
            endpoint="chat.completions",
            model=model,
            key_id=key_id,
            prompt_tokens=100,
            completion_tokens=20,
            cost=0.001,
            latency_ms=12.0,
            status=200 if i else 502,
        )
        for i, model in enumerate(["m-a", "m-b", "m-a"])
    ]
    gw.run(gw.storage.insert_usage(records))
    return key_id


def invoke(gw: AdminGateway, *args: str) -> Result:
    return CliRunner().invoke(usage, [*args, "--url", gw.url, "--admin-key", gw.admin_key])


def test_prints_totals_and_recent_records(gw: AdminGateway) -> None:
    key_id = seeded(gw)
    result = invoke(gw, "--key", key_id)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Requests:  3 (1 errors, 0 cache hits)" in out
    assert "Tokens:    300 prompt, 60 completion" in out
    assert "Cost:      $0.003000" in out
    table = out.split("\n\n", 1)[1].strip().splitlines()
    assert table[0].startswith("TIME (UTC)")
    assert [line.split()[2] for line in table[1:]] == [f"req-{key_id}-{i}" for i in (2, 1, 0)]
    assert "2025-06-15 15:06:42" in table[1]
    assert " 502 " in table[3]
    assert gw.admin_key not in result.output


def test_filters_and_json(gw: AdminGateway) -> None:
    key_id = seeded(gw)
    result = invoke(gw, "--key", key_id, "--model", "m-a", "--since", str(T0 + 1), "--json")
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert [r["request_id"] for r in page["records"]] == [f"req-{key_id}-2"]
    assert page["totals"]["requests"] == 1

    result = invoke(gw, "--key", key_id, "--until", "2025-06-15T15:06:41Z", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert "Requests:  1 " in result.stdout
    assert f"req-{key_id}-0" in result.stdout


def test_nothing_found_says_so(gw: AdminGateway) -> None:
    result = invoke(gw, "--key", "key_without_usage")
    assert result.exit_code == 0
    assert "Requests:  0" in result.stdout
    assert "No requests recorded" in result.stdout


def test_bad_time_is_a_clean_error_naming_the_option(gw: AdminGateway) -> None:
    result = invoke(gw, "--since", "last tuesday")
    assert result.exit_code == 1
    assert "since" in result.stderr and "400" in result.stderr
    assert "Traceback" not in result.output


def test_wrong_admin_key_is_a_clean_error(gw: AdminGateway) -> None:
    result = CliRunner().invoke(usage, ["--url", gw.url, "--admin-key", "sk-nope-123456"])
    assert result.exit_code == 1
    assert "401" in result.stderr
    assert "sk-nope-123456" not in result.output


def test_key_option_refuses_the_secret(gw: AdminGateway) -> None:
    secret = gw.create_key(name="pasted-usage")["key"]
    result = invoke(gw, "--key", secret)
    assert result.exit_code == 2
    assert "not the key itself" in result.stderr
    assert secret[10:] not in result.output
