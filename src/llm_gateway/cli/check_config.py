"""``llm-gateway check-config``: validate the configuration without starting anything."""

from __future__ import annotations

from pathlib import Path

import click

from llm_gateway.cli.summary import render_summary
from llm_gateway.config import ConfigError, load_config


@click.command("check-config")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Config file (default: $LLM_GATEWAY_CONFIG, else ./gateway.yaml, else built-in).",
)
def check_config(config_path: Path | None) -> None:
    """Validate the config and print its providers and models. Exit 1 if invalid."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    click.echo(render_summary(config))
