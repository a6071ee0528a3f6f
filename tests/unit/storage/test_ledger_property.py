"""Property: whatever the interleaving of submissions, outages, lost commits and restarts,
every submitted request id ends up in the ledger, and is counted as new exactly once."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.storage.helpers import FlakyStore, journal_lines, record

from llm_gateway.storage.writer import UsageWriter

pytestmark = pytest.mark.timeout(60)

Op = tuple[str, int]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(1, 30)),
        st.tuples(st.sampled_from(["down", "up", "lose_commit", "keep_commit"]), st.just(0)),
        st.tuples(st.just("tick"), st.integers(1, 5)),
        st.tuples(st.just("restart"), st.just(0)),  # a clean shutdown and a new process
        st.tuples(st.just("flush"), st.just(0)),
    ),
    max_size=25,
)


async def run(ops: list[Op], batch_size: int, max_buffered: int, journal: Path) -> None:
    store = FlakyStore()

    def new_writer() -> UsageWriter:
        return UsageWriter(
            store,
            batch_size=batch_size,
            flush_seconds=0.003,
            max_buffered=max_buffered,
            journal_path=journal,
            backoff_initial=0.001,
            backoff_max=0.004,
            close_timeout=2.0,
        )

    writer = new_writer()
    await writer.start()
    writers = [writer]
    sent: list[str] = []
    for op, n in ops:
        if op == "submit":
            for _ in range(n):
                request_id = f"r{len(sent)}"
                writer.submit(record(request_id))
                sent.append(request_id)
        elif op == "down":
            store.down = True
        elif op == "up":
            store.down = False
        elif op == "lose_commit":
            store.lose_commit = True
        elif op == "keep_commit":
            store.lose_commit = False
        elif op == "tick":
            await asyncio.sleep(0.002 * n)
        elif op == "flush":
            await writer.flush()
        elif op == "restart":
            await writer.aclose()
            writer = new_writer()
            await writer.start()
            writers.append(writer)
    store.down = False
    store.lose_commit = False
    await writer.aclose()

    assert sorted(store.rows) == sorted(sent)
    # Each id is new exactly once; with lost commits the writer cannot know it was new.
    inserted = sum(w.inserted for w in writers)
    if any(op == "lose_commit" for op, _ in ops):
        assert inserted <= len(sent)
    else:
        assert inserted == len(sent)
    assert writer.pending == 0 and writer.journaled == 0
    assert journal_lines(journal) == 0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=operations, batch_size=st.integers(1, 8), max_buffered=st.integers(1, 20))
def test_every_record_is_stored_once_whatever_happens(
    ops: list[Op], batch_size: int, max_buffered: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        journal = Path(directory) / "usage.journal"
        asyncio.run(asyncio.wait_for(run(ops, batch_size, max_buffered, journal), 20))
