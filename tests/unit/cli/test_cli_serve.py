"""``serve`` without starting a server: uvicorn.run and the app module are replaced."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llm_gateway.cli import cli, main
from llm_gateway.cli.serve import WORKER_FACTORY, cli_overrides
from llm_gateway.config import GatewayConfig

WriteFile = Callable[[str, str], Path]
SECRET = "sk-SERVE-SECRET-42"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.configs: list[GatewayConfig] = []

    def run(self, app: Any, **kwargs: Any) -> None:
        self.calls.append((app, kwargs))

    def create_app(self, config: GatewayConfig) -> str:
        self.configs.append(config)
        return "THE-APP"


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", rec.run)
    fake_app = types.ModuleType("llm_gateway.app")
    fake_app.create_app = rec.create_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llm_gateway.app", fake_app)
    # serve exports settings for workers; make sure they are restored after the test.
    for name in ("HOST", "PORT", "LOG_LEVEL", "CONFIG"):
        monkeypatch.setenv(f"LLM_GATEWAY_{name}", "")
        monkeypatch.delenv(f"LLM_GATEWAY_{name}")
    return rec


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["serve", *args], catch_exceptions=False)


def test_serve_defaults(recorder: Recorder) -> None:
    result = invoke()
    assert result.exit_code == 0, result.stderr
    ((app, kwargs),) = recorder.calls
    assert app == "THE-APP"
    assert kwargs == {
        "host": "127.0.0.1",
        "port": 8000,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,
        "log_level": "info",
        "timeout_graceful_shutdown": 30,
    }
    assert result.stderr.strip() == (
        "llm-gateway listening on http://127.0.0.1:8000 "
        "(config: built-in defaults; providers: mock)"
    )


def test_cli_flags_override_everything(
    recorder: Recorder, write: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        "my.yaml",
        "server: {host: 10.1.1.1, port: 1}\n"
        "providers:\n  o: {type: openai, api_key: '${OPENAI_API_KEY}'}\n  m: {type: mock}\n",
    )
    monkeypatch.setenv("LLM_GATEWAY_PORT", "2")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    result = invoke(
        "--config", str(path), "--port", "3", "--host", "0.0.0.0", "--log-level", "debug"
    )
    assert result.exit_code == 0
    ((_, kwargs),) = recorder.calls
    assert (kwargs["host"], kwargs["port"], kwargs["log_level"]) == ("0.0.0.0", 3, "debug")
    (config,) = recorder.configs
    assert config.server.port == 3 and config.logging.level == "DEBUG"
    line = result.stderr.strip()
    assert line == (f"llm-gateway listening on http://0.0.0.0:3 (config: {path}; providers: o, m)")
    assert SECRET not in result.output


def test_not_configured_providers_in_startup_line(recorder: Recorder, write: WriteFile) -> None:
    write("gateway.yaml", "providers:\n  o: {type: openai}\n  g: {type: gemini}\n")
    result = invoke()
    assert result.stderr.strip() == (
        "llm-gateway listening on http://127.0.0.1:8000 "
        "(config: gateway.yaml; providers: none; NOT_CONFIGURED: o, g)"
    )


def test_invalid_config_exits_2(recorder: Recorder, write: WriteFile) -> None:
    write("gateway.yaml", "server: {port: high}\n")
    result = invoke()
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "gateway.yaml: server.port: Input should be a valid integer, got 'high' (line 1)"
    )
    assert recorder.calls == []


def test_workers_use_the_factory_and_export_the_config(
    recorder: Recorder, write: WriteFile
) -> None:
    path = write("conf/g.yaml", "server: {port: 8123}\n")
    result = invoke("--config", str(path), "--workers", "3", "--host", "0.0.0.0")
    assert result.exit_code == 0
    ((app, kwargs),) = recorder.calls
    assert app == WORKER_FACTORY
    assert kwargs["factory"] is True and kwargs["workers"] == 3
    assert (kwargs["host"], kwargs["port"]) == ("0.0.0.0", 8123)
    assert recorder.configs == []  # workers build their own app
    assert os.environ["LLM_GATEWAY_CONFIG"] == str(path.resolve())
    assert os.environ["LLM_GATEWAY_HOST"] == "0.0.0.0"
    assert os.environ["LLM_GATEWAY_PORT"] == "8123"
    assert os.environ["LLM_GATEWAY_LOG_LEVEL"] == "INFO"


def test_workers_without_a_file_do_not_set_a_config_path(recorder: Recorder) -> None:
    result = invoke("--workers", "2")
    assert result.exit_code == 0
    assert "LLM_GATEWAY_CONFIG" not in os.environ


def test_falls_back_to_the_default_loop_without_uvloop(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    invoke()
    assert recorder.calls[0][1]["loop"] == "auto"


def test_cli_overrides() -> None:
    assert cli_overrides(None, None, None) == {}
    assert cli_overrides("h", 1, "warning") == {
        "server": {"host": "h", "port": 1},
        "logging": {"level": "WARNING"},
    }


def test_bad_flag_values_are_usage_errors(recorder: Recorder) -> None:
    result = CliRunner().invoke(cli, ["serve", "--port", "99999"])
    assert result.exit_code == 2 and "--port" in result.stderr
    result = CliRunner().invoke(cli, ["serve", "--workers", "0"])
    assert result.exit_code == 2


def test_main_entry_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["llm-gateway", "--version"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 0
    assert "llm-gateway, version" in capsys.readouterr().out


def test_python_dash_m(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
    proc = subprocess.run(
        [sys.executable, "-m", "llm_gateway", "check-config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("config: built-in defaults: OK")


def test_open_file_limit_is_lifted_to_the_hard_limit() -> None:
    import resource

    from llm_gateway.cli.serve import raise_open_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        lifted = raise_open_file_limit()
        assert lifted == (hard if hard != resource.RLIM_INFINITY else max(256, 65536))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
