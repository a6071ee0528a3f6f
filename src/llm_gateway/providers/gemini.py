"""The adapter for Google's Generative Language API (Gemini, v1beta).

A thin shell around ``gemini_wire``: it builds URLs, sends bytes through the shared pooled
client and maps failures once, here at the edge (HTTP statuses by
``gemini_wire.error_from_wire``, transport failures by ``transport.transport_error``, the
same mapping every adapter uses). Streaming uses ``streamGenerateContent?alt=sse``: each
SSE event is a complete ``GenerateContentResponse`` with only the new parts, and the
stream simply ends (no ``[DONE]``), so a stream that stops before any ``finishReason`` is
reported as cut short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from urllib.parse import quote

import msgspec

from llm_gateway.config.schema import GeminiProviderConfig, ProviderBase
from llm_gateway.core.errors import GatewayError, UpstreamError
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse, ModelInfo
from llm_gateway.http.client import HttpClient
from llm_gateway.http.errors import HttpError
from llm_gateway.providers.base import Provider
from llm_gateway.providers.gemini_wire import (
    StreamState,
    chunk_to_events,
    encode_request,
    end_events,
    error_from_wire,
    models_from_wire,
    response_from_wire,
)
from llm_gateway.providers.sse import SSEEvent, SSEParser
from llm_gateway.providers.transport import (
    decode_event,
    fetch_models,
    merge_headers,
    transport_error,
)

__all__ = ["DEFAULT_BASE_URL", "GeminiProvider", "api_root", "build_gemini"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_API_VERSIONS = ("/v1beta", "/v1", "/v1alpha")
_decode = msgspec.json.decode


def api_root(base_url: str | None) -> str:
    """The versioned API root: ``base_url`` plus ``/v1beta`` unless it names a version."""
    root = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return root if root.endswith(_API_VERSIONS) else f"{root}/v1beta"


def _model_path(model: str) -> str:
    # Accept "models/gemini-2.5-flash" as well as the bare id; keep the path safe.
    return "/models/" + quote(model.removeprefix("models/"), safe="-._~")


class GeminiProvider:
    """A configured account on the Gemini API."""

    __slots__ = ("_client", "_headers", "_models", "_stream_headers", "name", "type")

    def __init__(
        self,
        name: str,
        client: HttpClient,
        *,
        api_key: str | None,
        headers: Mapping[str, str] | None = None,
        models: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.type = "gemini"
        self._client = client
        self._models = tuple(models)
        # The key goes in a header, never the ``?key=`` query string: URLs end up in logs.
        auth = {"x-goog-api-key": api_key} if api_key else None
        self._headers = merge_headers({"Content-Type": "application/json"}, headers, auth)
        self._stream_headers = {**self._headers, "Accept": "text/event-stream"}

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = encode_request(request)
        path = _model_path(model) + ":generateContent"
        try:
            response = await self._client.request("POST", path, headers=self._headers, body=body)
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
        body = encode_request(request)
        path = _model_path(model) + ":streamGenerateContent?alt=sse"
        state = StreamState()
        parser = SSEParser()
        try:
            async with self._client.stream(
                "POST", path, headers=self._stream_headers, body=body
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
                # EOF: a last event may lack its blank line.
                batch, failure = self._parse(parser.close(), state)
                if batch:
                    yield batch
                if failure is not None:
                    raise failure
                if state.finish is None:
                    raise UpstreamError("stream ended early", provider=self.name)
                tail = end_events(state)
                if tail:
                    yield tail
        except HttpError as exc:
            raise transport_error(exc, self.name) from exc

    def _parse(
        self, events: Iterable[SSEEvent], state: StreamState
    ) -> tuple[list[StreamEvent], GatewayError | None]:
        """The batch for some SSE events, and a failure that must be raised *after* the
        events parsed before it have been delivered."""
        batch: list[StreamEvent] = []
        for event in events:
            try:
                batch.extend(decode_event(event.data, chunk_to_events, state, self.name))
            except GatewayError as failure:
                return batch, failure
        return batch, None

    async def list_models(self) -> list[ModelInfo]:
        """The upstream's model list; the configured list when that fails or is empty."""
        return await fetch_models(
            self._client,
            "/models?pageSize=1000",
            self._headers,
            provider=self.name,
            configured=self._models,
            error_from_wire=error_from_wire,
            models_from_wire=models_from_wire,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def build_gemini(name: str, cfg: ProviderBase) -> Provider:
    """The registry's builder for ``type: gemini``."""
    assert isinstance(cfg, GeminiProviderConfig)
    client = HttpClient(
        api_root(cfg.base_url),
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.idle_timeout or cfg.timeout,
        # A non-streamed answer sends nothing until it is generated: only the provider's
        # total timeout bounds the wait for the first byte, never the idle gap.
        first_byte_timeout=cfg.timeout,
        max_connections=cfg.max_connections,
    )
    return GeminiProvider(
        name,
        client,
        api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
        headers=cfg.headers,
        models=cfg.models,
    )
