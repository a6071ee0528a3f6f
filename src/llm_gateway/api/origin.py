"""Open mode's guard against other websites: loopback ``Host`` and ``Origin`` only.

Open mode (no admin key, no virtual keys) serves anyone who can reach the socket, and the
server refuses to bind anything but loopback then. That alone does not stop a web page in
the user's browser: browsers apply no CORS to WebSockets, a page may send "simple"
cross-origin POSTs, and DNS rebinding points an attacker's host name at 127.0.0.1. Such
requests carry the attacker's name in ``Host`` (rebinding) or ``Origin`` (cross-site), so
in open mode a request is served only when its ``Host`` is a loopback name and its
``Origin``, when present, is a loopback origin. Clients that are not browsers (SDKs, curl)
send a loopback ``Host`` and no ``Origin``, and pass.

The caller decides when to check (only in open mode: ``gate.open_mode``); the check is one
scan over the headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_gateway.gate.loopback import is_loopback


def _host_part(authority: str) -> str:
    """``host`` from ``host[:port]`` (IPv6 in brackets), lower-cased, without a final dot."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        return authority[: end + 1] if end != -1 else authority
    return authority.rpartition(":")[0] if ":" in authority else authority


def loopback_host(name: str) -> bool:
    """Whether a host name (no port) is this machine (see ``gate.loopback``)."""
    return is_loopback(name)


def loopback_origin(origin: str) -> bool:
    """Whether an ``Origin`` value (``scheme://host[:port]``) is a loopback origin.
    ``null`` (sandboxed frames, some file pages) is refused: it could be any site."""
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return False
    return loopback_host(_host_part(rest.split("/", 1)[0]))


def loopback_request_ok(scope: Mapping[str, Any]) -> bool:
    """For open mode: ``Host`` (when sent) names loopback and ``Origin`` (when sent) is a
    loopback origin. Works on HTTP and WebSocket scopes alike."""
    for name, value in scope["headers"]:
        if name == b"host":
            if not loopback_host(_host_part(value.decode("latin-1"))):
                return False
        elif name == b"origin" and not loopback_origin(value.decode("latin-1").strip()):
            return False
    return True


__all__ = ["loopback_host", "loopback_origin", "loopback_request_ok"]
