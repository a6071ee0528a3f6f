"""Human-readable views of a loaded config: the check-config report and the start-up line.

Only names, types, URLs (with any password masked) and states are shown: never a key.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from llm_gateway.config import GatewayConfig, ProviderBase, is_configured

CONFIGURED = "configured"
NOT_CONFIGURED = "NOT_CONFIGURED"


def describe_sources(config: GatewayConfig) -> str:
    """``gateway.yaml + gateway.prod.yaml``, or ``built-in defaults`` with no file."""
    return " + ".join(config.sources) if config.sources else "built-in defaults"


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``; other URLs unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def provider_state(cfg: ProviderBase) -> str:
    if is_configured(cfg):
        return CONFIGURED
    missing = "region" if getattr(cfg, "type", "") == "bedrock" else "api_key"
    return f"{NOT_CONFIGURED} (no {missing})"


def render_summary(config: GatewayConfig) -> str:
    """The multi-line report ``check-config`` prints for a valid config."""
    lines = [f"config: {describe_sources(config)}: OK"]
    server = config.server
    lines.append(f"server: http://{server.host}:{server.port}")
    lines.append(f"storage: {mask_url(config.storage.url)}")
    redis = mask_url(config.redis.url) if config.redis.url else "off (per-process limits and cache)"
    lines.append(f"redis: {redis}")
    admin = "admin key set" if config.auth.admin_key is not None else "no admin key"
    lines.append(f"auth: {admin}")
    lines.append(f"providers ({len(config.providers)}):")
    width = max((len(n) for n in config.providers), default=0)
    type_width = max((len(p.type) for p in config.providers.values()), default=0)
    for name, cfg in config.providers.items():
        lines.append(f"  {name:<{width}}  {cfg.type:<{type_width}}  {provider_state(cfg)}")
    lines.append(f"models ({len(config.models)}):")
    width = max((len(n) for n in config.models), default=0)
    for name, model in config.models.items():
        routes = ", ".join(
            _route(r.provider, r.model, r.weight, model.strategy) for r in model.routes
        )
        lines.append(f"  {name:<{width}}  {model.strategy}: {routes}")
    return "\n".join(lines)


def _route(provider: str, model: str, weight: float, strategy: str) -> str:
    text = f"{provider}/{model}"
    return f"{text} (weight {weight:g})" if strategy == "weighted" else text


def startup_line(config: GatewayConfig) -> str:
    """One line: where it listens, where the config came from, which providers work."""
    ready = [n for n, p in config.providers.items() if is_configured(p)]
    idle = [n for n, p in config.providers.items() if not is_configured(p)]
    providers = ", ".join(ready) or "none"
    if idle:
        providers += f"; {NOT_CONFIGURED}: {', '.join(idle)}"
    server = config.server
    return (
        f"llm-gateway listening on http://{server.host}:{server.port} "
        f"(config: {describe_sources(config)}; providers: {providers})"
    )
