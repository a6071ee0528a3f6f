"""/api/llm/generate, /api/llm/stream and /api/chat/stream over real sockets.

Served by the mock provider (deterministic text) and by the fake OpenAI upstream (which
can send no usage, fail mid-stream, stay silent, and records client disconnects).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from llm_gateway.accounting.tokens import count_prompt, count_text, wait_until_ready
from llm_gateway.api.fastapi_app import build_api
from llm_gateway.api.gateway.generate_routes import generate_routes
from llm_gateway.api.ws.chat import chat_ws_routes
from llm_gateway.app import GatewayState, create_app
from llm_gateway.config.schema import GatewayConfig
from llm_gateway.core.records import UsageRecord
from llm_gateway.core.types import ChatRequest, Message
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import Scenario
from tests.fakes.server import run_server

pytestmark = pytest.mark.timeout(20)

MOCK: dict[str, Any] = {
    "providers": {"mock": {"type": "mock", "chunk_delay_ms": 0}},
    "models": {"mock": {"routes": [{"provider": "mock", "model": "mock-1"}]}},
}


# --- a real server with these routes (until app.py includes them) --------------------------


class _WithLifespan:
    """The FastAPI app with the gateway state's start/stop, as GatewayApp runs them."""

    def __init__(self, state: GatewayState, api: Any) -> None:
        self.state = state
        self.api = api

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.api(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.state.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.state.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


@dataclass
class Served:
    url: str
    state: GatewayState
    records: list[UsageRecord] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :]

    def wait_records(self, count: int, timeout: float = 5.0) -> list[UsageRecord]:
        deadline = time.monotonic() + timeout
        while len(self.records) < count:
            assert time.monotonic() < deadline, f"only {len(self.records)} usage records"
            time.sleep(0.01)
        return self.records


def _has(api: Any, path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in api.routes)


@contextmanager
def serve_api(config: dict[str, Any]) -> Iterator[Served]:
    """The gateway's FastAPI app with /api/llm and /ws on a real socket; usage recorded."""
    state = create_app(GatewayConfig.model_validate(config)).state
    api = build_api(state)
    if not _has(api, "/api/llm/generate"):
        api.include_router(generate_routes(state))
    if not _has(api, "/ws"):
        api.include_router(chat_ws_routes(state))
    served_records: list[UsageRecord] = []
    state.gate.add_observer(served_records.append)
    with run_server(_WithLifespan(state, api), lifespan="on", http="httptools") as server:
        yield Served(server.url, state, served_records)


@contextmanager
def openai_backed(upstream: OpenAIUpstream, **server: Any) -> Iterator[Served]:
    with run_server(upstream) as fake:
        config: dict[str, Any] = {
            "providers": {"up": {"type": "openai_compatible", "base_url": f"{fake.url}/v1"}},
            "models": {"m": {"routes": ["up/fake-model-small"], "retries": {"attempts": 1}}},
            "server": server,
        }
        with serve_api(config) as served:
            yield served


@pytest.fixture(scope="module")
def mock_api() -> Iterator[Served]:
    with serve_api(MOCK) as served:
        yield served


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event, parsed data) per frame; comments are kept as ("comment", text)."""
    events: list[tuple[str, Any]] = []
    for block in text.split("\n\n"):
        if not block:
            continue
        if block.startswith(":"):
            events.append(("comment", block[1:].strip()))
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def mock_text(prompt: str) -> str:
    return f"This is a mock response to: {prompt}"


@pytest.fixture(autouse=True, scope="module")
def _tokenizer_loaded() -> None:
    # The server counts with the real tokenizer once loaded; compare against the same.
    assert wait_until_ready(timeout=10)


def assert_plausible(stats: dict[str, Any]) -> None:
    assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
    assert stats["total_tokens"] == stats["prompt_tokens"] + stats["completion_tokens"]
    assert stats["tokens_per_second"] > 0
    assert 0 <= stats["time_to_first_token_ms"] <= stats["elapsed_ms"]
    assert stats["elapsed_ms"] < 10_000


# --- non-streamed ----------------------------------------------------------------------


def test_generate_returns_text_and_stats(mock_api: Served) -> None:
    r = httpx.post(
        f"{mock_api.url}/api/llm/generate",
        json={"prompt": "hello there", "model": "mock", "system": "Be brief."},
        headers={"x-request-id": "gen-1"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == mock_text("hello there")
    assert body["model"] == "mock-1" and body["requested_model"] == "mock"
    assert body["provider"] == "mock" and body["finish_reason"] == "stop"
    # The caller's id is echoed; the ledger's id gets a suffix, since callers reuse ids.
    assert r.headers["x-request-id"] == "gen-1"
    assert body["request_id"].startswith("gen-1~")
    stats = body["stats"]
    assert stats["completion_tokens"] == 8  # the mock counts one token per word
    assert stats["tokens_estimated"] is False
    assert_plausible(stats)
    record = next(r for r in mock_api.wait_records(1) if r.request_id == body["request_id"])
    assert record.endpoint == "api.generate" and record.status == 200
    assert record.provider == "mock" and not record.streamed


@pytest.mark.parametrize(
    ("fields", "requested", "served"),
    [
        ({"provider": "mock"}, "mock/mock-1", "mock-1"),
        ({"provider": "mock", "model": "other"}, "mock/other", "other"),
        ({"provider": "mock", "model": "mock/x"}, "mock/x", "x"),
        ({"model": "mock/direct"}, "mock/direct", "direct"),
    ],
)
def test_provider_and_model_choose_the_route(
    mock_api: Served, fields: dict[str, str], requested: str, served: str
) -> None:
    r = httpx.post(f"{mock_api.url}/api/llm/generate", json={"prompt": "p", **fields})
    assert r.status_code == 200, r.text
    assert r.json()["requested_model"] == requested and r.json()["model"] == served


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"prompt": "p"}, 400, "model", "missing_model"),
        ({"prompt": "p", "model": "nope"}, 404, "model", "model_not_found"),
        ({"prompt": "p", "provider": "nope"}, 404, "provider", "provider_not_found"),
        ({"model": "mock"}, 400, "prompt", None),
        ({"prompt": "", "model": "mock"}, 400, "prompt", None),
        ({"prompt": "p", "model": "mock", "temperature": 7}, 400, "temperature", None),
        ({"prompt": "p", "model": "mock", "max_tokens": 0}, 400, "max_tokens", None),
    ],
)
def test_errors_name_the_field(
    mock_api: Served, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    for path in ("/api/llm/generate", "/api/llm/stream"):
        r = httpx.post(f"{mock_api.url}{path}", json=body)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["param"] == param and param in error["message"]
        if code is not None:
            assert error["code"] == code


def test_a_body_over_the_limit_is_refused_before_it_is_read() -> None:
    with serve_api({**MOCK, "server": {"max_body_bytes": 1000}}) as api:
        big = {"prompt": "x" * 2000, "model": "mock"}
        r = httpx.post(f"{api.url}/api/llm/generate", json=big)
        assert r.status_code == 413 and "1000 bytes" in r.json()["error"]["message"]
        small = httpx.post(f"{api.url}/api/llm/generate", json={"prompt": "x", "model": "mock"})
        assert small.status_code == 200


def test_too_many_messages_are_refused() -> None:
    with serve_api({**MOCK, "server": {"max_messages": 2}}) as api:
        messages = [{"role": "user", "content": "x"}] * 3
        r = httpx.post(f"{api.url}/api/chat/stream", json={"model": "mock", "messages": messages})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    assert "max_messages" in r.json()["error"]["message"]


def test_chat_stream_validates_messages(mock_api: Served) -> None:
    url = f"{mock_api.url}/api/chat/stream"
    r = httpx.post(url, json={"model": "mock", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.post(url, json={"model": "mock", "messages": [{"role": "robot", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.role"


def test_provider_without_usage_is_counted_locally() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply("Hello", " local", " counting", usage=None))
    with openai_backed(upstream) as api:
        r = httpx.post(f"{api.url}/api/llm/generate", json={"prompt": "count me", "model": "m"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "Hello local counting" and body["provider"] == "up"
    stats = body["stats"]
    assert stats["tokens_estimated"] is True
    assert stats["completion_tokens"] == count_text("Hello local counting")
    asked = ChatRequest(model="m", messages=[Message(role="user", content="count me")])
    assert stats["prompt_tokens"] == count_prompt(asked)
    assert_plausible(stats)


# --- streamed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/llm/generate", {"prompt": "stream me", "model": "mock", "stream": True}),
        ("/api/llm/stream", {"prompt": "stream me", "model": "mock"}),
        ("/api/chat/stream", {"model": "mock", "messages": [{"role": "user", "content": "x"}]}),
    ],
)
def test_sse_frames_end_with_stats_then_done(
    mock_api: Served, path: str, body: dict[str, Any]
) -> None:
    with httpx.stream("POST", f"{mock_api.url}{path}", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = sse_events(text)
    names = [name for name, _ in events]
    assert names[-2:] == ["stats", "done"] and set(names[:-2]) == {"chunk"}
    assert len(names) > 4  # word by word
    prompt = body.get("prompt") or body["messages"][-1]["content"]
    assert "".join(data["text"] for name, data in events if name == "chunk") == mock_text(prompt)
    final = events[-2][1]
    assert final["model"] == "mock-1" and final["provider"] == "mock"
    assert final["finish_reason"] == "stop" and final["request_id"] == r.headers["x-request-id"]
    assert final["stats"]["tokens_estimated"] is False
    assert_plausible(final["stats"])
    assert events[-1][1] == {}


def test_chat_stream_sends_system_first_and_counts_without_usage() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply("A", "B", "C", usage=None))
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]
    with openai_backed(upstream) as api:
        body = {"model": "m", "system": "sys", "messages": messages, "max_tokens": 50}
        r = httpx.post(f"{api.url}/api/chat/stream", json=body)
        record = api.wait_records(1)[0]
    events = sse_events(r.text)
    names = [n for n, _ in events]
    assert names[-2:] == ["stats", "done"] and set(names[:-2]) == {"chunk"}
    assert "".join(d["text"] for n, d in events if n == "chunk") == "ABC"
    stats = events[-2][1]["stats"]
    assert stats["tokens_estimated"] is True and stats["completion_tokens"] == count_text("ABC")
    assert_plausible(stats)
    sent = upstream.last_body
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["messages"][0]["content"] == "sys" and sent["max_tokens"] == 50
    assert record.endpoint == "api.stream" and record.streamed and record.tokens_estimated


def test_failure_before_the_stream_is_an_http_error() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.failure("bad_request", "no such thing"))
    with openai_backed(upstream) as api:
        r = httpx.post(f"{api.url}/api/llm/stream", json={"prompt": "x", "model": "m"})
    assert r.status_code == 400
    assert "no such thing" in r.json()["error"]["message"]


def test_failure_mid_stream_is_an_error_frame_then_done() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply("one", " two", " three", disconnect_after=2, chunk_delay=0.2))
    with openai_backed(upstream) as api:
        r = httpx.post(f"{api.url}/api/llm/stream", json={"prompt": "x", "model": "m"})
        record = api.wait_records(1)[0]
    assert r.status_code == 200
    events = sse_events(r.text)
    assert [n for n, _ in events] == ["chunk", "error", "done"]
    assert events[0][1] == {"text": "one"}
    assert events[1][1]["error"]["type"] == "api_error" and events[1][1]["error"]["message"]
    assert record.status == 200 and record.error_code is not None


def test_heartbeats_while_the_upstream_is_silent() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply("late", hang_before_headers=0.8))
    with openai_backed(upstream, heartbeat_seconds=0.2) as api:
        r = httpx.post(f"{api.url}/api/llm/stream", json={"prompt": "x", "model": "m"})
    events = sse_events(r.text)
    names = [n for n, _ in events]
    assert names[0] == "comment" and events[0][1] == "keep-alive"
    assert names[names.index("chunk") :] == ["chunk", "stats", "done"]


def test_client_disconnect_mid_stream_cancels_the_upstream() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    pieces = tuple(f" w{i}" for i in range(40))
    upstream.queue(Scenario.reply(*pieces, chunk_delay=0.1))
    with openai_backed(upstream) as api:
        with httpx.stream(
            "POST", f"{api.url}/api/llm/stream", json={"prompt": "x", "model": "m"}
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # one chunk seen: hang up
        started = time.monotonic()
        gone = upstream.wait_for_disconnect(timeout=3.0)
        assert time.monotonic() - started < 1.0
        assert gone.chunks_sent < len(pieces)
        record = api.wait_records(1)[0]
    assert record.streamed and record.error_code == "client_closed_request"
    assert record.completion_tokens > 0  # what was produced is still accounted


def test_client_disconnect_cancels_a_non_streamed_call() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply("never", hang_before_headers=10))
    with openai_backed(upstream) as api:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{api.url}/api/llm/generate", json={"prompt": "x", "model": "m"}, timeout=0.5
            )
        upstream.wait_for_disconnect(timeout=3.0)
        record = api.wait_records(1)[0]
    assert record.status == 499 and record.error_code == "client_closed_request"


# --- access and documentation ----------------------------------------------------------


def test_a_key_is_required_once_an_admin_key_is_set() -> None:
    with serve_api({**MOCK, "auth": {"admin_key": "admin-secret"}}) as api:
        body = {"prompt": "p", "model": "mock"}
        r = httpx.post(f"{api.url}/api/llm/generate", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        r = httpx.post(f"{api.url}/api/llm/stream", json=body, headers={"x-api-key": "wrong"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        ok = httpx.post(
            f"{api.url}/api/llm/generate",
            json=body,
            headers={"authorization": "Bearer admin-secret"},
        )
        assert ok.status_code == 200 and ok.json()["text"] == mock_text("p")


def test_openapi_documents_bodies_examples_and_frames(mock_api: Served) -> None:
    doc = httpx.get(f"{mock_api.url}/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for path, schema in [
        ("/api/llm/generate", "GenerateRequest"),
        ("/api/llm/stream", "StreamRequest"),
        ("/api/chat/stream", "ChatStreamRequest"),
    ]:
        op = doc["paths"][path]["post"]
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/" + schema) and schemas[schema]["examples"]
        assert "event: stats" in op["description"] or "`stats`" in op["description"]
        assert "text/event-stream" in op["responses"]["200"]["content"]
        assert "429" in op["responses"] and "400" in op["responses"]
    ok = doc["paths"]["/api/llm/generate"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/GenerateResponse")
    assert schemas["GenerateResponse"]["examples"][0]["stats"]["tokens_per_second"] > 0
