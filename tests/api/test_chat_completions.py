"""/v1/chat/completions over a real socket, served by the mock provider."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.conftest import GatewayFactory
from tests.fakes.server import RunningServer

HELLO = {"model": "mock", "messages": [{"role": "user", "content": "hello"}]}


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


def test_completion_in_openai_shape_with_route_headers(mock_gateway: RunningServer) -> None:
    r = httpx.post(
        f"{mock_gateway.url}/v1/chat/completions", json=HELLO, headers={"x-request-id": "req-123"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "mock"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "This is a mock response to: hello",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 7
    assert r.headers["x-request-id"] == "req-123"
    assert r.headers["x-gateway-provider"] == "mock" and r.headers["x-gateway-model"] == "mock-1"
    assert "content-encoding" not in r.headers


def test_direct_provider_addressing_and_path_without_v1(mock_gateway: RunningServer) -> None:
    r = httpx.post(f"{mock_gateway.url}/chat/completions", json={**HELLO, "model": "mock/anything"})
    assert r.status_code == 200 and r.headers["x-gateway-model"] == "anything"


def test_stream_frames_and_done(mock_gateway: RunningServer) -> None:
    payload = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{mock_gateway.url}/v1/chat/completions", json=payload) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        text = r.read().decode()
    frames = sse_data(text)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "This is a mock response to: hello"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert len({c["id"] for c in chunks}) == 1


@pytest.mark.parametrize(
    ("payload", "status", "param", "fragment"),
    [
        (b"{not json", 400, None, "could not parse the JSON"),
        (b'{"model": "mock"}', 400, "messages", "Missing required parameter"),
        (b'{"model": "mock", "messages": []}', 400, "messages", ">= 1"),
        (
            b'{"model": "mock", "messages": [{"role": "user", "content": 5}]}',
            400,
            "messages[0].content",
            "Expected",
        ),
        (
            b'{"model": "mock", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}',
            400,
            "max_tokens",
            "Expected `int | null`, got `str`",
        ),
        (
            b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model",
            "Configured models: mock",
        ),
        (
            b'{"model": "ghost/x", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model",
            "does not exist",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx(
    mock_gateway: RunningServer, payload: bytes, status: int, param: str | None, fragment: str
) -> None:
    r = httpx.post(
        f"{mock_gateway.url}/v1/chat/completions",
        content=payload,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status
    error = r.json()["error"]
    assert error["param"] == param and fragment in error["message"]
    assert error["type"] == "invalid_request_error"
    assert r.headers["x-request-id"]


def test_body_over_the_limit_is_413(gateway_factory: GatewayFactory) -> None:
    config = {"server": {"max_body_bytes": 1024}, "providers": {"mock": {"type": "mock"}}}
    big = {"model": "mock/m", "messages": [{"role": "user", "content": "x" * 2000}]}
    with gateway_factory(config) as gw:
        r = httpx.post(f"{gw.url}/v1/chat/completions", json=big)
        assert r.status_code == 413
        assert "1024 bytes" in r.json()["error"]["message"]

        # Chunked upload with no content-length is cut off at the limit too.
        def chunks() -> object:
            yield b'{"model": "mock/m", "messages": [{"role": "user", "content": "'
            for _ in range(20):
                yield b"x" * 100
            yield b'"}]}'

        r = httpx.post(f"{gw.url}/v1/chat/completions", content=chunks())  # type: ignore[arg-type]
        assert r.status_code == 413
        ok = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={**big, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert ok.status_code == 200


def test_too_many_messages_is_a_400(gateway_factory: GatewayFactory) -> None:
    config = {"server": {"max_messages": 3}, "providers": {"mock": {"type": "mock"}}}
    with gateway_factory(config) as gw:
        messages = [{"role": "user", "content": str(i)} for i in range(4)]
        r = httpx.post(
            f"{gw.url}/v1/chat/completions", json={"model": "mock/m", "messages": messages}
        )
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "messages"
        assert "Too many messages: 4; the limit is 3" in r.json()["error"]["message"]


def test_heartbeat_while_upstream_is_silent(gateway_factory: GatewayFactory) -> None:
    config = {
        "server": {"heartbeat_seconds": 0.3},
        "providers": {"slow": {"type": "mock", "first_token_delay_ms": 1200, "chunk_delay_ms": 0}},
    }
    with gateway_factory(config) as gw:
        started = time.monotonic()
        seen: list[tuple[float, str]] = []
        payload = {
            "model": "slow/m",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=payload, timeout=10) as r:
            for line in r.iter_lines():
                if line:
                    seen.append((time.monotonic() - started, line))
    heartbeats = [t for t, line in seen if line == ": keep-alive"]
    first_data = next(t for t, line in seen if line.startswith("data: "))
    assert len(heartbeats) >= 2 and heartbeats[0] < first_data
    assert seen[-1][1] == "data: [DONE]"


def test_models_list_and_retrieve(mock_gateway: RunningServer) -> None:
    r = httpx.get(f"{mock_gateway.url}/v1/models")
    assert r.status_code == 200
    listing = r.json()
    assert listing["object"] == "list"
    ids = [m["id"] for m in listing["data"]]
    assert ids == ["mock", "mock/mock-1"]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in listing["data"])
    one = httpx.get(f"{mock_gateway.url}/v1/models/mock/mock-1").json()
    assert one["id"] == "mock/mock-1" and one["owned_by"] == "mock"
    missing = httpx.get(f"{mock_gateway.url}/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_openapi_documents_chat_completions(mock_gateway: RunningServer) -> None:
    doc = httpx.get(f"{mock_gateway.url}/openapi.json").json()
    op = doc["paths"]["/v1/chat/completions"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]
    assert ref["$ref"].endswith("WireChatRequest")
    assert "messages" in doc["components"]["schemas"]["WireChatRequest"]["required"]
    assert "/v1/models" in doc["paths"]
    assert httpx.get(f"{mock_gateway.url}/docs").status_code == 200


def test_wrong_method_and_unknown_url_use_the_openai_error_shape(
    mock_gateway: RunningServer,
) -> None:
    r = httpx.get(f"{mock_gateway.url}/v1/chat/completions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert "GET is not allowed" in r.json()["error"]["message"]
    r = httpx.post(f"{mock_gateway.url}/v1/completions", json={})
    assert r.status_code == 404
    assert r.json()["error"] == {
        "message": "Unknown request URL: POST /v1/completions.",
        "type": "invalid_request_error",
        "param": None,
        "code": "unknown_url",
    }
    r = httpx.delete(f"{mock_gateway.url}/v1/models")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
