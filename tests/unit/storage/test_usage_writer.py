"""``UsageWriter``: batching, outages, spilling to the journal, replay, shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from tests.unit.storage.helpers import FlakyStore, journal_lines, record, records, wait_until

from llm_gateway.storage.writer import UsageWriter

pytestmark = pytest.mark.timeout(30)

FAST_BACKOFF: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.1}


async def test_full_batches_go_at_once_and_the_rest_after_flush_seconds(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = UsageWriter(
        store, batch_size=10, flush_seconds=0.4, journal_path=tmp_path / "j", **FAST_BACKOFF
    )
    await writer.start()
    began = time.monotonic()
    for r in records("r", 25):
        writer.submit(r)
    await wait_until(lambda: len(store.rows) >= 20, within=0.3)  # full batches: no wait
    assert store.batches[:2] == [10, 10]
    await asyncio.sleep(0.1)
    assert len(store.rows) == 20  # the last five wait for flush_seconds...
    await wait_until(lambda: len(store.rows) == 25)
    assert time.monotonic() - began >= 0.35  # ...and not much longer
    assert store.batches == [10, 10, 5]
    assert (writer.written, writer.inserted, writer.pending, writer.failures) == (25, 25, 0, 0)
    await writer.aclose()


async def test_a_lone_record_is_written_within_flush_seconds(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = UsageWriter(store, batch_size=500, flush_seconds=0.2, journal_path=tmp_path / "j")
    await writer.start()
    writer.submit(record("lone"))
    await asyncio.sleep(0.05)
    assert not store.rows and writer.pending == 1
    await wait_until(lambda: "lone" in store.rows, within=1.0)
    await writer.aclose()


async def test_outage_keeps_records_in_memory_and_writes_them_once_back(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = UsageWriter(
        store, batch_size=4, flush_seconds=0.05, journal_path=tmp_path / "j", **FAST_BACKOFF
    )
    await writer.start()
    store.down = True
    for r in records("r", 10):
        writer.submit(r)
    await wait_until(lambda: writer.failures >= 3)
    assert writer.pending == 10 and not store.rows
    assert writer.last_error is not None and "down" in writer.last_error
    store.down = False
    await wait_until(lambda: writer.pending == 0)
    assert sorted(store.rows) == sorted(f"r-{i}" for i in range(10))
    assert writer.journaled == 0 and not (tmp_path / "j").exists()
    await writer.aclose()


async def test_a_lost_commit_is_retried_and_stored_once(tmp_path: Path) -> None:
    store = FlakyStore()
    store.lose_commit = True
    writer = UsageWriter(
        store, batch_size=5, flush_seconds=0.05, journal_path=tmp_path / "j", **FAST_BACKOFF
    )
    await writer.start()
    for r in records("r", 5):
        writer.submit(r)
    await wait_until(lambda: writer.failures >= 2)
    store.lose_commit = False
    await wait_until(lambda: writer.pending == 0)
    assert len(store.rows) == 5 and writer.inserted == 0  # the retry found them all stored
    await writer.aclose()


async def test_beyond_max_buffered_the_oldest_spill_to_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "usage.journal"
    store = FlakyStore()
    store.down = True
    writer = UsageWriter(
        store, batch_size=3, max_buffered=5, flush_seconds=0.05, journal_path=journal
    )
    await writer.start()
    for r in records("r", 50):
        writer.submit(r)
    await wait_until(lambda: writer.journaled >= 45 - 3)
    # Memory holds at most max_buffered waiting records plus the batch being retried.
    assert writer.pending <= 5 + 3
    assert writer.journaled == journal_lines(journal) == 50 - writer.pending
    store.down = False
    await writer.flush()
    assert sorted(store.rows) == sorted(f"r-{i}" for i in range(50))
    assert (writer.journaled, writer.pending) == (0, 0)
    assert journal_lines(journal) == 0
    await writer.aclose()


async def test_a_journal_left_by_a_crash_is_replayed_at_start(tmp_path: Path) -> None:
    journal = tmp_path / "usage.journal"
    down = FlakyStore()
    down.down = True
    crashed = UsageWriter(down, batch_size=2, max_buffered=2, journal_path=journal)
    await crashed.start()
    for r in records("r", 20):
        crashed.submit(r)
    await wait_until(lambda: crashed.journaled >= 16)  # 2 in flight, 2 buffered
    spilled = crashed.journaled
    for task in crashed._tasks:  # the process dies: no aclose, memory is gone...
        task.cancel()
    crashed.journal.release()  # ...and the kernel drops its lock on the journal
    journaled_ids = [json.loads(line)["request_id"] for line in journal.read_bytes().splitlines()]
    assert len(journaled_ids) == spilled

    store = FlakyStore()
    first = journaled_ids[0]
    store.rows[first] = record(first)  # part of it was written before the crash
    writer = UsageWriter(store, batch_size=7, journal_path=journal)
    await writer.start()
    assert writer.journaled == spilled
    await wait_until(lambda: writer.journaled == 0)
    assert sorted(store.rows) == sorted(journaled_ids)
    assert writer.written == spilled and writer.inserted == spilled - 1
    assert journal_lines(journal) == 0
    await writer.aclose()


async def test_aclose_with_the_database_down_journals_everything(tmp_path: Path) -> None:
    journal = tmp_path / "usage.journal"
    store = FlakyStore()
    store.down = True
    writer = UsageWriter(store, batch_size=4, max_buffered=6, journal_path=journal)
    await writer.start()
    for r in records("r", 15):
        writer.submit(r)
    await writer.aclose()
    assert writer.pending == 0 and journal_lines(journal) == 15
    writer.submit(record("late"))  # a request finishing during shutdown: journaled too
    assert journal_lines(journal) == 16

    store.down = False
    reopened = UsageWriter(store, journal_path=journal)
    await reopened.start()
    await reopened.aclose()
    assert sorted(store.rows) == sorted([*(f"r-{i}" for i in range(15)), "late"])
    assert journal_lines(journal) == 0


async def test_aclose_flushes_what_waits(tmp_path: Path) -> None:
    store = FlakyStore()
    writer = UsageWriter(store, batch_size=100, flush_seconds=60, journal_path=tmp_path / "j")
    await writer.start()
    for r in records("r", 7):
        writer.submit(r)
    await writer.aclose()
    assert len(store.rows) == 7 and not (tmp_path / "j").exists()


async def test_a_torn_journal_line_loses_only_itself(tmp_path: Path) -> None:
    journal = tmp_path / "usage.journal"
    writer = UsageWriter(FlakyStore(), journal_path=journal)
    writer.journal.append([record("a")])
    tear(journal)
    writer.journal.append([record("b")])
    store = FlakyStore()
    replay = UsageWriter(store, journal_path=journal)
    await replay.start()
    await replay.aclose()
    assert sorted(store.rows) == ["a", "b"]
    assert replay.journal.corrupt_lines == 1


async def test_a_record_the_database_refuses_does_not_hold_up_the_rest(tmp_path: Path) -> None:
    journal = tmp_path / "usage.journal"
    store = FlakyStore()
    store.poison = {"r-3"}
    writer = UsageWriter(store, batch_size=5, flush_seconds=0.02, journal_path=journal)
    await writer.start()
    for r in records("r", 12):
        writer.submit(r)
    await wait_until(lambda: writer.pending == 0)
    assert sorted(store.rows) == sorted(f"r-{i}" for i in range(12) if i != 3)
    assert writer.rejected == 1 and writer.failures == 0
    rejected = journal.with_name(journal.name + ".rejected").read_bytes().splitlines()
    assert [json.loads(line)["request_id"] for line in rejected] == ["r-3"]
    await writer.aclose()
    assert not journal.exists()  # set aside, not replayed


async def test_a_refused_record_in_the_journal_does_not_block_the_replay(tmp_path: Path) -> None:
    journal = tmp_path / "usage.journal"
    UsageWriter(FlakyStore(), journal_path=journal).journal.append(records("j", 6))
    store = FlakyStore()
    store.poison = {"j-0"}
    writer = UsageWriter(store, batch_size=4, journal_path=journal)
    await writer.start()
    await wait_until(lambda: writer.journaled == 0)
    assert sorted(store.rows) == [f"j-{i}" for i in range(1, 6)] and writer.rejected == 1
    await writer.aclose()


async def test_processes_sharing_a_journal_path_take_their_own_slots(tmp_path: Path) -> None:
    # Gunicorn workers in one working directory get the same default journal path.
    journal = tmp_path / "usage.journal"
    store = FlakyStore()
    store.down = True
    first = UsageWriter(store, batch_size=2, max_buffered=2, journal_path=journal)
    second = UsageWriter(store, batch_size=2, max_buffered=2, journal_path=journal)
    await first.start()
    await second.start()
    assert (first.journal.path, second.journal.path) == (journal, tmp_path / "usage.journal.1")
    for i in range(10):
        first.submit(record(f"a-{i}"))
        second.submit(record(f"b-{i}"))
    await wait_until(lambda: first.journaled >= 6 and second.journaled >= 6)

    # The second process dies; the next one to start takes its slot and replays it.
    for task in second._tasks:
        task.cancel()
    second.journal.release()
    spilled = [
        json.loads(line)["request_id"] for line in second.journal.path.read_bytes().splitlines()
    ]
    store.down = False
    third = UsageWriter(store, journal_path=journal)
    await third.start()
    assert third.journal.path == second.journal.path
    await first.aclose()
    await third.aclose()
    assert set(spilled) <= set(store.rows)
    assert {f"a-{i}" for i in range(10)} <= set(store.rows)
    assert journal_lines(journal) == journal_lines(third.journal.path) == 0


def tear(journal: Path) -> None:
    with open(journal, "ab") as f:
        f.write(b'{"request_id":"torn","created')  # the process died mid-write


def test_submit_never_raises_even_when_broken(tmp_path: Path) -> None:
    writer = UsageWriter(FlakyStore(), journal_path=tmp_path / "j")
    writer._buffer = None  # type: ignore[assignment]
    writer.submit(record("x"))  # logged, not raised


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        UsageWriter(FlakyStore(), batch_size=0)
