"""Smoke test of the benchmark harness: fake upstream + driver in-process, direct only, ~1 s.

Keeps bench/ from rotting silently: the fake must speak OpenAI's exact shapes (checked with
the official SDK), and the driver must measure sane numbers for every scenario kind.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from bench.driver import Pool, RunResult, Workload, build_request, percentile
from bench.fake_upstream import server_port, start_fake
from bench.report import aggregate, check_targets, table

pytestmark = pytest.mark.timeout(20)

PATH = "/v1/chat/completions"


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server, _state = await start_fake()
    try:
        yield server_port(server)
    finally:
        server.close()


def _body(model: str, n: int, stream: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": n,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def test_fake_speaks_openai_shapes(port: int) -> None:
    openai = pytest.importorskip("openai")
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    try:
        resp = await client.chat.completions.create(
            model="bench-model", messages=[{"role": "user", "content": "hi"}], max_tokens=7
        )
        assert resp.object == "chat.completion"
        assert resp.choices[0].message.content == "Hello from the benchmark fake upstream."
        assert resp.choices[0].finish_reason == "stop"
        assert resp.usage is not None and resp.usage.completion_tokens == 7
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model="bench-model-paced-5",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=5,
                stream=True,
                stream_options={"include_usage": True},
            )
        ]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "tok0 tok1 tok2 tok3 tok4 "
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 5
        models = await client.models.list()
        assert [m.id for m in models.data] == ["bench-model"]
    finally:
        await client.close()


async def _run(port: int, body: dict[str, object], conc: int, **kw: float) -> RunResult:
    stream = bool(body.get("stream"))
    n = body["max_tokens"]
    assert isinstance(n, int)
    work = Workload(
        build_request("127.0.0.1", port, PATH, body),
        stream=stream,
        expected_chunks=n if stream else None,
        interval_ms=float(kw.pop("interval_ms", 0.0)),
    )
    pool = Pool("127.0.0.1", port, conc)
    try:
        return await pool.run(work, total=int(kw.pop("total", 10**9)), **kw)  # type: ignore[arg-type]
    finally:
        pool.close()


async def test_driver_measures_every_scenario_kind(port: int) -> None:
    c1 = await _run(port, _body("bench-model", 16, False), 1, total=300, duration_s=0.2)
    assert c1.ok == 300 and c1.errors == 0 and c1.status_counts == {"200": 300}
    assert 0 < c1.latency_us["p50"] <= c1.latency_us["p99"] < 50_000
    assert c1.rate > 500

    c16 = await _run(port, _body("bench-model", 16, False), 16, duration_s=0.2)
    assert c16.ok > 200 and c16.errors == 0 and c16.rate > 1000

    burst = await _run(port, _body("bench-model", 50, True), 8, duration_s=0.2)
    assert burst.ok > 20 and burst.errors == 0 and burst.incomplete_streams == 0
    assert burst.chunks == 50 * burst.ok
    assert 0 < burst.ttft_us["p50"] <= burst.latency_us["p50"]

    paced = await _run(
        port,
        _body("bench-model-paced-20", 5, True),
        50,
        duration_s=0.3,
        ramp_s=0.05,
        collect_gaps=True,
        interval_ms=20,
    )
    assert paced.ok >= 50 and paced.errors == 0 and paced.incomplete_streams == 0
    assert paced.stalled_streams == 0
    assert 15_000 < paced.gap_us["p50"] < 60_000  # the fake's own 20 ms pacing
    assert paced.gap_us["n"] == 4 * paced.ok
    assert paced.ttft_us["p50"] < 20_000  # the first content chunk is not paced

    # the report layer digests these results
    direct = {
        "lat_c1": [c1.to_dict()],
        "burst_c64": [burst.to_dict() | {"chunks_per_s": burst.chunks / burst.wall_s}],
        "paced_1000": [paced.to_dict()],
    }
    agg = aggregate({k: {"direct": v, "gateway": []} for k, v in direct.items()})
    assert agg["lat_c1"]["metrics"]["latency_us.p50"]["direct"] == c1.latency_us["p50"]
    assert agg["lat_c1"]["metrics"]["latency_us.p50"]["gateway"] is None
    targets = check_targets(agg, {})
    assert all(t["pass"] is None for t in targets)  # no gateway: everything pending
    assert "pending" in table(agg, {}, targets)
    json.dumps(agg)


async def test_driver_counts_bad_answers(port: int) -> None:
    wrong = await _run(
        port, _body("bench-model", 5, True) | {"max_tokens": 4}, 2, total=10, duration_s=1
    )
    assert wrong.ok == 10  # expected_chunks taken from the body: all complete
    work = Workload(
        build_request("127.0.0.1", port, PATH, _body("bench-model", 4, True)),
        stream=True,
        expected_chunks=5,
    )
    pool = Pool("127.0.0.1", port, 2)
    try:
        res = await pool.run(work, total=10, duration_s=1)
    finally:
        pool.close()
    assert res.ok == 0 and res.incomplete_streams == 10
    bad = Workload(build_request("127.0.0.1", port, "/nope", {}))
    pool = Pool("127.0.0.1", port, 1)
    try:
        res = await pool.run(bad, total=5, duration_s=1)
    finally:
        pool.close()
    assert res.ok == 0 and res.errors == 5 and res.status_counts == {"404": 5}


def test_percentile() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([1, 2, 3, 4], 50) == 2.0
    assert percentile(list(range(1, 101)), 99) == 99.0
