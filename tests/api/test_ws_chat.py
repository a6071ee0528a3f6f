"""WS /ws chat over a real socket with a real WebSocket client (the ``websockets`` package)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from llm_gateway.api.ws.chat import MAX_BAD_FRAMES, MAX_IN_FLIGHT
from tests.api.test_generate import MOCK, Served, mock_text, openai_backed, serve_api
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import Scenario

pytestmark = pytest.mark.timeout(20)

FRAME_LIMIT = 4096
SLOW_MOCK: dict[str, Any] = {
    "providers": {"mock": {"type": "mock", "chunk_delay_ms": 5}},
    "models": {"mock": {"routes": [{"provider": "mock", "model": "mock-1"}]}},
    "server": {"ws_max_frame_bytes": FRAME_LIMIT},
}


@pytest.fixture(scope="module")
def api() -> Iterator[Served]:
    with serve_api(SLOW_MOCK) as served:
        yield served


@asynccontextmanager
async def chat(served: Served, query: str = "", **kwargs: Any) -> AsyncIterator[ClientConnection]:
    async with connect(f"{served.ws_url}/ws{query}", open_timeout=5, **kwargs) as ws:
        yield ws


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(5):
        frame = await ws.recv()
    assert isinstance(frame, str)
    parsed: dict[str, Any] = json.loads(frame)
    return parsed


def ask(action: str, content: str, request_id: str | None = None, **data: Any) -> str:
    frame: dict[str, Any] = {
        "action": action,
        "data": {"messages": [{"role": "user", "content": content}], "modelId": "mock", **data},
    }
    if request_id is not None:
        frame["requestId"] = request_id
    return json.dumps(frame)


async def collect(ws: ClientConnection, until: str = "done") -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        frame = await recv(ws)
        frames.append(frame)
        if frame["type"] in (until, "error"):
            return frames


def assert_stats(stats: dict[str, Any]) -> None:
    assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
    assert stats["tokens_per_second"] > 0
    assert 0 <= stats["time_to_first_token_ms"] <= stats["elapsed_ms"]


# --- actions ---------------------------------------------------------------------------


async def test_chat_action_answers_once_with_the_request_id(api: Served) -> None:
    async with chat(api) as ws:
        await ws.send(ask("llm/chat", "hello ws", "r-1", metadata={"tab": 3}))
        frame = await recv(ws)
    assert frame["type"] == "response" and frame["requestId"] == "r-1"
    data = frame["data"]
    assert data["text"] == mock_text("hello ws")
    assert data["model"] == "mock-1" and data["provider"] == "mock"
    assert data["finishReason"] == "stop" and data["metadata"] == {"tab": 3}
    assert_stats(data["stats"])
    record = next(r for r in api.wait_records(1) if r.request_id.startswith("r-1~"))
    assert record.endpoint == "ws.chat" and record.status == 200
    assert re.fullmatch(r"r-1~[0-9a-f]{16}", record.request_id)  # the one suffix format


async def test_a_reused_request_id_still_gets_its_own_usage_record(api: Served) -> None:
    async with chat(api) as ws:
        for _ in range(2):
            await ws.send(ask("llm/chat", "again", "same-id"))
            assert (await recv(ws))["requestId"] == "same-id"
    ids = [r.request_id for r in api.records if r.request_id.startswith("same-id~")]
    assert len(ids) == 2 and len(set(ids)) == 2


async def test_stream_action_sends_chunks_then_done(api: Served) -> None:
    async with chat(api) as ws:
        await ws.send(ask("llm/stream", "stream over ws", systemPrompt="sys", maxTokens=100))
        frames = await collect(ws)
    *chunks, done = frames
    assert done["type"] == "done" and all(f["type"] == "chunk" for f in chunks)
    assert len(chunks) > 3
    rid = done["requestId"]
    assert len(rid) == 32 and all(f["requestId"] == rid for f in chunks)  # generated
    assert "".join(f["data"]["text"] for f in chunks) == mock_text("stream over ws")
    assert done["data"]["finishReason"] == "stop" and "text" not in done["data"]
    assert_stats(done["data"]["stats"])


async def test_provider_without_usage_is_counted_locally_over_ws() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply("no", " usage", usage=None))
    with openai_backed(upstream) as served:
        async with chat(served) as ws:
            await ws.send(ask("llm/stream", "x", "u", modelId="m"))
            frames = await collect(ws)
    stats = frames[-1]["data"]["stats"]
    assert frames[-1]["type"] == "done" and stats["tokens_estimated"] is True
    assert stats["completion_tokens"] > 0


async def test_concurrent_requests_on_one_connection(api: Served) -> None:
    count = 8
    async with chat(api) as ws:
        for i in range(count):
            action = "llm/stream" if i % 2 else "llm/chat"
            await ws.send(ask(action, f"question number {i}", f"q{i}"))
        texts: dict[str, list[str]] = {f"q{i}": [] for i in range(count)}
        finished: dict[str, dict[str, Any]] = {}
        while len(finished) < count:
            frame = await recv(ws)
            rid = frame["requestId"]
            assert rid not in finished, "a frame after the request finished"
            if frame["type"] == "chunk":
                texts[rid].append(frame["data"]["text"])
            else:
                assert frame["type"] in ("response", "done"), frame
                finished[rid] = frame
    for i in range(count):
        rid = f"q{i}"
        frame = finished[rid]
        text = frame["data"]["text"] if frame["type"] == "response" else "".join(texts[rid])
        assert frame["type"] == ("done" if i % 2 else "response")
        assert text == mock_text(f"question number {i}")


async def test_cancel_stops_the_request_and_closes_its_upstream() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply(*[f" w{i}" for i in range(50)], chunk_delay=0.1))
    with openai_backed(upstream) as served:
        async with chat(served) as ws:
            await ws.send(ask("llm/stream", "long", "c-1", modelId="m"))
            first = await recv(ws)
            assert first["type"] == "chunk" and first["requestId"] == "c-1"
            await ws.send(json.dumps({"action": "cancel", "requestId": "c-1"}))
            frames = await collect(ws, until="cancelled")
            assert frames[-1] == {"type": "cancelled", "requestId": "c-1"}
            assert all(f["type"] == "chunk" for f in frames[:-1])
            gone = await asyncio.wait_for(upstream.await_disconnect(), 3)
            assert gone.chunks_sent < 50
            # The connection keeps serving; nothing more comes for the cancelled request.
            await ws.send(ask("llm/chat", "after", "c-2", modelId="m"))
            after = await recv(ws)
            assert after["type"] == "response" and after["requestId"] == "c-2"
        record = next(r for r in served.wait_records(2) if r.request_id.startswith("c-1~"))
    assert record.error_code == "client_closed_request" and record.streamed


async def test_closing_the_socket_cancels_in_flight_upstreams() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply(*[f" w{i}" for i in range(50)], chunk_delay=0.1))
    with openai_backed(upstream) as served:
        async with chat(served) as ws:
            await ws.send(ask("llm/stream", "long", "d-1", modelId="m"))
            assert (await recv(ws))["type"] == "chunk"
        gone = await asyncio.wait_for(upstream.await_disconnect(), 3)
        assert gone.chunks_sent < 50
        record = served.wait_records(1)[0]
    assert record.error_code == "client_closed_request"


async def test_gateway_errors_are_error_frames_with_the_request_id(api: Served) -> None:
    async with chat(api) as ws:
        await ws.send(ask("llm/chat", "x", "e-1", modelId="nope"))
        frame = await recv(ws)
        assert frame["type"] == "error" and frame["requestId"] == "e-1"
        assert frame["error"]["code"] == "model_not_found"
        assert frame["error"]["type"] == "invalid_request_error" and frame["error"]["message"]
        await ws.send(
            json.dumps(
                {
                    "action": "llm/chat",
                    "requestId": "e-2",
                    "data": {"messages": [{"role": "user", "content": "x"}]},
                }
            )
        )
        frame = await recv(ws)
        assert frame["requestId"] == "e-2" and frame["error"]["code"] == "missing_model"


async def test_mid_stream_failure_is_an_error_frame() -> None:
    upstream = OpenAIUpstream("openai_compatible")
    upstream.queue(Scenario.reply("one", " two", " three", disconnect_after=2, chunk_delay=0.2))
    with openai_backed(upstream) as served:
        async with chat(served) as ws:
            await ws.send(ask("llm/stream", "x", "f-1", modelId="m"))
            frames = await collect(ws)
    assert [f["type"] for f in frames] == ["chunk", "error"]
    assert frames[0]["data"]["text"] == "one" and frames[1]["requestId"] == "f-1"


# --- bad frames, limits, abuse ---------------------------------------------------------

BAD_FRAMES: list[tuple[str | bytes, str, str | None]] = [
    ("x" * (FRAME_LIMIT + 1), "frame_too_large", None),
    ("é" * (FRAME_LIMIT // 2 + 1), "frame_too_large", None),  # bytes count, not characters
    ("{not json", "invalid_json", None),
    ('{"action": "llm/chat", "requestId": "\\ud800"}', "invalid_json", None),  # lone surrogate
    ("[1, 2]", "invalid_frame", None),
    ('"llm/chat"', "invalid_frame", None),
    (b"\x00\x01", "binary_frame", None),
    ('{"action": "llm/fly", "data": {}}', "unknown_action", "action"),
    ('{"data": {}}', "unknown_action", "action"),
    ('{"action": "llm/chat"}', "invalid_data", "data"),
    ('{"action": "llm/chat", "data": {"messages": []}}', "invalid_data", "data.messages"),
    (
        '{"action": "llm/chat", "data": {"messages": [{"role": "bot", "content": "x"}]}}',
        "invalid_data",
        "data.messages.0.role",
    ),
    (
        '{"action": "llm/chat", "data": {"messages": [{"role": "user", "content": "x"}],'
        ' "maxTokens": -1}}',
        "invalid_data",
        "data.maxTokens",
    ),
    ('{"action": "llm/chat", "requestId": 7, "data": {}}', "invalid_request_id", "requestId"),
    ('{"action": "cancel"}', "invalid_request_id", "requestId"),
]


async def test_every_bad_frame_gets_an_error_naming_the_problem(api: Served) -> None:
    assert len(BAD_FRAMES) >= MAX_BAD_FRAMES  # so the set is run over two connections
    for start in range(0, len(BAD_FRAMES), MAX_BAD_FRAMES - 1):
        async with chat(api) as ws:
            for frame, code, param in BAD_FRAMES[start : start + MAX_BAD_FRAMES - 1]:
                await ws.send(frame)
                reply = await recv(ws)
                assert reply["type"] == "error", (frame, reply)
                assert reply["error"]["code"] == code, (frame, reply)
                assert reply["error"]["param"] == param
                if param is not None:
                    assert param.split(".")[-1] in reply["error"]["message"]
            # Still serving after nine bad frames.
            await ws.send(ask("llm/chat", "still there", "ok"))
            assert (await recv(ws))["data"]["text"] == mock_text("still there")


async def test_cancel_of_unknown_and_duplicate_request_ids(api: Served) -> None:
    async with chat(api) as ws:
        await ws.send(json.dumps({"action": "cancel", "requestId": "nobody"}))
        reply = await recv(ws)
        assert reply["requestId"] == "nobody" and reply["error"]["code"] == "unknown_request_id"
        long = "word " * 300
        await ws.send(ask("llm/stream", long, "dup"))
        await ws.send(ask("llm/stream", long, "dup"))
        frames = await collect(ws)
        errors = [f for f in frames if f["type"] == "error"]
        assert errors and errors[0]["error"]["code"] == "duplicate_request_id"
        assert errors[0]["requestId"] == "dup"
        await ws.send(json.dumps({"action": "cancel", "requestId": "dup"}))
        assert (await collect(ws, until="cancelled"))[-1]["type"] == "cancelled"


async def test_more_than_the_in_flight_cap_is_refused(api: Served) -> None:
    long = "word " * 400  # ~2 s of chunks at 5 ms each
    async with chat(api) as ws:
        for i in range(MAX_IN_FLIGHT + 1):
            await ws.send(ask("llm/stream", long, f"cap{i}"))
        while True:
            frame = await recv(ws)
            if frame["type"] == "error":
                break
        assert frame["requestId"] == f"cap{MAX_IN_FLIGHT}"
        assert frame["error"]["code"] == "too_many_in_flight"


async def test_repeated_abuse_closes_with_1008(api: Served) -> None:
    async with chat(api) as ws:
        for _ in range(MAX_BAD_FRAMES):
            await ws.send("not json")
        codes = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                codes.append((await recv(ws))["error"]["code"])
    assert codes == ["invalid_json"] * MAX_BAD_FRAMES + ["too_many_invalid_frames"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# --- authentication at connect ---------------------------------------------------------


async def test_a_key_is_required_at_connect_once_an_admin_key_is_set() -> None:
    with serve_api({**MOCK, "auth": {"admin_key": "admin-secret"}}) as served:
        async with chat(served) as ws:
            refused = await recv(ws)
            assert refused["type"] == "error"
            assert refused["error"]["code"] == "missing_api_key"
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with chat(served, "?token=wrong") as ws:
            assert (await recv(ws))["error"]["code"] == "invalid_api_key"
        async with chat(served, "?token=admin-secret") as ws:
            await ws.send(ask("llm/chat", "let me in", "a-1"))
            assert (await recv(ws))["data"]["text"] == mock_text("let me in")
        headers = {"Authorization": "Bearer admin-secret"}
        async with chat(served, additional_headers=headers) as ws:
            await ws.send(ask("llm/chat", "header", "a-2"))
            assert (await recv(ws))["data"]["text"] == mock_text("header")


# --- a client that stops reading ------------------------------------------------------------


class StuckSocket:
    """A WebSocket whose client reads ``allow`` frames, then nothing: later sends hang."""

    def __init__(self, frames: list[str], allow: int) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for text in frames:
            self.incoming.put_nowait({"type": "websocket.receive", "text": text})
        self.allow = allow
        self.sent: list[str] = []
        self.closed: int | None = None

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()  # the client sends nothing more, nor leaves

    async def send_text(self, text: str) -> None:
        if len(self.sent) >= self.allow:
            await asyncio.Event().wait()  # the socket buffer is full: never drains
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = code


class EndlessCall:
    """An upstream stream that never ends by itself; records how it was ended."""

    def __init__(self) -> None:
        self.ended: type[BaseException] | None = None

    async def stream(self, emit: Any) -> Any:
        try:
            while True:
                await emit("text", "x" * 100)
                await asyncio.sleep(0)
        except BaseException as exc:
            self.ended = type(exc)
            raise


class EndlessGenerator:
    def __init__(self) -> None:
        self.calls: list[EndlessCall] = []

    async def admit(self, *args: Any, **kwargs: Any) -> EndlessCall:
        call = EndlessCall()
        self.calls.append(call)
        return call


async def test_a_client_that_stops_reading_is_closed_and_its_upstreams_released() -> None:
    from llm_gateway.api.ws.chat import ChatConnection
    from llm_gateway.gate import Caller

    frames = [ask("llm/stream", "go", f"s-{i}") for i in range(3)]
    socket, generator = StuckSocket(frames, allow=5), EndlessGenerator()
    connection = ChatConnection(
        socket,  # type: ignore[arg-type]
        generator,  # type: ignore[arg-type]
        Caller(),
        max_frame_bytes=FRAME_LIMIT,
        send_timeout=0.2,
    )
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(connection.serve(), 3)  # ends by itself: the reader is stopped
    assert asyncio.get_running_loop().time() - started < 1.5
    assert len(generator.calls) == 3 and len(socket.sent) == 5
    assert all(call.ended is not None for call in generator.calls)  # no stream held open
    assert socket.closed == 1013
