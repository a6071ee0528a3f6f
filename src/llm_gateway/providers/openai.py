"""The adapter for every OpenAI-compatible upstream (OpenAI, Groq, OpenRouter, DeepSeek,
Mistral, Ollama/vLLM/LM Studio): one class, with each vendor's quirks read off its
``OpenAIFamily`` row.

Errors are mapped once, here at the edge: HTTP statuses by ``openai_wire.error_from_wire``,
transport failures by ``_transport_error``. The hot path (one call per streamed chunk)
does no logging, builds no pydantic models and copies nothing it can avoid: bytes go from
the socket to the SSE parser to msgspec to a couple of small event structs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

import msgspec

from llm_gateway.core.errors import (
    GatewayError,
    UpstreamError,
)
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse, ModelInfo
from llm_gateway.http.client import HttpClient
from llm_gateway.http.errors import HttpError
from llm_gateway.providers.families import OpenAIFamily
from llm_gateway.providers.openai_wire import (
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
    drain,
    fetch_models,
    merge_headers,
    transport_error,
)

__all__ = ["OpenAIProvider"]

_decode = msgspec.json.decode
_COMPLETIONS = "/chat/completions"
_DRAIN_SECONDS = 1.0


class OpenAIProvider:
    """A configured account on one OpenAI-compatible API."""

    __slots__ = ("_client", "_headers", "_models", "_stream_headers", "family", "name", "type")

    def __init__(
        self,
        name: str,
        family: OpenAIFamily,
        client: HttpClient,
        *,
        api_key: str | None,
        headers: Mapping[str, str] | None = None,
        models: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.type = family.type
        self.family = family
        self._client = client
        self._models = tuple(models)
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else None
        # Built once: per request the adapter only passes these dicts along.
        self._headers = merge_headers(
            family.default_headers, {"Content-Type": "application/json"}, headers, auth
        )
        self._stream_headers = {**self._headers, "Accept": "text/event-stream"}

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = encode_request(request, model, self.family, False)
        try:
            response = await self._client.request(
                "POST", _COMPLETIONS, headers=self._headers, body=body
            )
        except HttpError as exc:
            raise transport_error(exc, self.name) from exc
        if response.status >= 400:
            raise error_from_wire(response.status, response.headers, response.body, self.name)
        try:
            data = _decode(response.body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(f"upstream sent invalid JSON: {exc}", provider=self.name) from exc
        return response_from_wire(data, self.family, model=model, provider=self.name)

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[list[StreamEvent]]:
        body = encode_request(request, model, self.family, True)
        state = StreamState(self.family)
        parser = SSEParser()
        done = False
        try:
            async with self._client.stream(
                "POST", _COMPLETIONS, headers=self._stream_headers, body=body
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    raise error_from_wire(response.status, response.headers, raw, self.name)
                async for piece in response.iter_bytes():
                    # Everything parsed from one read goes out as one batch.
                    batch, done, failure = self._parse(parser.feed(piece), state)
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
                    if done:
                        break
                else:
                    # EOF: a last event may lack its blank line.
                    batch, done, failure = self._parse(parser.close(), state)
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
                if not done and state.finish is None:
                    raise UpstreamError("stream ended early", provider=self.name)
                tail = end_events(state)
                if tail:
                    yield tail
                if done:
                    await drain(response)
        except HttpError as exc:
            raise transport_error(exc, self.name) from exc

    def _parse(
        self, events: Iterable[SSEEvent], state: StreamState
    ) -> tuple[list[StreamEvent], bool, GatewayError | None]:
        """The batch for some SSE events, whether ``[DONE]`` came, and a failure that
        must be raised *after* the events parsed before it have been delivered."""
        batch: list[StreamEvent] = []
        for event in events:
            if event.data == "[DONE]":
                return batch, True, None
            try:
                batch.extend(decode_event(event.data, chunk_to_events, state, self.name))
            except GatewayError as failure:
                return batch, False, failure
        return batch, False, None

    async def list_models(self) -> list[ModelInfo]:
        """The upstream's /models; the configured list when that fails or is empty."""
        return await fetch_models(
            self._client,
            "/models",
            self._headers,
            provider=self.name,
            configured=self._models,
            error_from_wire=error_from_wire,
            models_from_wire=models_from_wire,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
