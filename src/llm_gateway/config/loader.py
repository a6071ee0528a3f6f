"""Find, read, merge and validate the configuration into one ``GatewayConfig``.

Resolution, highest first:

* which file: the ``path`` argument (``--config``), else ``LLM_GATEWAY_CONFIG``, else
  ``./gateway.yaml`` if it exists, else the built-in defaults (``defaults.py``);
* profile: ``LLM_GATEWAY_ENV=prod`` deep-merges ``gateway.prod.yaml`` (next to the base
  file) over it; a named profile whose file is missing is an error, because running prod
  on the dev config by accident is worse than not starting;
* values: ``overrides`` (CLI flags) > ``LLM_GATEWAY_*`` settings > YAML > schema defaults.

``${VAR}`` references are interpolated in each file before merging and validation.
The environment is one mapping (``os.environ`` over ``.env`` unless ``env`` is given), so
tests pass a dict and never touch the process environment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llm_gateway.config.defaults import DEFAULT_CONFIG_FILE, builtin_config
from llm_gateway.config.errors import ConfigError, ConfigProblem
from llm_gateway.config.explain import explain
from llm_gateway.config.interpolate import interpolate_tree
from llm_gateway.config.schema import GatewayConfig, reference_problems
from llm_gateway.config.yamlfile import Document, read_yaml
from llm_gateway.settings import ENV_PREFIX, Settings, load_environment

ENV_SOURCE = "environment"


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: str | Path | None = None,
) -> GatewayConfig:
    """Load, interpolate, merge and validate; raise ``ConfigError`` listing every problem.

    ``env`` replaces the process environment and ``.env`` (for tests and embedding).
    ``overrides`` is a partial config, shaped like the YAML (``{"server": {"port": 9000}}``),
    merged last. ``cwd`` is where ``gateway.yaml`` and ``.env`` are looked for.
    """
    base_dir = Path(cwd) if cwd is not None else Path.cwd()
    environ = dict(env) if env is not None else load_environment(base_dir / ".env")
    settings = _settings(environ)

    documents = _documents(path, settings, environ, base_dir)
    raw: dict[str, Any] = builtin_config(environ) if not documents else {}
    for doc in documents:
        raw = deep_merge(raw, doc.data)
    raw = deep_merge(raw, settings.as_overrides())
    if overrides:
        raw = deep_merge(raw, overrides)

    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        # Cross-field checks run only once every field is valid; run them on the raw data
        # too, so one pass reports everything wrong.
        extra = reference_problems(raw.get("providers"), raw.get("models"))
        raise ConfigError(explain(exc, documents, extra)) from None
    config._sources = tuple(doc.name for doc in documents)
    config._source_paths = tuple(doc.path.resolve() for doc in documents if doc.path)
    return config


def resolve_config_path(
    path: str | Path | None, env: Mapping[str, str], cwd: str | Path | None = None
) -> Path | None:
    """The config file to read, or ``None`` for built-in defaults (see module docs)."""
    if path is not None:
        return Path(path).expanduser()
    from_env = env.get(ENV_PREFIX + "CONFIG", "").strip()
    if from_env:
        return Path(from_env).expanduser()
    base_dir = Path(cwd) if cwd is not None else Path.cwd()
    found = (base_dir / DEFAULT_CONFIG_FILE).is_file()
    return Path(DEFAULT_CONFIG_FILE) if found else None


def profile_path(base: Path, profile: str) -> Path:
    """``gateway.yaml`` + ``prod`` → ``gateway.prod.yaml`` in the same directory."""
    return base.with_name(f"{base.stem}.{profile}{base.suffix}")


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base``: mappings merge key by key, anything else replaces.

    Lists replace rather than concatenate, so an overlay can shorten a route list.
    """
    out = dict(base)
    for key, value in over.items():
        current = out.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(current, value)
        else:
            out[key] = value
    return out


def _settings(environ: Mapping[str, str]) -> Settings:
    try:
        return Settings.from_env(environ)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            var = ENV_PREFIX + "_".join(str(p) for p in error["loc"]).upper()
            # Settings include the admin key: never echo the input.
            problems.append(ConfigProblem((var,), error["msg"], source=ENV_SOURCE))
        raise ConfigError(problems) from None


def _documents(
    path: str | Path | None, settings: Settings, environ: Mapping[str, str], base_dir: Path
) -> list[Document]:
    chosen = resolve_config_path(path, environ, cwd=base_dir)
    if chosen is None:
        if settings.env:
            raise ConfigError.single(
                ENV_SOURCE,
                f"{ENV_PREFIX}ENV={settings.env} needs a base config file "
                f"(--config, {ENV_PREFIX}CONFIG or ./{DEFAULT_CONFIG_FILE})",
            )
        return []
    chosen_abs = chosen if chosen.is_absolute() else base_dir / chosen
    docs = [read_yaml(chosen_abs, str(chosen))]
    if settings.env:
        overlay = profile_path(chosen, settings.env)
        overlay_abs = profile_path(chosen_abs, settings.env)
        if not overlay_abs.is_file():
            raise ConfigError.single(
                str(overlay), f"profile file not found ({ENV_PREFIX}ENV={settings.env})"
            )
        docs.append(read_yaml(overlay_abs, str(overlay)))
    problems: list[ConfigProblem] = []
    interpolated: list[Document] = []
    for doc in docs:
        data, found = interpolate_tree(doc.data, environ)
        problems.extend(
            ConfigProblem(p.loc, p.message, source=doc.name, line=doc.line_of(p.loc)) for p in found
        )
        interpolated.append(dataclasses.replace(doc, data=data))
    if problems:
        raise ConfigError(problems)
    return interpolated
