"""Whether a host name or address is this machine: the one test behind open mode's rules
(the bind address at start-up, and each request's ``Host`` and ``Origin``)."""

from __future__ import annotations

import ipaddress

_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """localhost (and ``*.localhost``), 127.0.0.0/8 and ::1, bracketed or not."""
    name = host.strip().lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    if name.startswith("127.") or ":" in name:  # the only forms that can be loopback IPs
        try:
            return ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            return False
    return False


__all__ = ["is_loopback"]
