"""GC tuning: freezes the start-up heap and sets thresholds (env override for measuring)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from llm_gateway.runtime import DEFAULT_THRESHOLDS, tune_gc


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_defaults_freeze_and_raise_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_GATEWAY_GC_THRESHOLDS", raising=False)
    assert tune_gc() == DEFAULT_THRESHOLDS
    assert gc.get_threshold() == DEFAULT_THRESHOLDS
    assert gc.get_freeze_count() > 0


def test_override_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_GC_THRESHOLDS", "1000,5,5")
    assert tune_gc() == (1000, 5, 5) == gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    monkeypatch.setenv("LLM_GATEWAY_GC_THRESHOLDS", "off")
    assert tune_gc() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
