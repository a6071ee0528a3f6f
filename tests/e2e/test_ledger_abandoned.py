"""A request the client abandons is still in the ledger, with what it really consumed.

A stream cut by the client half-way is recorded with the tokens produced until then
(counted locally: the upstream never got to send its usage); a non-streamed call the
client gave up on is recorded too, with the client-closed status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import read_ledger, serve_gateway, wait_for_ledger
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.fakes.scenarios import Scenario
from tests.fakes.server import RunningServer, run_server


@pytest.fixture
def fake() -> Iterator[tuple[OpenAIUpstream, RunningServer]]:
    upstream = OpenAIUpstream("openai", api_key="sk-up")
    with run_server(upstream) as server:
        yield upstream, server


def test_abandoned_stream_and_call_are_recorded(
    fake: tuple[OpenAIUpstream, RunningServer], tmp_path: Path
) -> None:
    upstream, server = fake
    url = f"sqlite:///{tmp_path}/gateway.db"
    config = {
        "storage": {"url": url, "flush_seconds": 0.05},
        "providers": {
            "up": {"type": "openai_compatible", "base_url": f"{server.url}/v1", "api_key": "sk-up"}
        },
        "models": {"gpt": {"routes": [{"provider": "up", "model": "gpt-4o-mini"}]}},
    }
    with serve_gateway(config) as gateway:
        upstream.queue(Scenario.reply(*[f"word{i} " for i in range(200)], chunk_delay=0.02))
        body = {"model": "gpt", "messages": [{"role": "user", "content": "long"}], "stream": True}
        pieces = 0
        with httpx.stream(
            "POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=10
        ) as answer:
            stream_id = answer.headers["x-request-id"]
            for line in answer.iter_lines():
                if line.startswith("data: ") and "word" in line:
                    pieces += 1
                    if pieces == 10:
                        break
        upstream.wait_for_disconnect(timeout=2)

        upstream.queue(Scenario(text=("late",), hang_before_headers=5))
        plain = {"model": "gpt", "messages": [{"role": "user", "content": "x"}]}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json=plain,
                timeout=0.3,
                headers={"x-request-id": "gave-up"},
            )
        upstream.wait_for_disconnect(timeout=2)
        wait_for_ledger(gateway.url)
        time.sleep(0.3)  # let the writer flush behind the requests
    by_id = {r.request_id: r for r in asyncio.run(read_ledger(url))}
    stream = by_id[stream_id]
    assert stream.streamed and stream.status == 200
    assert stream.error_code is not None and "client" in stream.error_code
    assert stream.tokens_estimated and stream.provider == "up"
    # At least the ten pieces read (two tokens each: "word", "N "), and far from all 200.
    assert 10 <= stream.completion_tokens < 200
    assert stream.prompt_tokens > 0 and stream.ttft_ms is not None
    gave_up = next(r for r in by_id.values() if r.request_id.startswith("gave-up"))
    assert gave_up.status == 499 and not gave_up.streamed
    assert gave_up.error_code is not None and "client" in gave_up.error_code
