"""The ``llm-gateway`` command line. One module per command group; this file wires them."""

from __future__ import annotations

import click

from llm_gateway import __version__
from llm_gateway.cli.check_config import check_config
from llm_gateway.cli.keys import keys
from llm_gateway.cli.serve import serve
from llm_gateway.cli.usage import usage


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="llm-gateway")
def cli() -> None:
    """LLM Gateway: one fast OpenAI- and Anthropic-compatible API for every LLM provider."""


cli.add_command(serve)
cli.add_command(check_config)
cli.add_command(keys)
cli.add_command(usage)


def main() -> None:
    """Console-script entry point (``llm-gateway``)."""
    cli(prog_name="llm-gateway")
