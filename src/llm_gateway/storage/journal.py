"""The usage journal: an append-only file of records the database has not taken yet.

One JSON object per line (msgspec). The writer appends here when its memory buffer is
full during an outage, and at shutdown while the database is still away. To replay, the
live file is first renamed to ``<path>.replay`` (new spills go on to a fresh file), the
replay file is read in chunks and written to the database, and only then deleted — so a
crash at any point leaves every record in one of the two files, and replaying a record
twice is harmless because the ledger skips request ids it already has.

One journal belongs to one process (slots, ``journal_slots.py``). ``claim`` takes the
first free slot for the process's lifetime; ``adopt_orphans`` then moves the records of
every other slot no live process holds (left by a process that died, or by a deployment
with more workers than this one) into this journal, where they are replayed, and deletes
those files. Nothing is written to a slot without holding its lock.

Every method here does blocking file I/O: callers run them in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator
from pathlib import Path
from typing import IO

import msgspec

from llm_gateway.core.records import UsageRecord
from llm_gateway.storage.journal_slots import LOCKING, claim_free, slots_with_files, try_lock

log = logging.getLogger("llm_gateway.storage")

# Where the journal goes when neither the config nor a SQLite file suggests a place.
DEFAULT_JOURNAL = "./gateway-usage.journal"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(UsageRecord)


class Journal:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.base_path = Path(path)
        self._use(self.base_path)
        self.corrupt_lines = 0  # lines that could not be read back (a torn final write)
        self._lock: IO[bytes] | None = None

    def _use(self, path: Path) -> None:
        self.path = path
        self.replay_path = path.with_name(path.name + ".replay")
        # Records the database refused on their own; kept for a person, never replayed.
        self.rejected_path = path.with_name(path.name + ".rejected")

    def claim(self) -> Path:
        """Take the first journal slot no other live process holds; returns its path."""
        if self._lock is not None or not LOCKING:
            return self.path
        path, self._lock = claim_free(self.base_path)
        self._use(path)
        return path

    def release(self) -> None:
        """Let the slot go (the lock file stays: removing it could race a new claimer)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def adopt_orphans(self, chunk_size: int = 1000) -> int:
        """Move the records of every slot no live process holds into this (claimed)
        journal and delete the orphan's files; returns the records moved.

        Records are appended here (fsynced) before the orphan's files go, so a crash in
        between leaves them in both places, which the ledger's unique request id makes
        harmless. The orphan stays locked while it is read, so no process claims it and
        writes to it meanwhile.
        """
        if self._lock is None:
            return 0
        moved = 0
        for path in slots_with_files(self.base_path):
            if path == self.path:
                continue
            lock = try_lock(path)
            if lock is None:  # a live process owns it
                continue
            try:
                orphan = Journal(path)
                for source in (orphan.replay_path, orphan.path):
                    if _size(source) > 0:
                        for chunk in orphan.read_chunks(source, chunk_size):
                            self.append(chunk)
                            moved += len(chunk)
                orphan.replay_path.unlink(missing_ok=True)
                orphan.path.unlink(missing_ok=True)
                self.corrupt_lines += orphan.corrupt_lines
            finally:
                lock.close()
            log.info("usage journal %s: took over the records of %s", self.path, path)
        return moved

    def append(self, records: list[UsageRecord]) -> None:
        """Append and fsync: once this returns, the records survive a crash."""
        _append(self.path, records)

    def append_in_slot(self, records: list[UsageRecord]) -> None:
        """Append while owning a slot: this one's if still held, else any free slot taken
        just for the write (after ``release``, a new process may already be replaying
        this one; its next start, or another process's, adopts the records)."""
        if self._lock is not None or not LOCKING:
            self.append(records)
            return
        self.claim()
        try:
            self.append(records)
        finally:
            self.release()

    def reject(self, records: list[UsageRecord]) -> None:
        _append(self.rejected_path, records)

    def count(self) -> int:
        """Records waiting in both files (lines, so a torn line counts too)."""
        return sum(_count_lines(p) for p in (self.replay_path, self.path))

    def begin_replay(self) -> Path | None:
        """The file to replay next: a leftover ``.replay`` first, else the live file renamed
        to ``.replay``. None when there is nothing to replay."""
        if _size(self.replay_path) > 0:
            return self.replay_path
        if _size(self.path) > 0:
            os.replace(self.path, self.replay_path)
            return self.replay_path
        return None

    def finish_replay(self) -> None:
        """The replay file is committed to the database: drop it."""
        self.replay_path.unlink(missing_ok=True)

    def read_chunks(self, path: Path, size: int) -> Generator[list[UsageRecord], None, None]:
        """Records in ``path``, ``size`` at a time (drive with ``next`` in a thread)."""
        chunk: list[UsageRecord] = []
        with open(path, "rb") as f:
            for line in f:
                stripped = line.strip()
                if not stripped:
                    continue
                try:
                    chunk.append(_decoder.decode(stripped))
                except msgspec.DecodeError:
                    self.corrupt_lines += 1
                    log.warning("skipping an unreadable line in the usage journal %s", path)
                    continue
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk


def _append(path: Path, records: list[UsageRecord]) -> None:
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(_encoder.encode(r) + b"\n" for r in records)
    with open(path, "ab") as f:
        # A crash mid-write can leave a torn last line; start on a fresh line so only
        # that one record (already lost) is unreadable, not the next one too.
        if f.tell() > 0 and not _ends_with_newline(path):
            data = b"\n" + data
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0


__all__ = ["DEFAULT_JOURNAL", "Journal"]
