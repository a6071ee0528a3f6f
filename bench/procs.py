"""Child processes of the benchmark: spawn pinned, read /proc, always clean up.

Every child is started in its own session (so its process group id is its pid) and is
registered here; :func:`kill_all` ends exactly those groups, by id, and runs on normal exit,
on exceptions, on Ctrl-C/SIGTERM (via the runner) and from the watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_CHILDREN: list[subprocess.Popen[bytes]] = []
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def pinned(cmd: Sequence[str], core: int | None) -> list[str]:
    """Prefix ``cmd`` with ``taskset -c core`` when pinning is on and possible."""
    if core is None or shutil.which("taskset") is None:
        return list(cmd)
    return ["taskset", "-c", str(core), *cmd]


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the runner dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(
    cmd: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    _CHILDREN.append(proc)
    return proc


def kill(proc: subprocess.Popen[bytes], grace_s: float = 3.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it does not go."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace_s)
    else:  # the leader is gone; make sure nothing of its group lingers
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc in _CHILDREN:
        _CHILDREN.remove(proc)


def kill_all() -> None:
    for proc in list(_CHILDREN):
        kill(proc, grace_s=1.5)


def read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """Read one line of a child's stdout within ``timeout_s`` ('' on timeout or exit)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data = os.read(fd, 4096)
        if not data:
            break
        buf += data
        if b"\n" in buf:
            return buf.split(b"\n", 1)[0].decode(errors="replace")
    return ""


# /proc readers -------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def status_kb(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM, ...), 0 if unavailable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_kb(root: int, key: str) -> int:
    return sum(status_kb(p, key) for p in tree_pids(root))


def tree_cpu_s(root: int) -> float:
    """User+system CPU seconds of ``root`` and its live descendants."""
    ticks = 0
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLK_TCK


def core_busy_s() -> dict[int, float]:
    """CPU seconds each core has spent busy since boot (from /proc/stat)."""
    out: dict[int, float] = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                name, *rest = line.split()
                fields = [int(x) for x in rest]
                idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
                out[int(name[3:])] = (sum(fields[:8]) - idle) / _CLK_TCK
    except (OSError, ValueError):
        pass
    return out


# A tiny one-shot HTTP client for readiness checks --------------------------------------


async def http_once(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    timeout_s: float = 5.0,
    headers: str = "",
) -> tuple[int, bytes]:
    """One ``Connection: close`` request; returns (status, raw body).  Raises OSError.

    ``headers`` are extra raw header lines, each ending in CRLF."""

    async def go() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = (
                f"{method} {path} HTTP/1.1\r\nhost: {host}:{port}\r\nconnection: close\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                f"{headers}\r\n"
            )
            writer.write(head.encode() + body)
            raw = await reader.read(-1)
        finally:
            writer.close()
        status_line, _, rest = raw.partition(b"\r\n")
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise OSError(f"bad response: {raw[:80]!r}")
        head_block, _, payload = rest.partition(b"\r\n\r\n")
        if b"transfer-encoding: chunked" in head_block.lower():
            payload = _dechunk(payload)
        return int(parts[1]), payload

    return await asyncio.wait_for(go(), timeout_s)


def _dechunk(data: bytes) -> bytes:
    out, i = [], 0
    while i < len(data):
        j = data.find(b"\r\n", i)
        if j < 0:
            break
        size = int(data[i:j].split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(data[j + 2 : j + 2 + size])
        i = j + 2 + size + 2
    return b"".join(out)
