"""The real ``llm-gateway serve`` process: starts on built-in defaults, answers, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_API_KEY") and not k.startswith("LLM_GATEWAY_")
    }
    env["HOME"] = str(tmp_path)
    return env


def test_serve_with_no_config_answers_with_the_mock_and_exits_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_gateway", "serve", "--port", str(port)],
        cwd=tmp_path,  # no gateway.yaml here: built-in defaults
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer = None
        while time.monotonic() - started < 15:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "mock", "messages": [{"role": "user", "content": "ping"}]},
                    timeout=2,
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert answer is not None and answer.status_code == 200
        assert (
            answer.json()["choices"][0]["message"]["content"] == "This is a mock response to: ping"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: -SIGTERM is the
    # conventional status of a process ended by SIGTERM.
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert f"http://127.0.0.1:{port}" in err + out


def test_serve_refuses_an_invalid_config_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("providers:\n  openai: {type: openai, timeout: fast}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_gateway",
            "serve",
            "--config",
            str(config),
            "--port",
            str(free_port()),
        ],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert "gateway.yaml" in result.stderr and "providers.openai.timeout" in result.stderr
