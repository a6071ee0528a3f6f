"""The validated shape of ``gateway.yaml``.

Every model forbids unknown keys so a typo (``timout:``) fails at start-up instead of being
silently ignored, and every model is frozen: the app holds one resolved ``GatewayConfig``
and a reload swaps in a new object rather than mutating the old one.

Providers are a discriminated union on ``type``: adding a provider type is a new class
in the union, not a new branch in code that reads the config.

Model names may contain ``/``. Clients address a provider directly as ``provider/model``;
when a configured model name collides with such a reference, the configured model wins,
so configuration can always shadow direct addressing deliberately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from llm_gateway.config.errors import ConfigProblem, ReferenceErrors

MIB = 1024 * 1024
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Strategy = Literal["ordered", "weighted", "least_latency", "lowest_cost"]
OpenAIWireType = Literal["openai", "groq", "openrouter", "deepseek", "mistral", "openai_compatible"]


class _Section(BaseModel):
    """Base for every config object: strict keys, immutable, blank optionals are unset.

    ``${VAR}`` with VAR unset interpolates to ``""``; for a field whose default is ``None``
    that must mean "not set" (an absent key, an absent base URL), never an empty value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            blank = isinstance(value, str) and not value.strip()
            if blank and field is not None and field.default is None:
                del out[name]
        return out


def _normalise_level(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


# --- process-level sections ------------------------------------------------------------


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(10 * MIB, gt=0, description="Larger request bodies get 413.")
    heartbeat_seconds: float = Field(
        15.0, gt=0, description="SSE comment sent while an upstream is silent this long."
    )
    max_messages: int = Field(2048, gt=0, description="More messages in one request get 400.")
    graceful_shutdown_seconds: float = Field(
        30.0, ge=0, description="How long in-flight requests may finish on shutdown."
    )
    ws_max_frame_bytes: int = Field(MIB, gt=0, description="Larger WebSocket frames get an error.")


class AuthConfig(_Section):
    # No admin key and no keys in the store means open mode (local use only).
    admin_key: SecretStr | None = None
    keys_refresh_seconds: float = Field(
        30.0, gt=0, description="Reload the key snapshot from the database this often."
    )


class StorageConfig(_Section):
    url: str = "sqlite:///./gateway.db"
    # Usage records are written behind the request, in batches.
    batch_size: int = Field(500, gt=0, description="Most usage records per database write.")
    flush_seconds: float = Field(0.5, gt=0, description="Longest a record waits to be written.")
    max_buffered_records: int = Field(
        50_000, gt=0, description="Records kept in memory during an outage before spilling."
    )
    journal_path: str | None = Field(
        None,
        description="File that holds unwritten usage records during a database outage; "
        "unset: next to the SQLite file, or ./gateway-usage.journal.",
    )


RedisFailurePolicy = Literal["local", "allow", "deny"]


class RedisConfig(_Section):
    url: str | None = None  # unset: limits and cache are per process
    prefix: str = Field("llmgw", min_length=1, description="Prefix of every Redis key.")
    on_unavailable: RedisFailurePolicy = Field(
        "local",
        description="When Redis cannot be reached: 'local' enforces limits per process "
        "until it returns, 'allow' admits without limits, 'deny' refuses with 503.",
    )

    @field_validator("url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # "url: ${REDIS_URL}" with the variable unset means "no Redis", not Redis at "".
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def enabled(self) -> bool:
        return self.url is not None


class StatusConfig(_Section):
    """Provider health checks and the live status feed (``/api/llm/ws/status``)."""

    interval_seconds: float = Field(30.0, gt=0, description="Periodic status message interval.")
    check_on_startup: bool = Field(True, description="List each provider's models at start-up.")
    startup_check_seconds: float = Field(
        3.0, gt=0, description="Start-up never waits longer than this for provider checks."
    )


class LoggingConfig(_Section):
    level: LogLevel = "INFO"
    loggers: dict[str, LogLevel] = Field(default_factory=dict, description="Level per logger.")

    _upper_level = field_validator("level", mode="before")(_normalise_level)

    @field_validator("loggers", mode="before")
    @classmethod
    def _upper_levels(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _normalise_level(v) for k, v in value.items()}
        return value


# --- providers -------------------------------------------------------------------------


class ProviderBase(_Section):
    """What every provider type accepts.

    ``base_url`` unset means the adapter's default for its type (the provider registry
    owns those URLs). ``models`` lists ids to advertise when the upstream
    cannot list them. Timeouts are seconds.
    """

    base_url: str | None = None
    timeout: float = Field(600.0, gt=0, description="Total seconds for one upstream call.")
    connect_timeout: float = Field(10.0, gt=0)
    first_token_timeout: float | None = Field(
        None, gt=0, description="Seconds to the first streamed event; unset: routing default."
    )
    idle_timeout: float | None = Field(
        None, gt=0, description="Longest silent gap between chunks; unset: routing default."
    )
    headers: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)
    # HTTP/1.1 needs one socket per in-flight call, and a request over the cap waits for a
    # whole stream to end, so the cap is a guard against descriptor exhaustion, not a
    # throttle (rate limits are that).
    max_connections: int = Field(1000, gt=0)
    # Limits of each route on this provider (provider + model), enforced by the router:
    # a route at its limit is skipped like an upstream 429, so fallback still works.
    rpm: int | None = Field(None, gt=0, description="Requests per minute per route.")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute per route.")


class OpenAIProviderConfig(ProviderBase):
    """One model for every OpenAI-wire vendor: they differ only in data (URL, key, quirks)."""

    type: OpenAIWireType
    api_key: SecretStr | None = None
    organization: str | None = None

    @model_validator(mode="after")
    def _compatible_needs_url(self) -> OpenAIProviderConfig:
        if self.type == "openai_compatible" and self.base_url is None:
            raise PydanticCustomError(
                "base_url_required", "base_url is required for type 'openai_compatible'"
            )
        return self


class AnthropicProviderConfig(ProviderBase):
    type: Literal["anthropic"]
    api_key: SecretStr | None = None
    max_tokens: int = Field(4096, gt=0, description="Sent when the caller omits max_tokens.")
    api_version: str = "2023-06-01"


class GeminiProviderConfig(ProviderBase):
    type: Literal["gemini"]
    api_key: SecretStr | None = None


class BedrockProviderConfig(ProviderBase):
    """Credentials left unset come from the standard AWS chain (env, profile, role)."""

    type: Literal["bedrock"]
    region: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = None


class MockProviderConfig(ProviderBase):
    """The built-in deterministic provider: runs with no keys, for demos and tests."""

    type: Literal["mock"]
    models: list[str] = Field(default_factory=lambda: ["mock-1"])
    chunk_delay_ms: float = Field(20.0, ge=0)
    first_token_delay_ms: float = Field(0.0, ge=0)


ProviderConfig = Annotated[
    OpenAIProviderConfig
    | AnthropicProviderConfig
    | GeminiProviderConfig
    | BedrockProviderConfig
    | MockProviderConfig,
    Field(discriminator="type"),
]


def _provider_types() -> tuple[str, ...]:
    union = get_args(ProviderConfig)[0]
    found: list[str] = []
    for member in get_args(union):
        found.extend(get_args(member.model_fields["type"].annotation))
    return tuple(sorted(found))


PROVIDER_TYPES: tuple[str, ...] = _provider_types()
"""Every valid provider ``type``, sorted; used in error messages and docs."""


def is_configured(cfg: ProviderBase) -> bool:
    """Whether a provider has what it needs to be called.

    A missing key is not a config error: the provider is reported NOT_CONFIGURED. ``mock``
    and ``openai_compatible`` (local servers) need no key; Bedrock needs only a region,
    since credentials may come from the AWS chain.
    """
    if isinstance(cfg, MockProviderConfig):
        return True
    if isinstance(cfg, BedrockProviderConfig):
        return cfg.region is not None
    if isinstance(cfg, OpenAIProviderConfig) and cfg.type == "openai_compatible":
        return True
    key: SecretStr | None = getattr(cfg, "api_key", None)
    return key is not None and bool(key.get_secret_value())


# --- models ----------------------------------------------------------------------------


class RouteConfig(_Section):
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0, description="Share of traffic under 'weighted'.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # "groq/llama-3.3-70b" is accepted as {provider: groq, model: llama-3.3-70b}.
        if isinstance(value, str):
            provider, sep, model = value.partition("/")
            if not sep:
                raise PydanticCustomError(
                    "route_shorthand", "a route string must be 'provider/model'"
                )
            return {"provider": provider, "model": model}
        return value


class RetryConfig(_Section):
    """Retries of one route before falling back to the next (full-jitter backoff)."""

    attempts: int = Field(2, ge=1, le=10, description="Tries per route, the first included.")
    base_delay: float = Field(0.2, ge=0, description="Seconds; doubles per retry, jittered.")
    max_delay: float = Field(5.0, ge=0, description="Cap of one backoff sleep (and Retry-After).")


class BreakerConfig(_Section):
    """Circuit breaker per route: fail fast while a route is down, probe after a cooldown."""

    enabled: bool = True
    failures: int = Field(5, ge=1, description="Consecutive failures that open the breaker.")
    failure_ratio: float | None = Field(
        None, gt=0, le=1, description="Or: open when this share of the window failed."
    )
    window: int = Field(20, ge=2, description="Calls in the failure-ratio window.")
    cooldown_seconds: float = Field(30.0, gt=0, description="Open time before one probe.")


class HedgeConfig(_Section):
    """Hedged requests: start the next route if the first has not produced a token yet."""

    after_ms: float | Literal["p95"] = Field(
        "p95", description="Fixed delay, or the first route's own p95 time to first token."
    )
    min_delay_ms: float = Field(50.0, ge=0, description="Floor for the p95 delay.")


class ModelConfig(_Section):
    routes: list[RouteConfig] = Field(min_length=1)
    strategy: Strategy = "ordered"
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="Request parameters applied when the caller omits them."
    )
    max_tokens_cap: int | None = Field(None, gt=0)
    # One overall deadline per request, retries and fallbacks included.
    timeout: float = Field(300.0, gt=0, description="Seconds for the whole request.")
    first_token_timeout: float | None = Field(
        None, gt=0, description="Overrides the providers' first-token timeout for this model."
    )
    idle_timeout: float | None = Field(
        None, gt=0, description="Overrides the providers' idle timeout for this model."
    )
    retries: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    hedge: HedgeConfig | None = None


# --- model table -----------------------------------------------------------------------


class ModelPricesConfig(_Section):
    """Prices in USD per 1M tokens; unset keeps the shipped value (or leaves it unknown)."""

    input: float | None = Field(None, ge=0, description="Uncached prompt tokens.")
    output: float | None = Field(None, ge=0, description="Completion tokens, reasoning included.")
    cached_input: float | None = Field(None, ge=0, description="Prompt tokens read from a cache.")
    cache_write: float | None = Field(None, ge=0, description="Prompt tokens written to a cache.")


class LongContextPricesConfig(ModelPricesConfig):
    """A price tier for the whole request once its prompt exceeds ``threshold`` tokens."""

    threshold: int = Field(gt=0, description="Prompt tokens above which these prices apply.")


class ModelCapabilitiesConfig(_Section):
    """What the route can honour; unset keeps the shipped value (or leaves it unknown)."""

    tools: bool | None = None
    vision: bool | None = None
    json_mode: bool | None = None
    reasoning: bool | None = None
    coding: bool | None = None
    embeddings: bool | None = None


class ModelTableEntryConfig(_Section):
    """A partial model-table entry, merged field by field over the shipped one."""

    context_window: int | None = Field(None, gt=0, description="Prompt plus completion tokens.")
    max_output_tokens: int | None = Field(None, gt=0)
    prices: ModelPricesConfig = Field(default_factory=ModelPricesConfig)
    long_context: LongContextPricesConfig | None = None
    capabilities: ModelCapabilitiesConfig = Field(default_factory=ModelCapabilitiesConfig)
    notes: str | None = None

    @model_validator(mode="after")
    def _output_fits_window(self) -> ModelTableEntryConfig:
        window, output = self.context_window, self.max_output_tokens
        if window is not None and output is not None and output > window:
            raise PydanticCustomError(
                "output_exceeds_window",
                "max_output_tokens ({output}) exceeds context_window ({window})",
                {"output": output, "window": window},
            )
        return self


def model_table_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid ``model_table`` key (``<provider_type>/<model>``), or None."""
    provider_type, sep, model = key.partition("/")
    if not sep or not provider_type or not model.strip():
        return "a model_table key must be '<provider_type>/<model>', e.g. 'openai/gpt-4o'"
    if provider_type not in PROVIDER_TYPES:
        return f"unknown provider type {provider_type!r}; valid types: {', '.join(PROVIDER_TYPES)}"
    return None


# --- the whole file --------------------------------------------------------------------


class GatewayConfig(_Section):
    """The one resolved configuration the app is built from: ``create_app(config)``."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    status: StatusConfig = Field(default_factory=StatusConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # Extends or overrides the shipped model table (context windows, prices, capabilities),
    # keyed "<provider_type>/<model>".
    model_table: dict[str, ModelTableEntryConfig] = Field(default_factory=dict)

    # Where this config came from, for start-up lines and reload; set by the loader.
    _sources: tuple[str, ...] = PrivateAttr(default=())
    _source_paths: tuple[Path, ...] = PrivateAttr(default=())

    @field_validator("providers", "models", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        # "providers:" with nothing under it parses as None; treat it as no entries.
        return {} if value is None else value

    @field_validator("model_table", mode="before")
    @classmethod
    def _null_table_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("model_table")
    @classmethod
    def _check_table_keys(
        cls, value: dict[str, ModelTableEntryConfig]
    ) -> dict[str, ModelTableEntryConfig]:
        problems = [
            ConfigProblem((key,), message)
            for key in value
            if (message := model_table_key_problem(key)) is not None
        ]
        if problems:
            raise ReferenceErrors(problems)
        return value

    @model_validator(mode="after")
    def _check_references(self) -> GatewayConfig:
        models = {
            name: {"routes": [{"provider": r.provider} for r in model.routes]}
            for name, model in self.models.items()
        }
        problems = reference_problems(self.providers, models)
        if problems:
            raise ReferenceErrors(problems)
        return self

    @property
    def sources(self) -> tuple[str, ...]:
        """The files merged into this config, base first; empty for built-in defaults."""
        return self._sources

    @property
    def source_paths(self) -> tuple[Path, ...]:
        """Absolute paths of ``sources``: what a reload or a worker process re-reads."""
        return self._source_paths

    def configured_providers(self) -> list[str]:
        return [name for name, cfg in self.providers.items() if is_configured(cfg)]


def reference_problems(providers: Any, models: Any) -> list[ConfigProblem]:
    """Cross-field problems: provider names, and routes naming unknown providers.

    Works on raw (unvalidated) data as well as on validated sections, so the loader can
    report these alongside field errors instead of only after every field is fixed.
    """
    if not isinstance(providers, dict):
        return []
    problems: list[ConfigProblem] = []
    for name in providers:
        if not isinstance(name, str) or not name or "/" in name:
            message = "a provider name must be non-empty and contain no '/'"
            problems.append(ConfigProblem(("providers", str(name)), message))
    if not isinstance(models, dict):
        return problems
    known = ", ".join(str(p) for p in providers) or "(none)"
    for model_name, model in models.items():
        routes = model.get("routes") if isinstance(model, dict) else None
        if not isinstance(routes, list):
            continue
        for i, route in enumerate(routes):
            if isinstance(route, dict):
                provider = route.get("provider")
            elif isinstance(route, str) and "/" in route:
                provider = route.partition("/")[0]
            else:
                continue
            if isinstance(provider, str) and provider and provider not in providers:
                problems.append(
                    ConfigProblem(
                        ("models", str(model_name), "routes", i, "provider"),
                        f"unknown provider {provider!r}; configured: {known}",
                    )
                )
    return problems
