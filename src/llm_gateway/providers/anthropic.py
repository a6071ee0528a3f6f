"""The adapter for Anthropic's Messages API (``POST /v1/messages``, ``GET /v1/models``).

A thin shell around ``anthropic_wire``: it owns the HTTP exchange and maps failures once,
here at the edge (HTTP statuses by ``anthropic_wire.error_from_wire``, transport failures
exactly as the OpenAI adapter does). The hot path (one call per SSE event) does no
logging and builds no pydantic models: socket bytes → SSE parser → msgspec → event structs.

Authentication: an API key goes in ``x-api-key``. A key that is an OAuth access token
(``sk-ant-oat...``, as issued to Claude subscriptions) is rejected there ("invalid
x-api-key"); it goes in ``Authorization: Bearer`` with the ``oauth-2025-04-20`` beta
flag instead. The config schema has no ``auth`` switch, so the key's prefix decides.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

import msgspec

from llm_gateway.config.schema import AnthropicProviderConfig, ProviderBase
from llm_gateway.core.errors import GatewayError, UpstreamError
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse, ModelInfo
from llm_gateway.http.client import HttpClient
from llm_gateway.http.errors import HttpError
from llm_gateway.providers.anthropic_wire import (
    StreamState,
    encode_request,
    end_events,
    error_from_wire,
    event_to_events,
    models_from_wire,
    response_from_wire,
)
from llm_gateway.providers.base import Provider
from llm_gateway.providers.sse import SSEEvent, SSEParser

# Shared with the OpenAI adapter so a broken connection means the same thing everywhere.
from llm_gateway.providers.transport import (
    decode_event,
    drain,
    fetch_models,
    merge_headers,
    transport_error,
)

__all__ = ["DEFAULT_BASE_URL", "OAUTH_BETA", "AnthropicProvider", "build_anthropic"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
OAUTH_BETA = "oauth-2025-04-20"
_OAUTH_PREFIX = "sk-ant-oat"
_MESSAGES = "/v1/messages"
# One page holds every model (the API's page limit is 1000).
_MODELS = "/v1/models?limit=1000"
_decode = msgspec.json.decode


def auth_headers(api_key: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    """The credential header for ``api_key``, plus the beta flag an OAuth token needs
    merged into any configured ``anthropic-beta`` list."""
    if not api_key:
        return {}
    if not api_key.startswith(_OAUTH_PREFIX):
        return {"x-api-key": api_key}
    configured = next((v for k, v in (headers or {}).items() if k.lower() == "anthropic-beta"), "")
    flags = [f.strip() for f in configured.split(",") if f.strip()]
    if OAUTH_BETA not in flags:
        flags.append(OAUTH_BETA)
    return {"authorization": f"Bearer {api_key}", "anthropic-beta": ",".join(flags)}


class AnthropicProvider:
    """A configured account on Anthropic's Messages API."""

    __slots__ = (
        "_client",
        "_headers",
        "_max_tokens",
        "_models",
        "_stream_headers",
        "name",
        "type",
    )

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        api_key: str | None,
        api_version: str = "2023-06-01",
        max_tokens: int = 4096,
        headers: Mapping[str, str] | None = None,
        models: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.type = "anthropic"
        self._client = client
        self._max_tokens = max_tokens
        self._models = tuple(models)
        # Built once: per request the adapter only passes these dicts along. Configured
        # headers may override the version; the credential always wins.
        self._headers = merge_headers(
            {"anthropic-version": api_version, "content-type": "application/json"},
            headers,
            auth_headers(api_key, headers),
        )
        self._stream_headers = {**self._headers, "accept": "text/event-stream"}

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = self._encode(request, model, False)
        try:
            response = await self._client.request(
                "POST", _MESSAGES, headers=self._headers, body=body
            )
        except HttpError as exc:
            raise transport_error(exc, self.name) from exc
        if response.status >= 400:
            raise error_from_wire(response.status, response.headers, response.body, self.name)
        try:
            data = _decode(response.body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(f"upstream sent invalid JSON: {exc}", provider=self.name) from exc
        return response_from_wire(data, model=model, provider=self.name)

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[list[StreamEvent]]:
        body = self._encode(request, model, True)
        state = StreamState()
        parser = SSEParser()
        try:
            async with self._client.stream(
                "POST", _MESSAGES, headers=self._stream_headers, body=body
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    raise error_from_wire(response.status, response.headers, raw, self.name)
                async for piece in response.iter_bytes():
                    # Everything parsed from one read goes out as one batch.
                    batch, failure = self._parse(parser.feed(piece), state)
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
                    if state.done:
                        break
                else:
                    # EOF: a last event may lack its blank line.
                    batch, failure = self._parse(parser.close(), state)
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
                if not state.done and state.finish is None:
                    raise UpstreamError("stream ended early", provider=self.name)
                tail = end_events(state)
                if tail:
                    yield tail
                if state.done:
                    await drain(response)
        except HttpError as exc:
            raise transport_error(exc, self.name) from exc

    def _encode(self, request: ChatRequest, model: str, stream: bool) -> bytes:
        try:
            return encode_request(request, model, self._max_tokens, stream)
        except GatewayError as exc:
            exc.provider = self.name
            raise

    def _parse(
        self, events: Iterable[SSEEvent], state: StreamState
    ) -> tuple[list[StreamEvent], GatewayError | None]:
        """The batch for some SSE events, and a failure that must be raised *after* the
        events parsed before it have been delivered."""
        batch: list[StreamEvent] = []
        for event in events:
            try:
                batch.extend(decode_event(event.data, event_to_events, state, self.name))
            except GatewayError as failure:
                return batch, failure
            if state.done:
                break
        return batch, None

    async def list_models(self) -> list[ModelInfo]:
        """The upstream's /v1/models; the configured list when that fails or is empty."""
        return await fetch_models(
            self._client,
            _MODELS,
            self._headers,
            provider=self.name,
            configured=self._models,
            error_from_wire=error_from_wire,
            models_from_wire=models_from_wire,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _origin(base_url: str) -> str:
    # Paths carry the /v1 prefix, so a base URL written OpenAI-style ("…/v1") still works.
    url = base_url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def build_anthropic(name: str, cfg: ProviderBase) -> Provider:
    assert isinstance(cfg, AnthropicProviderConfig)
    client = HttpClient(
        _origin(cfg.base_url or DEFAULT_BASE_URL),
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.idle_timeout or cfg.timeout,
        # A non-streamed answer sends nothing until it is generated: only the provider's
        # total timeout bounds the wait for the first byte, never the idle gap.
        first_byte_timeout=cfg.timeout,
        max_connections=cfg.max_connections,
    )
    return AnthropicProvider(
        name,
        client,
        api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
        api_version=cfg.api_version,
        max_tokens=cfg.max_tokens,
        headers=cfg.headers,
        models=cfg.models,
    )
