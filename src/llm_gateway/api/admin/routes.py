"""``/admin/keys`` and ``/admin/usage``: manage virtual keys and read the usage ledger.

Every route is guarded by ``gate.require_admin`` (the admin key; in open mode a local
caller, which is the gate's rule, not this module's). Handlers are thin: validate, call
the storage, tell the gateway the keys changed, encode. The database is touched only
here, off the request hot path; the hot path reads the key snapshot that
``keys_changed`` refreshes (and broadcasts to other replicas).

Errors are ``GatewayError``s, so they render in the OpenAI error shape like every other
endpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Query, Request

from llm_gateway.api.admin.errors import KeyNotFoundError, OpenModeKeyError, storage_down
from llm_gateway.api.admin.inputs import apply_update, check_key_id, expiry, parse_time
from llm_gateway.api.admin.usage_wire import UsagePage, UsageRecordView, UsageTotalsView
from llm_gateway.api.admin.wire import (
    KEY_LIST_EXAMPLE,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeySpend,
    KeyUpdate,
    KeyView,
    moment,
)
from llm_gateway.core.errors import InvalidRequestError
from llm_gateway.core.records import VirtualKey
from llm_gateway.gate.gate import Caller, Gate, period_id
from llm_gateway.gate.keys import mint_key
from llm_gateway.storage.base import Storage, StorageUnavailableError, UsageQuery

log = logging.getLogger("llm_gateway.admin")

MAX_PAGE = 1000


class AdminState(Protocol):
    """What the admin API needs from the gateway (``GatewayState`` provides it)."""

    @property
    def gate(self) -> Gate: ...

    @property
    def storage(self) -> Storage: ...

    async def keys_changed(self) -> None:
        """Reload the key snapshot into the gate and tell the other replicas."""


def admin_routes(state: AdminState, clock: Callable[[], float] = time.time) -> APIRouter:
    """The admin router; include it in the FastAPI app."""

    def require_admin(request: Request) -> Caller:
        return state.gate.require_admin(request.scope)

    router = APIRouter(
        prefix="/admin",
        tags=["Admin"],
        dependencies=[Depends(require_admin)],
        responses={
            401: {"description": "Missing or invalid key"},
            403: {"description": "Not the admin key"},
            503: {"description": "The database is unreachable"},
        },
    )

    async def find(key_id: str) -> VirtualKey:
        check_key_id(key_id, "id")
        try:
            key = await state.storage.get_key(key_id)
        except StorageUnavailableError as exc:
            raise storage_down(exc) from None
        if key is None:
            raise KeyNotFoundError(f"No key with id '{key_id}'.", param="id")
        return key

    async def announce(action: str, key: VirtualKey) -> None:
        # Logs name the key by id and its public prefix only, never the secret.
        log.info("admin: key %s %s (name=%r, prefix=%s)", key.id, action, key.name, key.prefix)
        try:
            await state.keys_changed()
        except Exception as exc:  # the change is stored; the periodic refresh catches up
            log.warning(
                "admin: key %s %s but the key snapshot refresh failed (%s); it will be "
                "picked up by the next periodic refresh",
                key.id,
                action,
                type(exc).__name__,
            )

    @router.post(
        "/keys",
        status_code=201,
        response_model=KeyCreated,
        summary="Create a virtual key (the secret is shown once, in this response)",
    )
    async def create_key(body: KeyCreate) -> KeyCreated:
        if state.gate.open_mode:
            # The first key ends open mode; with no admin key configured nobody could
            # list, change or revoke keys afterwards. Refuse rather than lock the
            # operator out of their own gateway.
            raise OpenModeKeyError(
                "No admin key is configured: creating a key would end open mode and leave "
                "nobody able to manage keys. Set auth.admin_key (or LLM_GATEWAY_ADMIN_KEY), "
                "restart, then create keys with it."
            )
        now = clock()
        expires_at = expiry(body, now)
        if expires_at is not None and expires_at <= now:
            raise InvalidRequestError("'expires_at' is in the past.", param="expires_at")
        secret, key = mint_key(
            body.name,
            owner=body.owner,
            team=body.team,
            allowed_models=body.allowed_models or (),
            rpm=body.rpm,
            tpm=body.tpm,
            budget=body.budget,
            budget_period=body.budget_period or "total",
            metadata=body.metadata,
            expires_at=expires_at,
            now=now,
        )
        try:
            await state.storage.add_key(key)
        except StorageUnavailableError as exc:
            raise storage_down(exc) from None
        await announce("created", key)
        view = KeyView.of(key, now)
        return KeyCreated(key=secret, **view.model_dump())

    @router.get(
        "/keys",
        response_model=KeyList,
        summary="List keys (never their secrets)",
        responses={
            200: {
                "description": "Every key, oldest first",
                "content": {"application/json": {"example": KEY_LIST_EXAMPLE}},
            }
        },
    )
    async def list_keys() -> KeyList:
        try:
            keys = await state.storage.list_keys()
        except StorageUnavailableError as exc:
            raise storage_down(exc) from None
        now = clock()
        return KeyList(data=[KeyView.of(k, now) for k in keys])

    @router.get("/keys/{key_id}", response_model=KeyView, summary="One key")
    async def get_key(key_id: str) -> KeyView:
        return KeyView.of(await find(key_id), clock())

    @router.patch(
        "/keys/{key_id}",
        response_model=KeyView,
        summary="Change a key's limits, budget, allowed models, metadata or expiry",
    )
    async def update_key(key_id: str, body: KeyUpdate) -> KeyView:
        now = clock()
        updated = apply_update(await find(key_id), body, now)
        try:
            await state.storage.update_key(updated)
        except StorageUnavailableError as exc:
            raise storage_down(exc) from None
        await announce("updated", updated)
        return KeyView.of(updated, now)

    @router.delete("/keys/{key_id}", response_model=KeyView, summary="Revoke a key")
    async def revoke_key(key_id: str) -> KeyView:
        now = clock()
        check_key_id(key_id, "id")
        try:
            found = await state.storage.revoke_key(key_id, now)
        except StorageUnavailableError as exc:
            raise storage_down(exc) from None
        if not found:
            raise KeyNotFoundError(f"No key with id '{key_id}'.", param="id")
        key = await find(key_id)
        await announce("revoked", key)
        return KeyView.of(key, now)

    @router.get(
        "/keys/{key_id}/spend",
        response_model=KeySpend,
        summary="A key's spend in its current budget period",
    )
    async def key_spend(key_id: str) -> KeySpend:
        key = await find(key_id)
        period, start = period_id(key.budget_period, clock())
        try:
            spend = (await state.storage.spend_by_key({key.id: start})).get(key.id, 0.0)
        except StorageUnavailableError as exc:
            raise storage_down(exc) from None
        remaining = None if key.budget is None else max(key.budget - spend, 0.0)
        return KeySpend(
            key_id=key.id,
            budget_period=key.budget_period,
            period=period,
            period_start=moment(start),
            spend=spend,
            budget=key.budget,
            remaining=remaining,
        )

    @router.get(
        "/usage",
        response_model=UsagePage,
        summary="Usage records (newest first) and totals, filtered by key, model and time",
    )
    async def usage(
        key_id: Annotated[str | None, Query(description="Only this key's records.")] = None,
        model: Annotated[str | None, Query(description="The model clients asked for.")] = None,
        since: Annotated[
            str | None, Query(description="Inclusive; ISO-8601 or Unix epoch seconds.")
        ] = None,
        until: Annotated[
            str | None, Query(description="Exclusive; ISO-8601 or Unix epoch seconds.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> UsagePage:
        if key_id:
            check_key_id(key_id, "key_id")
        query = UsageQuery(
            key_id=key_id or None,
            model=model or None,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            limit=limit,
            offset=offset,
        )
        try:
            records = await state.storage.query_usage(query)
            totals = await state.storage.usage_totals(query)
        except StorageUnavailableError as exc:
            raise storage_down(exc) from None
        return UsagePage(
            totals=UsageTotalsView.of(totals),
            records=[UsageRecordView.of(r) for r in records],
            limit=limit,
            offset=offset,
        )

    return router


__all__ = ["AdminState", "admin_routes"]
