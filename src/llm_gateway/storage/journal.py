"""The usage journal: an append-only file of records the database has not taken yet.

One JSON object per line (msgspec). The writer appends here when its memory buffer is
full during an outage, and at shutdown while the database is still away. To replay, the
live file is first renamed to ``<path>.replay`` (new spills go on to a fresh file), the
replay file is read in chunks and written to the database, and only then deleted — so a
crash at any point leaves every record in one of the two files, and replaying a record
twice is harmless because the ledger skips request ids it already has.

One journal belongs to one process. ``claim`` takes an exclusive ``flock`` on
``<path>.lock`` for the process's lifetime; a second live process given the same path
(gunicorn workers sharing a working directory) takes the next free slot, ``<path>.1``,
``<path>.2`` and so on. A slot left by a process that died is claimed by the next one
to start, and its records are replayed. The kernel drops the lock when its holder dies.

Every method here does blocking file I/O: callers run them in a thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking, one process per journal
    fcntl = None  # type: ignore[assignment]

import msgspec

from llm_gateway.core.records import UsageRecord

log = logging.getLogger("llm_gateway.storage")

# Where the journal goes when neither the config nor a SQLite file suggests a place.
DEFAULT_JOURNAL = "./gateway-usage.journal"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(UsageRecord)


MAX_SLOTS = 256


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
        if self._lock is not None or fcntl is None:
            return self.path
        self.base_path.parent.mkdir(parents=True, exist_ok=True)
        base = self.base_path
        for slot in range(MAX_SLOTS):
            path = base if slot == 0 else base.with_name(f"{base.name}.{slot}")
            lock = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                continue
            self._lock = lock
            self._use(path)
            return path
        raise RuntimeError(f"every usage journal slot next to {base} is taken")

    def release(self) -> None:
        """Let the slot go (the lock file stays: removing it could race a new claimer)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def append(self, records: list[UsageRecord]) -> None:
        """Append and fsync: once this returns, the records survive a crash."""
        _append(self.path, records)

    def reject(self, records: list[UsageRecord]) -> None:
        _append(self.rejected_path, records)

    def count(self) -> int:
        """Records waiting in both files (lines, so a torn line counts too)."""
        return sum(_count_lines(p) for p in (self.replay_path, self.path))

    def has_records(self) -> bool:
        return any(_size(p) > 0 for p in (self.replay_path, self.path))

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
