from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_gateway import __version__
from llm_gateway.cli import cli
from llm_gateway.cli.summary import mask_url

WriteFile = Callable[[str, str], Path]
SECRET = "sk-NEVER-PRINT-ME-123"

VALID = """
server: {host: 0.0.0.0, port: 9000}
auth: {admin_key: "${ADMIN}"}
storage: {url: "postgresql://gw:${PGPASS}@db:5432/gw"}
redis: {url: "redis://:${PGPASS}@cache:6379/0"}
providers:
  openai: {type: openai, api_key: "${OPENAI_API_KEY}"}
  claude: {type: anthropic, api_key: "${ANTHROPIC_API_KEY}"}
  aws: {type: bedrock}
  local: {type: openai_compatible, base_url: "http://127.0.0.1:11434/v1"}
models:
  coder:
    routes: [openai/gpt-4o, local/qwen]
  mix:
    strategy: weighted
    routes: [{provider: openai, model: a, weight: 3}, {provider: claude, model: b}]
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_valid_config_summary(write: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    write("gateway.yaml", VALID)
    for var, value in {"OPENAI_API_KEY": SECRET, "ADMIN": SECRET, "PGPASS": SECRET}.items():
        monkeypatch.setenv(var, value)
    code, out, err = run("check-config")
    assert code == 0, err
    assert err == ""
    assert out.splitlines() == [
        "config: gateway.yaml: OK",
        "server: http://0.0.0.0:9000",
        "storage: postgresql://gw:***@db:5432/gw",
        "redis: redis://:***@cache:6379/0",
        "auth: admin key set",
        "providers (4):",
        "  openai  openai             configured",
        "  claude  anthropic          NOT_CONFIGURED (no api_key)",
        "  aws     bedrock            NOT_CONFIGURED (no region)",
        "  local   openai_compatible  configured",
        "models (2):",
        "  coder  ordered: openai/gpt-4o, local/qwen",
        "  mix    weighted: openai/a (weight 3), claude/b (weight 1)",
    ]
    assert SECRET not in out


def test_builtin_defaults_summary() -> None:
    code, out, _ = run("check-config")
    assert code == 0
    assert out.splitlines()[0] == "config: built-in defaults: OK"
    assert "redis: off (per-process limits and cache)" in out
    assert "auth: no admin key" in out
    assert "  mock  mock  configured" in out


def test_explicit_config_option(write: WriteFile) -> None:
    path = write("conf/other.yaml", "providers: {m: {type: mock}}\n")
    code, out, _ = run("check-config", "--config", str(path))
    assert code == 0
    assert out.splitlines()[0] == f"config: {path}: OK"
    assert "models (0):" in out


def test_invalid_config_exits_1_with_precise_errors(write: WriteFile) -> None:
    write(
        "gateway.yaml",
        f"providers:\n  openai: {{type: openai, api_key: {SECRET}, timeout: fast}}\n"
        "models:\n  coder: {routes: [grok/x]}\n",
    )
    code, out, err = run("check-config")
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        "gateway.yaml: providers.openai.timeout: Input should be a valid number, got 'fast' "
        "(line 2)",
        "gateway.yaml: models.coder.routes[0].provider: unknown provider 'grok'; "
        "configured: openai (line 4)",
    ]
    assert SECRET not in err


def test_missing_config_file(tmp_path: Path) -> None:
    code, _, err = run("check-config", "--config", "absent.yaml")
    assert code == 1
    assert err.strip() == f"absent.yaml: config file not found ({tmp_path / 'absent.yaml'})"


def test_version_and_help() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"llm-gateway, version {__version__}"
    code, out, _ = run("--help")
    assert code == 0 and "serve" in out and "check-config" in out


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("sqlite:///./gateway.db", "sqlite:///./gateway.db"),
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("http://[::1", "***"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
