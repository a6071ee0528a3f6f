"""Fixtures for config and CLI tests: they never read the real environment, the real
``.env`` or the repo's files. Imported by the conftest of each of those folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from llm_gateway.config.defaults import PROVIDER_KEY_VARIABLES

WriteFile = Callable[[str, str], Path]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run in an empty directory with no gateway or provider variables set."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("LLM_GATEWAY_"):
            monkeypatch.delenv(name)
    for names in PROVIDER_KEY_VARIABLES.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write
