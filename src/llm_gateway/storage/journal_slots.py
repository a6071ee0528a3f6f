"""Journal slots: which process owns which usage journal file.

Processes given the same journal path (gunicorn workers sharing a working directory) each
need a file of their own. Slot 0 is the path itself, slot N is ``<path>.N``; a process
owns a slot while it holds an exclusive ``flock`` on ``<slot>.lock``. The kernel drops the
lock when its holder dies, so a slot whose lock can be taken belongs to nobody alive.

Lock files are never deleted: a process that opened one just before it was removed would
lock a file nobody else can see, and two processes would own the same slot.

Every function here does blocking file I/O: callers run them in a thread.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking, one process per journal
    fcntl = None  # type: ignore[assignment]

MAX_SLOTS = 256

LOCKING = fcntl is not None


def slot_path(base: Path, slot: int) -> Path:
    return base if slot == 0 else base.with_name(f"{base.name}.{slot}")


def try_lock(path: Path) -> IO[bytes] | None:
    """Own the slot ``path`` (open lock file returned; closing it lets the slot go), or
    None when a live process holds it."""
    if fcntl is None:
        return None
    lock = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115 - held open
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return None
    return lock


def claim_free(base: Path) -> tuple[Path, IO[bytes]]:
    """The first slot no live process holds, locked."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        path = slot_path(base, slot)
        lock = try_lock(path)
        if lock is not None:
            return path, lock
    raise RuntimeError(f"every usage journal slot next to {base} is taken")


def slots_with_files(base: Path) -> list[Path]:
    """Slots that have a journal or replay file on disk, in slot order.

    Found by listing the directory rather than probing slot numbers, so a slot left by a
    larger earlier deployment (8 workers, now 2) is found however high its number.
    """
    pattern = re.compile(re.escape(base.name) + r"(?:\.(\d+))?(?:\.replay)?")
    slots: set[int] = set()
    try:
        names = [p.name for p in base.parent.iterdir()]
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match is not None:
            slots.add(int(match.group(1) or 0))
    return [slot_path(base, slot) for slot in sorted(slots)]


__all__ = ["LOCKING", "MAX_SLOTS", "claim_free", "slot_path", "slots_with_files", "try_lock"]
