"""What every HTTP adapter shares at its edge: transport errors mapped to the gateway's
error tree, header layering, and draining a finished stream so its socket is reused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from llm_gateway.core.errors import (
    ConnectTimeoutError,
    GatewayError,
    IdleTimeoutError,
    ProviderUnavailableError,
    TotalTimeoutError,
    UpstreamError,
)
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ModelInfo
from llm_gateway.http.client import HttpClient, HttpStream
from llm_gateway.http.errors import (
    ConnectError,
    ConnectTimeout,
    DeadlineExceeded,
    FirstByteTimeout,
    HttpError,
    ReadTimeout,
)

DRAIN_SECONDS = 1.0

S = TypeVar("S")
_decode = msgspec.json.decode


def transport_error(exc: HttpError, provider: str) -> GatewayError:
    """A transport failure as a gateway error: where it broke decides the class."""
    if isinstance(exc, ConnectTimeout):
        return ConnectTimeoutError(f"connect timeout: {exc.message}", provider=provider)
    if isinstance(exc, ConnectError):
        return ProviderUnavailableError(f"upstream unreachable: {exc.message}", provider=provider)
    if isinstance(exc, DeadlineExceeded):
        return TotalTimeoutError(f"the request's deadline passed: {exc.message}", provider=provider)
    if isinstance(exc, FirstByteTimeout):
        # The provider's own ``timeout`` for one upstream call ran out before any answer.
        return TotalTimeoutError(f"upstream did not answer: {exc.message}", provider=provider)
    if isinstance(exc, ReadTimeout):
        return IdleTimeoutError(f"upstream went silent: {exc.message}", provider=provider)
    # RemoteProtocolError and anything else: the answer was cut short or not HTTP.
    return UpstreamError(f"upstream connection failed: {exc.message}", provider=provider)


async def drain(response: HttpStream) -> None:
    """Read the (normally empty) rest of the body after the end of a stream so the socket
    can go back to the pool. Bounded: a server that idles after its last event costs a
    socket, not the caller's time."""
    with contextlib.suppress(HttpError, TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in response.iter_bytes():
                pass


def merge_headers(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """Later layers win, compared case-insensitively (config ``x-title`` beats a default
    ``X-Title``); names keep the spelling of the layer that set them."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in (layer or {}).items():
            merged[name.lower()] = (name, value)
    return dict(merged.values())


def decode_event(
    data: str,
    convert: Callable[[Any, S], list[StreamEvent]],
    state: S,
    provider: str,
) -> list[StreamEvent]:
    """One streamed JSON payload to core events, with one error rule for every wire: bad
    JSON or a payload of the wrong shape is a malformed chunk (an ``UpstreamError``), and
    errors the converter raises are tagged with the provider."""
    try:
        payload: Any = _decode(data)
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"malformed stream chunk: {data[:200]!r}", provider=provider) from exc
    try:
        return convert(payload, state)
    except GatewayError as exc:
        exc.provider = provider
        raise
    except (AttributeError, TypeError, KeyError) as exc:
        # A payload of the wrong shape (e.g. ``choices`` not a list of objects).
        raise UpstreamError(f"malformed stream chunk: {data[:200]!r}", provider=provider) from exc


async def fetch_models(
    client: HttpClient,
    path: str,
    headers: Mapping[str, str],
    *,
    provider: str,
    configured: Sequence[str],
    error_from_wire: Callable[[int, Mapping[str, str], bytes, str], GatewayError],
    models_from_wire: Callable[[Any, str], list[ModelInfo]],
) -> list[ModelInfo]:
    """The upstream's model list, or the configured ``models`` when the listing fails or
    is empty (a listing is a convenience: a provider that cannot list still serves)."""
    fallback = [ModelInfo(id=m, owned_by=provider) for m in configured]
    try:
        response = await client.request("GET", path, headers=headers)
        if response.status >= 400:
            raise error_from_wire(response.status, response.headers, response.body, provider)
        try:
            models = models_from_wire(response.json(), provider)
        except (msgspec.DecodeError, UpstreamError) as exc:
            raise UpstreamError(f"invalid model list: {exc}", provider=provider) from exc
    except HttpError as exc:
        if fallback:
            return fallback
        raise transport_error(exc, provider) from exc
    except GatewayError:
        if fallback:
            return fallback
        raise
    return models or fallback
