"""The Bedrock adapter: Converse and ConverseStream over our pooled HTTP client, signed
with SigV4, the stream decoded from AWS event-stream frames. No AWS SDK.

Errors are mapped once, here at the edge: HTTP errors by ``wire.error_from_wire``, in-stream
exception frames by ``wire.error_from_exception_type``, transport failures as the OpenAI
adapter maps them. The hot path does no logging and builds no pydantic models: per
streamed read, one decoder pass (C CRCs), one msgspec decode per frame and a few structs.

``list_models``: the configured ``models`` when there are any (Bedrock's catalogue lists
hundreds of models the account may not have enabled, so an operator's list is the better
answer); otherwise the control plane's ListFoundationModels on
``bedrock.{region}.amazonaws.com`` (signed, text-output models), when the provider talks
to AWS itself (no custom ``base_url``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from llm_gateway.config.schema import BedrockProviderConfig, ProviderBase
from llm_gateway.core.errors import (
    GatewayError,
    InvalidRequestError,
    ProviderUnavailableError,
    UpstreamError,
)
from llm_gateway.core.events import StreamEvent
from llm_gateway.core.types import ChatRequest, ChatResponse, ModelInfo
from llm_gateway.http.client import HttpClient
from llm_gateway.http.errors import HttpError
from llm_gateway.providers.base import Provider
from llm_gateway.providers.bedrock.credentials import (
    CredentialChain,
    Credentials,
    NoCredentialsError,
)
from llm_gateway.providers.bedrock.errors import error_from_exception_type, error_from_wire
from llm_gateway.providers.bedrock.eventstream import EventStreamDecoder, Message
from llm_gateway.providers.bedrock.sigv4 import SigV4Signer
from llm_gateway.providers.bedrock.wire import (
    StreamState,
    encode_request,
    event_to_events,
    response_from_wire,
)
from llm_gateway.providers.transport import transport_error

__all__ = ["BedrockProvider", "Endpoint", "build_bedrock", "runtime_url"]

_decode = msgspec.json.decode
_SERVICE = "bedrock"  # the signing name of both bedrock-runtime and the control plane


def runtime_url(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


def control_url(region: str) -> str:
    return f"https://bedrock.{region}.amazonaws.com"


class Endpoint:
    """One origin and its HTTP client, with what signing needs to know about it: the
    Host header exactly as the client sends it, and the base path it prefixes."""

    __slots__ = ("base_path", "client", "host")

    def __init__(self, base_url: str, client: HttpClient) -> None:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        default = 443 if parts.scheme.lower() == "https" else 80
        # Mirrors HttpClient's own Host header, which is what the signature must cover.
        text = f"[{host}]" if ":" in host else host
        if parts.port and parts.port != default:
            text = f"{text}:{parts.port}"
        self.host = text
        self.base_path = parts.path.rstrip("/")
        self.client = client


class BedrockProvider:
    """A configured account (region + credentials) on Amazon Bedrock."""

    __slots__ = (
        "_control",
        "_credentials",
        "_headers",
        "_models",
        "_runtime",
        "_signer",
        "_stream_headers",
        "name",
        "region",
        "type",
    )

    def __init__(
        self,
        name: str,
        runtime: Endpoint,
        *,
        region: str,
        credentials: CredentialChain,
        headers: Mapping[str, str] | None = None,
        models: Sequence[str] = (),
        control: Endpoint | None = None,
    ) -> None:
        self.name = name
        self.type = "bedrock"
        self.region = region
        self._runtime = runtime
        self._control = control
        self._credentials = credentials
        self._signer = SigV4Signer(region, _SERVICE)
        self._models = tuple(models)
        base = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
        self._headers = {**base, "content-type": "application/json", "accept": "application/json"}
        self._stream_headers = {**self._headers, "accept": "application/vnd.amazon.eventstream"}

    # --- signing -------------------------------------------------------------------------

    async def _creds(self) -> Credentials:
        try:
            return await self._credentials.get()
        except NoCredentialsError as exc:
            raise ProviderUnavailableError(
                f"bedrock provider '{self.name}' is not configured: {exc}",
                code="provider_not_configured",
                provider=self.name,
            ) from exc

    async def _signed(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        query: str = "",
    ) -> dict[str, str]:
        creds = await self._creds()
        added = self._signer.sign(
            creds,
            method,
            endpoint.host,
            endpoint.base_path + path,
            headers,
            body,
            query=query,
        )
        return {**headers, **added}

    @staticmethod
    def _path(model: str, operation: str) -> str:
        # Model ids carry ":" (and ARNs "/"): both are encoded in the single path segment,
        # as the AWS SDKs do for a non-greedy URI label. A bare "." or ".." would survive
        # encoding as a dot segment that servers normalise away, steering a signed request
        # to another path; no Bedrock model id looks like that, so it is refused.
        if model in (".", ".."):
            raise InvalidRequestError(f"'{model}' is not a Bedrock model id.", param="model")
        return f"/model/{quote(model, safe='')}/{operation}"

    # --- Converse ------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = encode_request(request, model)
        path = self._path(model, "converse")
        headers = await self._signed(self._runtime, "POST", path, self._headers, body)
        try:
            response = await self._runtime.client.request("POST", path, headers=headers, body=body)
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
        body = encode_request(request, model)
        path = self._path(model, "converse-stream")
        headers = await self._signed(self._runtime, "POST", path, self._stream_headers, body)
        decoder = EventStreamDecoder()
        state = StreamState()
        try:
            async with self._runtime.client.stream(
                "POST", path, headers=headers, body=body
            ) as response:
                if response.status >= 400:
                    raw = await response.read()
                    raise error_from_wire(response.status, response.headers, raw, self.name)
                async for piece in response.iter_bytes():
                    messages, broken = decoder.feed_partial(piece)
                    # Everything decoded from one read goes out as one batch, before any
                    # failure found in the same read.
                    batch, failure = self._events(messages, state)
                    if batch:
                        yield batch
                    if failure is not None:
                        raise failure
                    if broken is not None:
                        raise UpstreamError(
                            f"malformed event-stream frame: {broken}", provider=self.name
                        )
                if decoder.pending:
                    raise UpstreamError(
                        f"stream ended inside an event-stream frame ({decoder.pending} bytes)",
                        provider=self.name,
                    )
                if state.finish is None:
                    raise UpstreamError("stream ended early", provider=self.name)
        except HttpError as exc:
            raise transport_error(exc, self.name) from exc

    def _events(
        self, messages: list[Message], state: StreamState
    ) -> tuple[list[StreamEvent], GatewayError | None]:
        """The batch for some frames, and a failure to raise *after* delivering it."""
        batch: list[StreamEvent] = []
        for message in messages:
            headers = message.headers
            kind = headers.get(":message-type", "event")
            if kind == "event":
                event_type = headers.get(":event-type")
                if not isinstance(event_type, str):
                    return batch, UpstreamError(
                        "malformed event-stream frame: no :event-type", provider=self.name
                    )
                try:
                    payload: Any = _decode(message.payload) if message.payload else {}
                    batch.extend(event_to_events(event_type, payload, state))
                except msgspec.DecodeError:
                    return batch, UpstreamError(
                        f"malformed stream event {event_type!r}: {message.payload[:200]!r}",
                        provider=self.name,
                    )
                except (AttributeError, TypeError) as exc:
                    return batch, UpstreamError(
                        f"malformed stream event {event_type!r}: {exc}", provider=self.name
                    )
                except GatewayError as exc:
                    exc.provider = self.name
                    return batch, exc
            elif kind == "exception":
                type_name = headers.get(":exception-type")
                return batch, error_from_exception_type(
                    type_name if isinstance(type_name, str) else "UnknownException",
                    _exception_message(message.payload),
                    self.name,
                )
            elif kind == "error":
                code = headers.get(":error-code")
                text = headers.get(":error-message")
                return batch, error_from_exception_type(
                    code if isinstance(code, str) else "UnknownError",
                    text if isinstance(text, str) else "",
                    self.name,
                )
        return batch, None

    # --- models --------------------------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        configured = [ModelInfo(id=m, owned_by=self.name) for m in self._models]
        if configured or self._control is None:
            return configured
        path = "/foundation-models"
        query = "byOutputModality=TEXT"
        headers = await self._signed(self._control, "GET", path, dict(self._headers), b"", query)
        try:
            response = await self._control.client.request("GET", f"{path}?{query}", headers=headers)
        except HttpError as exc:
            raise transport_error(exc, self.name) from exc
        if response.status >= 400:
            raise error_from_wire(response.status, response.headers, response.body, self.name)
        try:
            data = _decode(response.body)
            summaries = data["modelSummaries"]
            return [
                ModelInfo(id=s["modelId"], owned_by=s.get("providerName") or self.name)
                for s in summaries
                if isinstance(s, dict) and isinstance(s.get("modelId"), str)
            ]
        except (msgspec.DecodeError, KeyError, TypeError) as exc:
            raise UpstreamError(f"invalid model list: {exc}", provider=self.name) from exc

    async def aclose(self) -> None:
        await self._runtime.client.aclose()
        if self._control is not None:
            await self._control.client.aclose()


def _exception_message(payload: bytes) -> str:
    try:
        data = _decode(payload) if payload else None
    except msgspec.DecodeError:
        return payload[:300].decode("utf-8", "replace")
    if isinstance(data, dict):
        text = data.get("message") or data.get("Message")
        if isinstance(text, str):
            return text
    return ""


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_bedrock(name: str, cfg: ProviderBase) -> Provider:
    """The registry's builder: reads static credentials now, container ones on first use."""
    assert isinstance(cfg, BedrockProviderConfig)
    region = cfg.region
    assert region is not None  # is_configured() requires it
    key, secret = _secret(cfg.access_key_id), _secret(cfg.secret_access_key)
    explicit = (
        Credentials(key, secret, _secret(cfg.session_token), source="config")
        if key and secret
        else None
    )
    chain = CredentialChain(explicit=explicit, profile=cfg.profile)
    chain.resolve_static()
    base_url = cfg.base_url or runtime_url(region)
    read_timeout = cfg.idle_timeout or cfg.timeout

    def endpoint(url: str) -> Endpoint:
        client = HttpClient(
            url,
            connect_timeout=cfg.connect_timeout,
            read_timeout=read_timeout,
            first_byte_timeout=cfg.timeout,  # the idle gap starts once an answer starts
            max_connections=cfg.max_connections,
        )
        return Endpoint(url, client)

    return BedrockProvider(
        name,
        endpoint(base_url),
        region=region,
        credentials=chain,
        headers=cfg.headers,
        models=cfg.models,
        # A custom base_url (VPC endpoint, proxy, test fake) says nothing about where the
        # control plane is; then the configured models are the list.
        control=None if cfg.base_url else endpoint(control_url(region)),
    )
