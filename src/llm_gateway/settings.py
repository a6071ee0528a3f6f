"""Process settings: ``LLM_GATEWAY_*`` environment variables and ``.env``.

These are the few values an operator sets per process (where the config file is, which
profile, where to listen). They override the YAML file and are overridden by CLI flags:
CLI flag > ``LLM_GATEWAY_*`` > YAML > built-in default. The loader folds them into the one
``GatewayConfig`` the app consumes, so nothing else reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "LLM_GATEWAY_"
DOTENV_FILE = ".env"


class Settings(BaseSettings):
    """Every field is optional: ``None`` means "not set here, use the YAML or default"."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=DOTENV_FILE,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    config: Path | None = Field(None, description="Config file path.")
    env: str | None = Field(None, description="Profile: overlays gateway.<env>.yaml.")
    host: str | None = None
    port: int | None = Field(None, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = None
    admin_key: SecretStr | None = None
    max_body_bytes: int | None = Field(None, gt=0)
    heartbeat_seconds: float | None = Field(None, gt=0)
    storage_url: str | None = Field(None, description="storage.url (SQLite or Postgres).")
    redis_url: str | None = Field(None, description="redis.url (shared limits across replicas).")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings read from ``env`` only (not ``os.environ``, not ``.env``).

        This is what makes the loader testable with an explicit mapping and keeps one
        source of truth when the caller already merged ``.env`` into ``env``.
        """
        upper = {k.upper(): v for k, v in env.items()}
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = upper.get(ENV_PREFIX + name.upper())
            if raw is not None and raw.strip():
                values[name] = raw.strip()
        return _MappingSettings(**values)

    def as_overrides(self) -> dict[str, Any]:
        """The values that are set, shaped like the YAML file, to merge over it."""
        pairs: list[tuple[tuple[str, str], Any]] = [
            (("server", "host"), self.host),
            (("server", "port"), self.port),
            (("server", "max_body_bytes"), self.max_body_bytes),
            (("server", "heartbeat_seconds"), self.heartbeat_seconds),
            (("logging", "level"), self.log_level),
            (("auth", "admin_key"), self.admin_key),
            (("storage", "url"), self.storage_url),
            (("redis", "url"), self.redis_url),
        ]
        out: dict[str, Any] = {}
        for (section, key), value in pairs:
            if value is not None:
                out.setdefault(section, {})[key] = value
        return out


class _MappingSettings(Settings):
    """``Settings`` fed from init arguments alone; see ``Settings.from_env``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def load_environment(dotenv_path: str | Path | None = DOTENV_FILE) -> dict[str, str]:
    """``os.environ`` over the ``.env`` file's values (the real environment wins).

    ``.env`` may hold provider keys (``OPENAI_API_KEY``) as well as ``LLM_GATEWAY_*``
    settings; both are visible to ``${VAR}`` interpolation and to the built-in defaults.
    """
    merged: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ)
    return merged
