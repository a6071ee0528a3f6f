"""Journal slots: orphans of dead processes are replayed and deleted; live ones are left
alone; a record submitted after ``aclose`` is only ever appended to a slot it holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.storage.helpers import FlakyStore, journal_lines, record, records

from llm_gateway.storage.journal import Journal
from llm_gateway.storage.journal_slots import slots_with_files
from llm_gateway.storage.writer import UsageWriter

pytestmark = pytest.mark.timeout(30)


def _ids(path: Path) -> list[str]:
    files = [path.with_name(path.name + ".replay"), path]
    return [
        json.loads(line)["request_id"]
        for p in files
        if p.exists()
        for line in p.read_bytes().splitlines()
    ]


def _files_but_locks(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


_HOLDER = """
import sys, time
from llm_gateway.storage.journal import Journal
from tests.unit.storage.helpers import records
journal = Journal(sys.argv[1])
print(journal.claim(), flush=True)
journal.append(records("killed", 7))
print("ready", flush=True)
time.sleep(60)
"""


def _spawn_slot_holder(base: Path) -> subprocess.Popen[str]:
    """A real process that takes a slot, journals 7 records and waits to be killed."""
    return subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(base)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    if child.stdout is not None:
        child.stdout.close()


def _leave_slot(base: Path, slot_records: dict[int, list[str]]) -> None:
    """Fill slots as processes would and let them go as a dying process does."""
    holders = []
    for _ in range(max(slot_records) + 1):
        journal = Journal(base)
        journal.claim()
        holders.append(journal)
    for slot, ids in slot_records.items():
        holders[slot].append([record(i) for i in ids])
    for journal in holders:
        journal.release()


async def test_slots_of_a_larger_earlier_deployment_are_replayed_and_deleted(
    tmp_path: Path,
) -> None:
    # Four workers ran and died with the database down; now one starts (4 -> 1).
    base = tmp_path / "usage.journal"
    left = {slot: [f"w{slot}-{i}" for i in range(5)] for slot in range(4)}
    _leave_slot(base, left)
    # Worker 3 was half way through a replay when it died: both of its files count.
    replaying = base.with_name("usage.journal.3.replay")
    Journal(base.with_name("usage.journal.3")).append([record("w3-replay")])
    os.replace(base.with_name("usage.journal.3"), replaying)
    Journal(base.with_name("usage.journal.3")).append([record("w3-late")])
    assert [p.name for p in slots_with_files(base)] == [
        "usage.journal",
        "usage.journal.1",
        "usage.journal.2",
        "usage.journal.3",
    ]

    store = FlakyStore()
    writer = UsageWriter(store, batch_size=3, journal_path=base)
    await writer.start()
    assert writer.journal.path == base
    expected = {i for ids in left.values() for i in ids} | {"w3-replay", "w3-late"}
    assert writer.journaled == len(expected)
    await writer.aclose()

    assert set(store.rows) == expected
    assert journal_lines(base) == 0
    # The orphans' journals are gone; only lock files remain (never deleted, see slots).
    assert _files_but_locks(tmp_path) == []


async def test_a_slot_held_by_a_live_process_is_left_alone(tmp_path: Path) -> None:
    base = tmp_path / "usage.journal"
    _leave_slot(base, {0: ["dead-0"]})
    live = Journal(base)
    live.claim()  # slot 0 is free again: the live process takes it...
    assert live.path == base
    live.append([record("live-0")])  # ...and holds records the database has not taken

    store = FlakyStore()
    writer = UsageWriter(store, journal_path=base)
    await writer.start()
    assert writer.journal.path == base.with_name("usage.journal.1")
    await writer.aclose()
    assert store.rows == {}  # neither the live slot's record nor a copy of it
    assert _ids(base) == ["dead-0", "live-0"]
    live.release()


async def test_a_slot_of_a_killed_process_is_replayed_by_the_next_writer(tmp_path: Path) -> None:
    # A real process: it takes slot 1 (slot 0 is held here), journals, and is killed; the
    # kernel drops its lock, and the next writer to start replays and deletes its slot.
    base = tmp_path / "usage.journal"
    holder = Journal(base)
    holder.claim()
    child = _spawn_slot_holder(base)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == str(base.with_name("usage.journal.1"))
        assert child.stdout.readline().strip() == "ready"
        # While it lives, its slot is not taken over.
        early = UsageWriter(FlakyStore(), journal_path=base)
        await early.start()
        assert early.journal.path == base.with_name("usage.journal.2")
        assert early.journaled == 0
        await early.aclose()
    finally:
        _kill(child)
    holder.release()

    store = FlakyStore()
    writer = UsageWriter(store, journal_path=base)
    await writer.start()
    await writer.aclose()
    assert sorted(store.rows) == sorted(r.request_id for r in records("killed", 7))
    assert not base.with_name("usage.journal.1").exists()


async def test_a_record_after_aclose_goes_to_a_slot_the_writer_holds(tmp_path: Path) -> None:
    base = tmp_path / "usage.journal"
    down = FlakyStore()
    down.down = True
    closed = UsageWriter(down, journal_path=base)
    await closed.start()
    closed.submit(record("pending"))
    await closed.aclose()
    assert _ids(base) == ["pending"]

    # A new process takes the slot and starts replaying it (the live file is renamed).
    successor = Journal(base)
    assert successor.claim() == base
    replay = successor.begin_replay()
    assert replay is not None

    # A request of the closed writer finishes now: its record must not go into a slot
    # another process owns (it could be unlinked after that replay, unseen)...
    closed.submit(record("late"))
    assert not base.exists() and _ids(base) == ["pending"]
    spare = base.with_name("usage.journal.1")
    assert _ids(spare) == ["late"]
    # ...and the writer holds no slot afterwards: the spare one is an orphan at once.
    successor.finish_replay()
    successor.release()

    store = FlakyStore()
    writer = UsageWriter(store, journal_path=base)
    await writer.start()
    await writer.aclose()
    assert sorted(store.rows) == ["late"]
    assert not spare.exists()


async def test_a_record_after_aclose_goes_to_the_writers_own_slot_when_free(
    tmp_path: Path,
) -> None:
    base = tmp_path / "usage.journal"
    writer = UsageWriter(FlakyStore(), journal_path=base)
    await writer.start()
    await writer.aclose()
    writer.submit(record("late"))
    assert _ids(base) == ["late"]
    again = Journal(base)
    assert again.claim() == base  # released after the append
    again.release()
