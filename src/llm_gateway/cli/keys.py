"""``llm-gateway keys create|list|revoke``: manage virtual keys through the admin API.

The secret of a new key is printed once, by ``create``; nothing else can show it again
(only its hash is stored). ``--json`` prints the admin API's answer as it is, for scripts.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from llm_gateway.cli.admin_client import AdminClient, admin_options, call, key_id_param


def _metadata(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[name.strip()] = value
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "*"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _date(value: str | None) -> str:
    """``2026-01-05T09:30:00.123Z`` as ``2026-01-05 09:30``: enough for a table."""
    if not value:
        return "-"
    return value.replace("T", " ")[:16]


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


@click.group()
def keys() -> None:
    """Create, list and revoke virtual API keys (needs the admin key)."""


@keys.command("create")
@click.argument("name")
@click.option("--owner", help="Who the key belongs to.")
@click.option("--team", help="The owner's team.")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="GLOB",
    help="Allowed model (glob, e.g. 'gpt-4o*'); repeat for more. Default: every model.",
)
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute.")
@click.option("--budget", type=click.FloatRange(min=0), help="Spend limit in USD per period.")
@click.option(
    "--period",
    type=click.Choice(["daily", "monthly", "total"]),
    default="total",
    show_default=True,
    help="The budget's period (daily and monthly start at 00:00 UTC).",
)
@click.option(
    "--expires-in-days",
    type=click.FloatRange(min=0, min_open=True, max=36500),
    help="Expire after N days.",
)
@click.option(
    "--metadata",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_metadata,
    help="A label to store with the key; repeat for more.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON answer.")
@admin_options
def create(
    name: str,
    owner: str | None,
    team: str | None,
    models: tuple[str, ...],
    rpm: int | None,
    tpm: int | None,
    budget: float | None,
    period: str,
    expires_in_days: float | None,
    metadata: dict[str, str],
    as_json: bool,
    url: str,
    admin_key: str | None,
) -> None:
    """Create a key called NAME and print it (this is the only time it is shown)."""
    body: dict[str, Any] = {"name": name, "budget_period": period}
    optional = {
        "owner": owner,
        "team": team,
        "rpm": rpm,
        "tpm": tpm,
        "budget": budget,
        "expires_in_days": expires_in_days,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if models:
        body["allowed_models"] = list(models)
    if metadata:
        body["metadata"] = metadata
    created = call(AdminClient(url, admin_key), "POST", "/admin/keys", body=body)
    if as_json:
        click.echo(json.dumps(created, indent=2))
        return
    click.echo(f"Created key {created['id']} ({created['name']}).")
    click.echo(created["key"])
    click.echo("Store it now: it cannot be shown again.", err=True)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON answer.")
@admin_options
def list_keys(as_json: bool, url: str, admin_key: str | None) -> None:
    """List every key (prefix, status, limits); never the secrets."""
    answer = call(AdminClient(url, admin_key), "GET", "/admin/keys")
    data: list[dict[str, Any]] = answer["data"]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if not data:
        click.echo("No keys yet. Create one with: llm-gateway keys create NAME")
        return
    headers = ["ID", "NAME", "PREFIX", "STATUS", "OWNER", "TEAM", "MODELS", "RPM", "TPM"]
    headers += ["BUDGET", "EXPIRES"]
    rows = []
    for k in data:
        budget = "-" if k["budget"] is None else f"{k['budget']:g}/{k['budget_period']}"
        rows.append(
            [
                k["id"],
                k["name"],
                k["prefix"],
                k["status"],
                _cell(k["owner"]),
                _cell(k["team"]),
                _cell(k["allowed_models"]),
                _cell(k["rpm"]),
                _cell(k["tpm"]),
                budget,
                _date(k["expires_at"]),
            ]
        )
    click.echo(table(rows, headers))


@keys.command("revoke")
@click.argument("key_id", metavar="ID", callback=key_id_param)
@admin_options
def revoke(key_id: str, url: str, admin_key: str | None) -> None:
    """Revoke the key with this ID (see ``keys list``); it stops working at once."""
    key = call(AdminClient(url, admin_key), "DELETE", f"/admin/keys/{quote(key_id, safe='')}")
    click.echo(f"Revoked key {key['id']} ({key['name']}).")


__all__ = ["keys", "table"]
