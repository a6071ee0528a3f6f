"""Serve any ASGI app on a real socket on 127.0.0.1, in a background thread.

Used for fake upstreams (timeouts and disconnects need a real socket) and for running the
gateway itself in end-to-end tests. The context manager is synchronous, so it works from
sync tests, async tests and session fixtures alike; the server has its own event loop.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

__all__ = ["RunningServer", "run_server"]


@dataclass
class RunningServer:
    url: str  # e.g. "http://127.0.0.1:54321", no trailing slash
    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread


@contextmanager
def run_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    **uvicorn_kwargs: Any,
) -> Iterator[RunningServer]:
    """Run ``app`` until the block exits. ``port=0`` picks a free port.

    Extra keyword arguments go to ``uvicorn.Config`` (``lifespan="on"``, ``http="h11"``,
    ``ws=...``). The socket is bound before the thread starts, so there is no window in
    which another process can take the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        # An open stream must not hold the test run hostage at shutdown.
        "timeout_graceful_shutdown": 1,
    }
    options.update(uvicorn_kwargs)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{bound_port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the ASGI server exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the ASGI server did not start within {startup_timeout}s")
            time.sleep(0.005)
        yield RunningServer(
            url=f"http://{host}:{bound_port}",
            host=host,
            port=bound_port,
            server=server,
            thread=thread,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        sock.close()
