"""Vendor quirks of the OpenAI adapter, end to end over a real socket to the flavoured fake."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import Scenario, UsageSpec
from tests.fakes.server import RunningServer, run_server

from llm_gateway.core.errors import (
    InvalidRequestError,
    ProviderUnavailableError,
    UpstreamAuthenticationError,
    UpstreamError,
)
from llm_gateway.core.events import FinishEvent, StreamEvent, TextDelta, UsageEvent
from llm_gateway.core.types import ChatRequest, Message, ModelInfo, ToolCall, Usage
from llm_gateway.http.client import HttpClient
from llm_gateway.providers.base import Provider
from llm_gateway.providers.families import FAMILIES, GROQ, OpenAIFamily
from llm_gateway.providers.openai import OpenAIProvider

ASK = ChatRequest(model="m", messages=[Message("user", "hi")])


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, tuple[OpenAIUpstream, RunningServer]]]:
    out: dict[str, tuple[OpenAIUpstream, RunningServer]] = {}
    servers = []
    for name in FAMILIES:
        fake = OpenAIUpstream(name)
        cm = run_server(fake)
        out[name] = (fake, cm.__enter__())
        servers.append(cm)
    yield out
    for cm in servers:
        cm.__exit__(None, None, None)


class Rig:
    def __init__(self, fake: OpenAIUpstream, provider: OpenAIProvider) -> None:
        self.fake = fake
        self.provider = provider

    async def stream(self, request: ChatRequest = ASK) -> list[StreamEvent]:
        return [e async for batch in self.provider.stream(request, "vendor-model") for e in batch]


@pytest.fixture
async def rig(
    request: pytest.FixtureRequest, fakes: dict[str, tuple[OpenAIUpstream, RunningServer]]
) -> AsyncIterator[Any]:
    made: list[Provider] = []

    def make(
        name: str,
        family: OpenAIFamily | None = None,
        headers: dict[str, str] | None = None,
        models: tuple[str, ...] = (),
        path: str = "/v1",
    ) -> Rig:
        fake, server = fakes[name]
        fake.reset()
        provider = OpenAIProvider(
            name,
            family or FAMILIES[name],
            HttpClient(server.url + path, read_timeout=5),
            api_key="k",
            headers=headers,
            models=models,
        )
        made.append(provider)
        return Rig(fake, provider)

    yield make
    for provider in made:
        await provider.aclose()


async def test_groq_usage_from_x_groq_alone(rig: Any) -> None:
    # Without stream_options the only usage Groq sends is x_groq.usage on the last chunk.
    r = rig("groq", family=dataclasses.replace(GROQ, stream_usage_option=False))
    r.fake.queue(Scenario(text=("a",), usage=UsageSpec(21, 4, cached_tokens=3)))
    events = await r.stream()
    assert "stream_options" not in r.fake.last_body
    assert [e for e in events if isinstance(e, UsageEvent)] == [UsageEvent(Usage(21, 4, 25, 3, 0))]


async def test_groq_usage_reported_once_when_sent_twice(rig: Any) -> None:
    r = rig("groq")
    r.fake.queue(Scenario(text=("a",), usage=UsageSpec(8, 2)))
    events = await r.stream()
    assert r.fake.last_body["stream_options"] == {"include_usage": True}
    assert len([e for e in events if isinstance(e, UsageEvent)]) == 1


async def test_openrouter_attribution_headers_usage_include_and_cost(rig: Any) -> None:
    r = rig("openrouter")
    r.fake.queue(Scenario(text=("a",), usage=UsageSpec(cost=0.25)))
    response = await r.provider.complete(ASK, "openai/gpt-4o")
    headers = r.fake.requests[-1].headers
    assert headers["http-referer"] and headers["x-title"] == "llm-gateway"
    assert headers["authorization"] == "Bearer k"
    assert r.fake.last_body["usage"] == {"include": True}
    assert response.usage is not None and response.usage.cost == 0.25
    # Config headers override the defaults, whatever their case.
    r = rig("openrouter", headers={"x-title": "My App", "HTTP-Referer": "https://me.example"})
    r.fake.queue(Scenario.reply("b"))
    await r.stream()
    headers = r.fake.requests[-1].headers
    assert (headers["x-title"], headers["http-referer"]) == ("My App", "https://me.example")
    assert headers["accept"] == "text/event-stream"


async def test_deepseek_reasoning_not_echoed_on_plain_turns(rig: Any) -> None:
    r = rig("deepseek")
    r.fake.queue(Scenario(reasoning=("hmm",), text=("4",)))
    history = [
        Message("user", "2+2?"),
        Message("assistant", "4", reasoning="adding"),  # the fake 400s if this is echoed
        Message("user", "and 3+3?"),
    ]
    response = await r.provider.complete(
        ChatRequest(model="m", messages=history), "deepseek-reasoner"
    )
    assert (response.reasoning, response.content) == ("hmm", "4")
    assert "reasoning_content" not in r.fake.last_body["messages"][1]


async def test_mistral_maps_foreign_ids_and_sends_only_known_fields(rig: Any) -> None:
    r = rig("mistral")
    r.fake.queue(Scenario.reply("done"))
    history = [
        Message("user", "go", name="alice"),
        Message("assistant", None, tool_calls=[ToolCall("call_Xy-123456789", "f", "{}")]),
        Message("tool", "ok", tool_call_id="call_Xy-123456789", name="f"),
    ]
    request = ChatRequest(model="m", messages=history, seed=1, user="u", extra={"logprobs": True})
    events = await r.stream(request)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "done"
    body = r.fake.last_body
    call_id = body["messages"][1]["tool_calls"][0]["id"]
    assert len(call_id) == 9 and call_id == body["messages"][2]["tool_call_id"]
    assert body["random_seed"] == 1 and "name" not in body["messages"][0]


async def test_mistral_fake_rejects_what_real_mistral_rejects(rig: Any) -> None:
    r = rig(
        "mistral",
        family=dataclasses.replace(
            FAMILIES["mistral"], allowed_fields=None, stream_usage_option=True
        ),
    )
    with pytest.raises(InvalidRequestError, match="extra_forbidden"):
        await r.stream()
    r = rig("mistral", family=dataclasses.replace(FAMILIES["mistral"], tool_call_id=None))
    history = [
        Message("assistant", None, tool_calls=[ToolCall("call_1", "f", "{}")]),
        Message("tool", "ok", tool_call_id="call_1"),
    ]
    with pytest.raises(InvalidRequestError, match="length of 9"):
        await r.provider.complete(ChatRequest(model="m", messages=history), "mistral-small")


async def test_openai_sends_max_completion_tokens(rig: Any) -> None:
    r = rig("openai")
    r.fake.queue(Scenario.reply("x"))
    await r.provider.complete(
        ChatRequest(model="m", messages=[Message("user", "hi")], max_tokens=9), "gpt"
    )
    body = r.fake.last_body
    assert body["max_completion_tokens"] == 9 and "stream_options" not in body


async def test_list_models_falls_back_to_configured() -> None:
    family = FAMILIES["openai_compatible"]
    with run_server(OpenAIUpstream("openai_compatible", api_key="other")) as server:
        for models, expected in ((("local-a",), [ModelInfo("local-a", "p")]), ((), None)):
            provider = OpenAIProvider(
                "p", family, HttpClient(server.url), api_key="k", models=models
            )
            try:
                if expected is None:
                    with pytest.raises(UpstreamAuthenticationError):
                        await provider.list_models()
                else:
                    assert await provider.list_models() == expected
            finally:
                await provider.aclose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for models in (("local-b",), ()):
        provider = OpenAIProvider("p", family, HttpClient(url), api_key=None, models=models)
        try:
            if models:
                assert [m.id for m in await provider.list_models()] == ["local-b"]
            else:
                with pytest.raises(ProviderUnavailableError):
                    await provider.list_models()
        finally:
            await provider.aclose()


async def test_invalid_json_body_is_upstream_error() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        if scope["path"].endswith("/models"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{oops"})
            return
        # The same body for both calls: not JSON as a whole, and an SSE stream that stops
        # after one delta with neither a finish reason nor [DONE].
        await send({"type": "http.response.start", "status": 200, "headers": []})
        body = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
        await send({"type": "http.response.body", "body": body})

    with run_server(app) as server:
        provider = OpenAIProvider(
            "x", FAMILIES["openai_compatible"], HttpClient(server.url), api_key=None
        )
        try:
            with pytest.raises(UpstreamError, match="invalid JSON"):
                await provider.complete(ASK, "m")
            # A body that ends without [DONE] or a finish reason was cut short.
            with pytest.raises(UpstreamError, match="ended early"):
                [e async for batch in provider.stream(ASK, "m") for e in batch]
            with pytest.raises(UpstreamError, match="invalid model list"):
                await provider.list_models()
        finally:
            await provider.aclose()


def _raw_sse_app(pieces: list[bytes]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


async def _raw_stream(pieces: list[bytes]) -> list[StreamEvent]:
    with run_server(_raw_sse_app(pieces)) as server:
        provider = OpenAIProvider("raw", FAMILIES["openai"], HttpClient(server.url), api_key="k")
        try:
            return [e async for batch in provider.stream(ASK, "m") for e in batch]
        finally:
            await provider.aclose()


async def test_last_event_without_blank_line_and_bytes_after_done() -> None:
    finish = b'data: {"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]}\n\n'
    # [DONE] without its blank line at EOF still ends the stream cleanly.
    assert await _raw_stream([finish, b"data: [DONE]"]) == [TextDelta("hi"), FinishEvent("stop")]
    # A finish reason without [DONE] is a complete stream too.
    assert await _raw_stream([finish]) == [TextDelta("hi"), FinishEvent("stop")]
    # Whatever follows [DONE] is read (so the socket can be reused) and ignored.
    assert await _raw_stream([finish + b"data: [DONE]\n\n", b"data: junk\n\n"]) == [
        TextDelta("hi"),
        FinishEvent("stop"),
    ]
    # The last event lacking its blank line is still parsed.
    usage = b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
    assert (await _raw_stream([finish, usage]))[-1] == UsageEvent(Usage(1, 1, 2))


async def test_chunk_of_the_wrong_shape_is_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="malformed"):
        await _raw_stream([b'data: {"choices": [1]}\n\n'])


def test_transport_errors_map_by_where_they_broke() -> None:
    from llm_gateway.core.errors import ConnectTimeoutError, IdleTimeoutError, TotalTimeoutError
    from llm_gateway.http import errors as http
    from llm_gateway.providers.transport import transport_error

    cases = [
        (http.ConnectTimeout("t"), ConnectTimeoutError),
        (http.ConnectError("c"), ProviderUnavailableError),
        (http.FirstByteTimeout("f"), TotalTimeoutError),
        (http.ReadTimeout("r"), IdleTimeoutError),
        (http.RemoteProtocolError("p"), UpstreamError),
    ]
    for exc, cls in cases:
        mapped = transport_error(exc, "prov")
        assert type(mapped) is cls and mapped.provider == "prov" and exc.message in mapped.message


async def test_in_stream_error_event_names_the_provider() -> None:
    error = b'data: {"error": {"message": "upstream model crashed", "type": "server_error"}}\n\n'
    with pytest.raises(UpstreamError, match="model crashed") as caught:
        await _raw_stream([b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n', error])
    assert caught.value.provider == "raw"
