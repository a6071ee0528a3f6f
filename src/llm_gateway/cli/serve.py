"""``llm-gateway serve``: load the config, then run the app under uvicorn.

The config is loaded and validated here, before uvicorn starts, so a bad file fails fast
with exit code 2 and a precise message instead of a traceback from a worker.

With ``--workers N`` uvicorn needs an import string, so each worker rebuilds the app
through ``llm_gateway.app:app_from_env``. This process exports what it resolved as
``LLM_GATEWAY_*`` variables (config path, and any CLI flags) so every worker loads the
very same config; ``.env`` and ``LLM_GATEWAY_ENV`` are inherited as they are.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import click

from llm_gateway.cli.summary import startup_line
from llm_gateway.config import ConfigError, GatewayConfig, load_config
from llm_gateway.settings import ENV_PREFIX

WORKER_FACTORY = "llm_gateway.app:app_from_env"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def cli_overrides(host: str | None, port: int | None, log_level: str | None) -> dict[str, Any]:
    """CLI flags shaped like the YAML, to merge over everything else."""
    out: dict[str, Any] = {}
    if host is not None:
        out.setdefault("server", {})["host"] = host
    if port is not None:
        out.setdefault("server", {})["port"] = port
    if log_level is not None:
        out["logging"] = {"level": log_level.upper()}
    return out


def worker_environment(config: GatewayConfig) -> dict[str, str]:
    """Variables that make ``load_config()`` in a worker return this same config."""
    env = {
        ENV_PREFIX + "HOST": config.server.host,
        ENV_PREFIX + "PORT": str(config.server.port),
        ENV_PREFIX + "LOG_LEVEL": config.logging.level,
    }
    if config.source_paths:
        env[ENV_PREFIX + "CONFIG"] = str(config.source_paths[0])
    return env


def uvicorn_options(config: GatewayConfig) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` common to one and many workers."""
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    return {
        "host": config.server.host,
        "port": config.server.port,
        "loop": "uvloop" if has_uvloop else "auto",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,  # request logging is ours: structured, with request ids
        "log_level": config.logging.level.lower(),
        "timeout_graceful_shutdown": round(config.server.graceful_shutdown_seconds),
    }


def workers_warning(config: GatewayConfig, workers: int) -> str | None:
    """What goes wrong with several workers and no Redis, or None when nothing does.

    Without Redis each worker counts rate limits and budgets in its own memory, so the
    effective limits are multiplied by the number of workers, and a revoked key keeps
    working in the other workers until their next key refresh.
    """
    if workers <= 1 or config.redis.url:
        return None
    refresh = config.auth.keys_refresh_seconds
    return (
        f"warning: {workers} workers without redis.url: each worker keeps its own rate "
        f"limits and budgets, so a key may use up to {workers}x its rpm, tpm and budget; "
        f"key changes (revocation included) reach the other workers only at their next "
        f"key refresh (auth.keys_refresh_seconds = {refresh:g} s). Set redis.url "
        f"(LLM_GATEWAY_REDIS_URL) to share them."
    )


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard limit and return it.

    Every proxied call holds two sockets (client and upstream); the usual soft limit of
    1024 would cap the gateway near 500 concurrent streams.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Config file (default: $LLM_GATEWAY_CONFIG, else ./gateway.yaml, else built-in).",
)
@click.option("--host", default=None, help="Bind address (overrides server.host).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port (overrides server.port)."
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default=None,
    help="Log level (overrides logging.level).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes."
)
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    log_level: str | None,
    workers: int,
) -> None:
    """Run the gateway. Exit 2 if the config is invalid."""
    try:
        config = load_config(config_path, overrides=cli_overrides(host, port, log_level))
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None

    import uvicorn  # deferred: check-config and --help should not pay for it

    raise_open_file_limit()

    options = uvicorn_options(config)
    click.echo(startup_line(config), err=True)
    warning = workers_warning(config, workers)
    if warning is not None:
        click.echo(warning, err=True)
    if workers > 1:
        os.environ.update(worker_environment(config))  # inherited by worker processes
        uvicorn.run(WORKER_FACTORY, factory=True, workers=workers, **options)
        return
    from llm_gateway.app import create_app  # deferred: builds the whole app graph

    uvicorn.run(create_app(config), **options)
