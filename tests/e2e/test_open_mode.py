"""Open mode (no admin key, no keys) is for local use: on another address start-up refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.test_serve_process import clean_env, free_port


def test_open_mode_on_a_public_address_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_gateway",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
        ],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to serve on 0.0.0.0" in result.stderr
    assert "auth.admin_key" in result.stderr
    assert "Traceback" not in result.stderr
