from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llm_gateway.settings import Settings, load_environment


def test_from_env_reads_only_the_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_HOST", "from-process")
    settings = Settings.from_env({"llm_gateway_port": " 81 ", "LLM_GATEWAY_ENV": ""})
    assert settings.host is None  # the process environment is not consulted
    assert settings.port == 81
    assert settings.env is None  # blank is unset


def test_as_overrides_only_set_values() -> None:
    assert Settings.from_env({}).as_overrides() == {}
    settings = Settings.from_env(
        {"LLM_GATEWAY_PORT": "1", "LLM_GATEWAY_LOG_LEVEL": "info", "LLM_GATEWAY_CONFIG": "x"}
    )
    assert settings.config == Path("x")
    assert settings.as_overrides() == {"server": {"port": 1}, "logging": {"level": "INFO"}}


def test_plain_settings_read_process_env_and_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("LLM_GATEWAY_PORT=9100\nOPENAI_API_KEY=x\nLLM_GATEWAY_HOST=\n")
    monkeypatch.setenv("LLM_GATEWAY_LOG_LEVEL", "error")
    settings = Settings()
    assert (settings.port, settings.log_level, settings.host) == (9100, "ERROR", None)


def test_invalid_values_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings.from_env({"LLM_GATEWAY_HEARTBEAT_SECONDS": "0"})


def test_admin_key_is_secret() -> None:
    settings = Settings.from_env({"LLM_GATEWAY_ADMIN_KEY": "adm-SECRET"})
    assert "adm-SECRET" not in repr(settings)


def test_load_environment_real_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dotenv = tmp_path / "x.env"
    dotenv.write_text("A=from-file\nB=file-only\nC\n")
    monkeypatch.setenv("A", "from-process")
    env = load_environment(dotenv)
    assert env["A"] == "from-process" and env["B"] == "file-only"
    assert "C" not in env
    assert "B" not in load_environment(tmp_path / "missing.env")
    assert "B" not in load_environment(None)
