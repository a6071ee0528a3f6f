"""``llm-gateway usage``: totals and recent requests from the usage ledger (admin API)."""

from __future__ import annotations

import json
from typing import Any

import click

from llm_gateway.cli.admin_client import AdminClient, admin_options, call, key_id_param
from llm_gateway.cli.keys import table


def _tokens(record: dict[str, Any]) -> str:
    return f"{record['prompt_tokens']}/{record['completion_tokens']}"


def _totals_lines(totals: dict[str, Any]) -> list[str]:
    return [
        f"Requests:  {totals['requests']} ({totals['errors']} errors, "
        f"{totals['cache_hits']} cache hits)",
        f"Tokens:    {totals['prompt_tokens']} prompt, {totals['completion_tokens']} completion"
        f" ({totals['cached_tokens']} cached, {totals['reasoning_tokens']} reasoning)",
        f"Cost:      ${totals['cost']:.6f}",
    ]


@click.command()
@click.option(
    "--key", "key_id", metavar="ID", callback=key_id_param, help="Only this key's requests."
)
@click.option("--model", help="Only requests for this model (as clients named it).")
@click.option("--since", metavar="TIME", help="From this time: ISO-8601 or Unix seconds.")
@click.option("--until", metavar="TIME", help="Before this time: ISO-8601 or Unix seconds.")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="How many recent records to list.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON answer.")
@admin_options
def usage(
    key_id: str | None,
    model: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
    url: str,
    admin_key: str | None,
) -> None:
    """Show usage totals and the most recent requests (needs the admin key)."""
    query = {"key_id": key_id, "model": model, "since": since, "until": until, "limit": limit}
    page = call(AdminClient(url, admin_key), "GET", "/admin/usage", query=query)
    if as_json:
        click.echo(json.dumps(page, indent=2))
        return
    for line in _totals_lines(page["totals"]):
        click.echo(line)
    records: list[dict[str, Any]] = page["records"]
    if not records:
        click.echo("No requests recorded for these filters.")
        return
    click.echo("")
    rows = [
        [
            r["created_at"].replace("T", " ")[:19],
            r["request_id"],
            r["key_id"] or "-",
            r["model"],
            str(r["status"]),
            _tokens(r),
            f"{r['cost']:.6f}",
            f"{r['latency_ms']:.0f}",
        ]
        for r in records
    ]
    headers = ["TIME (UTC)", "REQUEST", "KEY", "MODEL", "STATUS", "TOKENS IN/OUT", "COST $"]
    click.echo(table(rows, [*headers, "MS"]))


__all__ = ["usage"]
