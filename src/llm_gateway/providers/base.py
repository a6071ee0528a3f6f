"""The provider interface every adapter (and every wrapper around one) implements.

An adapter converts ``core`` types to its upstream wire format and back; it knows nothing
about inbound dialects or handlers. Wrappers (fallback, retry, limits, cache, metrics)
implement the same interface so they compose around a concrete adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse, ModelInfo


@runtime_checkable
class Provider(Protocol):
    """A configured account on one upstream API.

    ``model`` is the provider's own model id (the route's model), which may differ from
    ``request.model`` (the name the client asked for).
    """

    name: str  # the configured provider name, e.g. "openai" or "groq-eu"
    type: str  # the provider type from config, e.g. "groq"

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        """One non-streaming completion. Raises ``core.errors.GatewayError`` subclasses."""
        ...

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[list[StreamEvent]]:
        """An async iterator of non-empty *batches* of stream events.

        A batch is what became available at once, typically everything parsed from one
        upstream read. Batching instead of yielding event by event is a measured choice
        (docs/performance.md): the API layer writes one batch as one socket write, and one
        async-generator hop per batch instead of per event roughly halves the gateway's
        CPU per streamed chunk under load. It never delays an event: a batch is yielded as
        soon as its read is parsed.

        Errors before the first batch are raised from the first ``__anext__``; errors
        later are raised mid-iteration (the API layer turns them into an error frame).
        Closing the iterator early (``aclose``, or cancellation) must close the upstream
        connection at once so the upstream stops generating.
        """
        ...

    async def list_models(self) -> list[ModelInfo]:
        """Models this provider serves (a cheap upstream call, or configured/static data)."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...
