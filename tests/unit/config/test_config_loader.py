from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llm_gateway.config import ConfigError, GatewayConfig, load_config, resolve_config_path
from llm_gateway.config.loader import deep_merge, profile_path

WriteFile = Callable[[str, str], Path]

SECRET = "sk-THIS-MUST-NEVER-SHOW-9f8e7d"


def errors_of(path: str | Path | None = None, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)  # type: ignore[arg-type]
    return str(info.value).splitlines()


# --- which file ---------------------------------------------------------------------------


def test_no_file_gives_builtin_defaults_with_mock() -> None:
    config = load_config(env={})
    assert list(config.providers) == ["mock"]
    assert [(r.provider, r.model) for r in config.models["mock"].routes] == [("mock", "mock-1")]
    assert config.sources == ()


def test_builtin_defaults_enable_providers_whose_keys_are_set() -> None:
    env = {
        "OPENAI_API_KEY": "o",
        "ANTHROPIC_API_KEY": "a",
        "GOOGLE_API_KEY": "g",
        "GROQ_API_KEY": "q",
        "OPENROUTER_API_KEY": "r",
        "DEEPSEEK_API_KEY": "d",
        "MISTRAL_API_KEY": "",  # empty counts as unset
    }
    config = load_config(env=env)
    assert list(config.providers) == [
        "mock",
        "openai",
        "anthropic",
        "gemini",
        "groq",
        "openrouter",
        "deepseek",
    ]
    assert config.providers["gemini"].type == "gemini"
    assert config.configured_providers() == list(config.providers)


def test_gemini_key_prefers_gemini_variable() -> None:
    config = load_config(env={"GEMINI_API_KEY": "first", "GOOGLE_API_KEY": "second"})
    key = getattr(config.providers["gemini"], "api_key", None)
    assert key is not None and key.get_secret_value() == "first"


def test_explicit_path(write: WriteFile) -> None:
    path = write("conf/custom.yaml", "server: {port: 9001}\n")
    config = load_config(path, env={})
    assert config.server.port == 9001
    assert config.sources == (str(path),)
    assert config.source_paths == (path.resolve(),)
    # With a file, mock exists only if declared.
    assert config.providers == {} and config.models == {}


def test_path_from_env_variable(write: WriteFile) -> None:
    path = write("from-env.yaml", "server: {port: 9002}\n")
    assert load_config(env={"LLM_GATEWAY_CONFIG": str(path)}).server.port == 9002


def test_argument_beats_env_variable(write: WriteFile) -> None:
    a = write("a.yaml", "server: {port: 1}\n")
    b = write("b.yaml", "server: {port: 2}\n")
    assert load_config(a, env={"LLM_GATEWAY_CONFIG": str(b)}).server.port == 1


def test_gateway_yaml_in_cwd(write: WriteFile) -> None:
    write("gateway.yaml", "server: {port: 9003}\n")
    config = load_config(env={})
    assert config.server.port == 9003
    assert config.sources == ("gateway.yaml",)


def test_cwd_argument(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "gateway.yaml").write_text("server: {port: 9004}\n")
    (other / ".env").write_text("LLM_GATEWAY_HOST=0.0.0.0\n")
    config = load_config(cwd=other)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9004)


def test_resolve_config_path(tmp_path: Path) -> None:
    assert resolve_config_path(None, {}, cwd=tmp_path) is None
    assert resolve_config_path("x.yaml", {}, cwd=tmp_path) == Path("x.yaml")
    assert resolve_config_path(None, {"LLM_GATEWAY_CONFIG": " y.yaml "}) == Path("y.yaml")
    (tmp_path / "gateway.yaml").write_text("")
    assert resolve_config_path(None, {}, cwd=tmp_path) == Path("gateway.yaml")


def test_empty_file_is_an_empty_config(write: WriteFile) -> None:
    path = write("gateway.yaml", "# only a comment\n")
    assert load_config(path, env={}).model_dump() == GatewayConfig().model_dump()


# --- interpolation through the loader -----------------------------------------------------


def test_interpolation_and_unset_key_is_not_configured(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        """
server: {port: "${PORT:-8100}", host: "${HOST}"}
providers:
  openai: {type: openai, api_key: "${OPENAI_API_KEY}"}
  groq: {type: groq, api_key: "${GROQ_API_KEY}", base_url: "${GROQ_URL:-https://g/v1}"}
""",
    )
    config = load_config(path, env={"GROQ_API_KEY": "gk", "HOST": "0.0.0.0"})
    assert config.server.port == 8100 and config.server.host == "0.0.0.0"
    assert config.configured_providers() == ["groq"]
    assert config.providers["groq"].base_url == "https://g/v1"


def test_interpolation_errors_name_file_path_and_line(write: WriteFile) -> None:
    path = write("gateway.yaml", "providers:\n  o:\n    type: openai\n    api_key: ${OPENAI\n")
    assert errors_of(path, env={}) == [
        f"{path}: providers.o.api_key: unterminated '${{' at position 0 (line 4)"
    ]


def test_escaped_reference_is_literal(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        "providers:\n  m: {type: mock, headers: {X-T: '$${NOT_A_VAR}'}}\n",
    )
    assert load_config(path, env={}).providers["m"].headers == {"X-T": "${NOT_A_VAR}"}


# --- .env and settings precedence ----------------------------------------------------------


def test_dotenv_feeds_interpolation_and_settings(
    write: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(".env", "OPENAI_API_KEY=from-dotenv\nLLM_GATEWAY_PORT=7001\nLLM_GATEWAY_ENV=\n")
    write("gateway.yaml", "providers:\n  o: {type: openai, api_key: '${OPENAI_API_KEY}'}\n")
    config = load_config()
    assert config.server.port == 7001
    assert config.configured_providers() == ["o"]
    # The real environment wins over .env.
    monkeypatch.setenv("LLM_GATEWAY_PORT", "7002")
    assert load_config().server.port == 7002


def test_dotenv_keys_enable_builtin_providers(write: WriteFile) -> None:
    write(".env", "GROQ_API_KEY=gk\n")
    assert "groq" in load_config().providers


def test_precedence_cli_over_env_over_yaml_over_default(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        "server: {host: 10.0.0.1, port: 1000, heartbeat_seconds: 3}\nlogging: {level: ERROR}\n",
    )
    env = {"LLM_GATEWAY_PORT": "2000", "LLM_GATEWAY_LOG_LEVEL": "debug"}
    config = load_config(path, env=env, overrides={"server": {"port": 3000}})
    assert config.server.port == 3000  # CLI
    assert config.logging.level == "DEBUG"  # env over YAML
    assert config.server.host == "10.0.0.1"  # YAML over default
    assert config.server.heartbeat_seconds == 3
    assert config.server.max_body_bytes == 10 * 1024 * 1024  # default


def test_every_setting_reaches_the_config() -> None:
    env = {
        "LLM_GATEWAY_HOST": "0.0.0.0",
        "LLM_GATEWAY_PORT": "1234",
        "LLM_GATEWAY_LOG_LEVEL": "warning",
        "LLM_GATEWAY_ADMIN_KEY": SECRET,
        "LLM_GATEWAY_MAX_BODY_BYTES": "100",
        "LLM_GATEWAY_HEARTBEAT_SECONDS": "2.5",
    }
    config = load_config(env=env)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 1234)
    assert config.logging.level == "WARNING"
    assert config.auth.admin_key is not None
    assert config.auth.admin_key.get_secret_value() == SECRET
    assert (config.server.max_body_bytes, config.server.heartbeat_seconds) == (100, 2.5)


def test_invalid_setting_names_the_variable_without_echoing() -> None:
    lines = errors_of(env={"LLM_GATEWAY_PORT": "eighty", "LLM_GATEWAY_MAX_BODY_BYTES": "-1"})
    assert lines == [
        "environment: LLM_GATEWAY_PORT: Input should be a valid integer, unable to parse "
        "string as an integer",
        "environment: LLM_GATEWAY_MAX_BODY_BYTES: Input should be greater than 0",
    ]


# --- profiles --------------------------------------------------------------------------------


def test_profile_overlay_deep_merges(write: WriteFile) -> None:
    base = write(
        "gateway.yaml",
        """
server: {host: 127.0.0.1, port: 8000}
providers:
  g: {type: groq, api_key: dev, timeout: 10}
  m: {type: mock}
models:
  coder: {routes: [g/a, m/mock-1], strategy: ordered}
""",
    )
    write(
        "gateway.prod.yaml",
        """
server: {host: 0.0.0.0}
providers:
  g: {api_key: "${PROD_KEY}"}
models:
  coder: {routes: [g/b]}
""",
    )
    config = load_config(base, env={"LLM_GATEWAY_ENV": "prod", "PROD_KEY": "pk"})
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8000)
    groq = config.providers["g"]
    assert groq.timeout == 10
    assert getattr(groq, "api_key").get_secret_value() == "pk"  # noqa: B009
    assert [r.model for r in config.models["coder"].routes] == ["b"]  # lists replace
    assert config.sources == (str(base), str(profile_path(base, "prod")))


def test_profile_errors_are_attributed_to_the_overlay(write: WriteFile) -> None:
    base = write("gateway.yaml", "providers:\n  g: {type: groq}\n  m: {type: mock}\n")
    write("gateway.prod.yaml", "providers:\n  g:\n    timeout: soon\n")
    assert errors_of(base, env={"LLM_GATEWAY_ENV": "prod"}) == [
        f"{profile_path(base, 'prod')}: providers.g.timeout: Input should be a valid number, "
        "got 'soon' (line 3)"
    ]


def test_missing_profile_file_is_an_error(write: WriteFile) -> None:
    base = write("gateway.yaml", "")
    assert errors_of(base, env={"LLM_GATEWAY_ENV": "staging"}) == [
        f"{profile_path(base, 'staging')}: profile file not found (LLM_GATEWAY_ENV=staging)"
    ]


def test_profile_without_base_file_is_an_error() -> None:
    assert errors_of(env={"LLM_GATEWAY_ENV": "prod"}) == [
        "environment: LLM_GATEWAY_ENV=prod needs a base config file "
        "(--config, LLM_GATEWAY_CONFIG or ./gateway.yaml)"
    ]


def test_deep_merge() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    over = {"a": {"c": [3], "e": 2}, "d": {"x": 1}}
    assert deep_merge(base, over) == {"a": {"b": 1, "c": [3], "e": 2}, "d": {"x": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs untouched


# --- error messages: file, key path, problem ---------------------------------------------------


def test_wrong_type_message(write: WriteFile) -> None:
    path = write("gateway.yaml", "providers:\n  openai:\n    type: openai\n    timeout: fast\n")
    assert errors_of(path, env={}) == [
        f"{path}: providers.openai.timeout: Input should be a valid number, got 'fast' (line 4)"
    ]


def test_relative_path_is_shown_as_given(write: WriteFile) -> None:
    write("gateway.yaml", "server: {port: x}\n")
    assert errors_of("gateway.yaml", env={}) == [
        "gateway.yaml: server.port: Input should be a valid integer, got 'x' (line 1)"
    ]


def test_unknown_route_provider(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        """providers:
  openai: {type: openai}
  groq: {type: groq}
models:
  coder:
    routes:
      - {provider: openai, model: gpt-4o}
      - {provider: grok, model: llama}
""",
    )
    assert errors_of(path, env={}) == [
        f"{path}: models.coder.routes[1].provider: unknown provider 'grok'; "
        "configured: openai, groq (line 8)"
    ]


def test_reference_errors_reported_with_field_errors(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        "providers:\n  a: {type: mock, chunk_delay_ms: -1}\nmodels:\n  m: {routes: [zz/x]}\n",
    )
    assert errors_of(path, env={}) == [
        f"{path}: providers.a.chunk_delay_ms: Input should be greater than or equal to 0, "
        "got -1 (line 2)",
        f"{path}: models.m.routes[0].provider: unknown provider 'zz'; configured: a (line 4)",
    ]


def test_unknown_provider_type_lists_valid_types(write: WriteFile) -> None:
    path = write("gateway.yaml", "providers:\n  x:\n    type: grok\n")
    assert errors_of(path, env={}) == [
        f"{path}: providers.x.type: unknown provider type 'grok'; valid types: anthropic, "
        "bedrock, deepseek, gemini, groq, mistral, mock, openai, openai_compatible, "
        "openrouter (line 3)"
    ]


def test_missing_provider_type(write: WriteFile) -> None:
    path = write("gateway.yaml", "providers:\n  x: {api_key: k}\n")
    (line,) = errors_of(path, env={})
    assert line.startswith(f"{path}: providers.x.type: missing provider type; valid types: ")


def test_unknown_key_suggests_the_right_one(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        "server: {prot: 1}\nproviders:\n  o: {type: openai, timout: 3}\n"
        "models:\n  m: {routes: [o/x], stratgy: ordered}\nloging: {}\n",
    )
    assert errors_of(path, env={}) == [
        f"{path}: server.prot: unknown key (did you mean 'port'?) (line 1)",
        f"{path}: providers.o.timout: unknown key (did you mean 'timeout'?) (line 3)",
        f"{path}: models.m.stratgy: unknown key (did you mean 'strategy'?) (line 5)",
        f"{path}: loging: unknown key (did you mean 'logging'?) (line 6)",
    ]


def test_unknown_key_without_close_match_lists_valid_keys(write: WriteFile) -> None:
    path = write("gateway.yaml", "auth: {zzz: 1}\n")
    assert errors_of(path, env={}) == [
        f"{path}: auth.zzz: unknown key; valid keys: admin_key, keys_refresh_seconds (line 1)"
    ]


def test_unknown_key_inside_route_and_nested_dict(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        "providers:\n  m: {type: mock}\nmodels:\n  a:\n    routes:\n"
        "      - {provider: m, model: x, wieght: 2}\n",
    )
    assert errors_of(path, env={}) == [
        f"{path}: models.a.routes[0].wieght: unknown key (did you mean 'weight'?) (line 6)"
    ]


def test_missing_required_keys(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        "providers:\n  m: {type: mock}\nmodels:\n  a: {strategy: ordered}\n"
        "  b:\n    routes:\n      - {provider: m}\n",
    )
    assert errors_of(path, env={}) == [
        f"{path}: models.a.routes: required key is missing (line 4)",
        f"{path}: models.b.routes[0].model: required key is missing (line 7)",
    ]


def test_openai_compatible_requires_base_url(write: WriteFile) -> None:
    path = write("gateway.yaml", "providers:\n  local: {type: openai_compatible}\n")
    assert errors_of(path, env={}) == [
        f"{path}: providers.local: base_url is required for type 'openai_compatible' (line 2)"
    ]


def test_bad_strategy_weight_and_shorthand(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        "providers:\n  m: {type: mock}\nmodels:\n"
        "  a: {routes: [{provider: m, model: x, weight: 0}], strategy: fastest}\n"
        "  b: {routes: [nonsense]}\n  c: {routes: []}\n",
    )
    assert errors_of(path, env={}) == [
        f"{path}: models.a.routes[0].weight: Input should be greater than 0, got 0 (line 4)",
        f"{path}: models.a.strategy: Input should be 'ordered', 'weighted', 'least_latency' or "
        "'lowest_cost', got 'fastest' (line 4)",
        f"{path}: models.b.routes[0]: a route string must be 'provider/model', got 'nonsense' "
        "(line 5)",
        f"{path}: models.c.routes: List should have at least 1 item after validation, not 0 "
        "(line 6)",
    ]


def test_provider_name_with_slash(write: WriteFile) -> None:
    path = write("gateway.yaml", "providers:\n  a/b: {type: mock}\n")
    assert errors_of(path, env={}) == [
        f"{path}: providers.a/b: a provider name must be non-empty and contain no '/' (line 2)"
    ]


def test_section_of_wrong_shape(write: WriteFile) -> None:
    path = write("gateway.yaml", "server: 8000\nproviders: [a, b]\n")
    assert errors_of(path, env={}) == [
        f"{path}: server: Input should be a valid dictionary or instance of ServerConfig, "
        "got 8000 (line 1)",
        f"{path}: providers: Input should be a valid dictionary (line 2)",
    ]


def test_override_errors_without_file() -> None:
    assert errors_of(env={}, overrides={"server": {"port": -5}}) == [
        "built-in defaults: server.port: Input should be greater than or equal to 0, got -5"
    ]


# --- secrets never appear ------------------------------------------------------------------------


def test_secrets_never_in_error_text(write: WriteFile) -> None:
    path = write(
        "gateway.yaml",
        f"""
auth: {{admin_key: [{SECRET}]}}
storage: {{url: [postgresql://u:{SECRET}@h/db]}}
redis: {{url: {{a: {SECRET}}}}}
providers:
  o: {{type: openai, api_key: [{SECRET}], headers: {{Authorization: [{SECRET}]}}}}
  b: {{type: bedrock, secret_access_key: {{x: {SECRET}}}, session_token: [{SECRET}]}}
  c: {{type: anthropic, api_key: {SECRET}, max_tokens: lots}}
""",
    )
    text = "\n".join(errors_of(path, env={}))
    assert SECRET not in text
    assert "providers.o.api_key" in text and "providers.c.max_tokens" in text


def test_secret_from_env_never_in_error_text(write: WriteFile) -> None:
    path = write("gateway.yaml", "providers:\n  o: {type: openai, api_key: '${K}', bogus: 1}\n")
    text = "\n".join(errors_of(path, env={"K": SECRET, "LLM_GATEWAY_ADMIN_KEY": SECRET}))
    assert SECRET not in text
