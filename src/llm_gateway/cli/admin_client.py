"""A tiny synchronous client for a running gateway's admin API, for the CLI.

The CLI never opens the database itself: ``keys`` and ``usage`` go through
``/admin/...`` so a command works the same against an embedded SQLite gateway and a
fleet on Postgres, and every rule (admin key, validation, snapshot refresh across
replicas) lives in one place. ``urllib.request`` is enough for a handful of JSON calls
and keeps the CLI's start-up free of an HTTP library import.

Every failure becomes ``AdminError`` with a message meant for a person; the admin key
is sent only in the ``Authorization`` header and never appears in a message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "LLM_GATEWAY_URL"
ADMIN_KEY_ENV = "LLM_GATEWAY_ADMIN_KEY"
SECRET_PREFIX = "sk-gw-"  # what every virtual key starts with (gate.keys.KEY_PREFIX)

F = TypeVar("F", bound=Callable[..., Any])


class AdminError(Exception):
    """The call failed; ``str(error)`` says why in words, ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _error_message(raw: bytes) -> str:
    """The ``message`` of an OpenAI- or Anthropic-shaped error body, else the body."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:300] or "no details"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"])
    return str(body)[:300]


class AdminClient:
    def __init__(self, url: str, admin_key: str | None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._admin_key = admin_key
        self.timeout = timeout

    def __repr__(self) -> str:  # never show the key, even in a debugger or a traceback
        return f"AdminClient(url={self.url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer."""
        target = self.url + path
        if query:
            params = {k: str(v) for k, v in query.items() if v is not None}
            if params:
                target += "?" + urllib.parse.urlencode(params)
        headers = {"accept": "application/json", "user-agent": "llm-gateway-cli"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self._admin_key:
            headers["authorization"] = f"Bearer {self._admin_key}"
        request = urllib.request.Request(target, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._refused(exc.code, exc.read()) from None
        except TimeoutError:
            raise AdminError(
                f"The gateway at {self.url} did not answer within {self.timeout:g}s."
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminError(
                f"Cannot reach the gateway at {self.url} ({reason}). Is it running? "
                f"Point to it with --url or {URL_ENV}."
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise AdminError(
                f"The server at {self.url} answered {path} with something other than JSON; "
                "is this an LLM gateway?"
            ) from None

    def _refused(self, status: int, raw: bytes) -> AdminError:
        detail = _error_message(raw)
        if status == 401:
            hint = (
                "the admin key is wrong"
                if self._admin_key
                else f"an admin key is required: pass --admin-key or set {ADMIN_KEY_ENV}"
            )
            return AdminError(f"The gateway refused the request (401: {detail}); {hint}.", 401)
        if status == 403:
            return AdminError(
                f"The gateway refused the request (403: {detail}); use the admin key, "
                "not a virtual key.",
                403,
            )
        return AdminError(f"{status}: {detail}", status)


def admin_options(command: F) -> F:
    """``--url`` and ``--admin-key`` (with their environment variables) for a command."""
    command = click.option(
        "--admin-key",
        envvar=ADMIN_KEY_ENV,
        show_envvar=True,
        default=None,
        help="The gateway's admin key.",
    )(command)
    command = click.option(
        "--url",
        envvar=URL_ENV,
        show_envvar=True,
        default=DEFAULT_URL,
        show_default=True,
        help="Base URL of the running gateway.",
    )(command)
    return command


def key_id_param(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A key id option or argument; refuses the secret itself before it can reach a URL
    (and so the server's access logs)."""
    if value is not None and value.startswith(SECRET_PREFIX):
        raise click.BadParameter(
            "this takes the key's id (key_...), not the key itself; "
            "`llm-gateway keys list` shows the ids."
        )
    return value


def call(client: AdminClient, method: str, path: str, **kwargs: Any) -> Any:
    """``client.request`` with failures turned into a clean CLI error (exit code 1)."""
    try:
        return client.request(method, path, **kwargs)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None


__all__ = [
    "ADMIN_KEY_ENV",
    "DEFAULT_URL",
    "URL_ENV",
    "AdminClient",
    "AdminError",
    "admin_options",
    "call",
    "key_id_param",
]
