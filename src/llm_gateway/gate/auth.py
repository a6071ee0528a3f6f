"""Who is calling and what they may use: the key snapshot, the admin key, the allow-list.

Pure memory work on the request path: one header scan, one sha256 and a dict lookup in
the ``KeyRing`` snapshot (replaced whole on refresh, so a request never sees half an
update), and glob matching of the model allow-list.
"""

from __future__ import annotations

import fnmatch
import hmac
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import msgspec

from llm_gateway.core.errors import AuthenticationError, PermissionDeniedError
from llm_gateway.core.records import VirtualKey
from llm_gateway.gate.keys import KeyRing

Scope = Mapping[str, Any]


class Caller(msgspec.Struct, frozen=True):
    """Who is calling: a virtual key, the admin key, or nobody (open mode)."""

    key: VirtualKey | None = None
    admin: bool = False

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None


OPEN = Caller()
ADMIN = Caller(admin=True)


def bearer(scope: Scope) -> str | None:
    """The secret a request presents: ``Authorization: Bearer``, ``x-api-key``, or (on a
    WebSocket only) ``?token=``."""
    authorization: bytes | None = None
    api_key: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"x-api-key":
            api_key = value
    if authorization is not None:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if api_key is not None and api_key.strip():
        return api_key.decode("latin-1").strip()
    if scope.get("type") == "websocket":
        # Browsers cannot set headers on a WebSocket: the key may come as ?token=.
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token")
        if tokens and tokens[0]:
            return str(tokens[0])
    return None


def key_problem(key: VirtualKey, now: float) -> AuthenticationError | None:
    """Why a stored key may not be used right now (revoked, expired), if it may not."""
    if key.revoked_at is not None:
        return AuthenticationError("This API key has been revoked.", code="revoked_api_key")
    if key.expires_at is not None and now >= key.expires_at:
        return AuthenticationError("This API key has expired.", code="expired_api_key")
    return None


class Authenticator:
    """Authentication and the allow-list; ``Gate`` adds admission and accounting."""

    def __init__(self, *, admin_key: str | None, keys: KeyRing | None = None) -> None:
        self._admin_key = admin_key
        self.keys = keys or KeyRing()

    @property
    def open_mode(self) -> bool:
        """No admin key and no keys: anyone may call (the server refuses non-loopback)."""
        return self._admin_key is None and len(self.keys) == 0

    def set_keys(self, keys: KeyRing) -> None:
        self.keys = keys

    def authenticate(self, scope: Scope) -> Caller:
        """The caller of a request; ``AuthenticationError`` when a key is required and bad."""
        secret = bearer(scope)
        if secret is None:
            if self.open_mode:
                return OPEN
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
                code="missing_api_key",
            )
        admin = self._admin_key
        if admin is not None and hmac.compare_digest(secret.encode(), admin.encode()):
            return ADMIN
        key = self.keys.find(secret)
        if key is None:
            if self.open_mode:
                return OPEN  # open mode ignores whatever key an SDK sends
            raise AuthenticationError("Invalid API key.", code="invalid_api_key")
        if key.revoked_at is not None or key.expires_at is not None:  # most keys: neither
            problem = key_problem(key, time.time())
            if problem is not None:
                raise problem
        return Caller(key=key)

    def recheck(self, caller: Caller) -> Caller:
        """``caller`` against the current key snapshot, for long-lived connections (call it
        before each request): the fresh key (limits, budget and allow-list as they are
        now), or ``AuthenticationError`` once the key is revoked, expired or deleted."""
        key = caller.key
        if key is None:
            return caller
        fresh = self.keys.by_id(key.id)
        if fresh is None:
            raise AuthenticationError("This API key no longer exists.", code="invalid_api_key")
        problem = key_problem(fresh, time.time())
        if problem is not None:
            raise problem
        return caller if fresh is key else Caller(key=fresh)

    def require_admin(self, scope: Scope) -> Caller:
        caller = self.authenticate(scope)
        if caller.admin or (self.open_mode and caller.key is None):
            return caller
        raise PermissionDeniedError("This endpoint needs the admin key.", code="admin_key_required")

    def check_model(self, caller: Caller, model: str) -> None:
        key = caller.key
        if key is None or not key.allowed_models:
            return
        if any(fnmatch.fnmatchcase(model, pattern) for pattern in key.allowed_models):
            return
        raise PermissionDeniedError(
            f"This API key may not use model '{model}'.", param="model", code="model_not_allowed"
        )


__all__ = ["ADMIN", "OPEN", "Authenticator", "Caller", "Scope", "bearer", "key_problem"]
