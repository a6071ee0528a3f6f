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


def test_logging_config_sets_the_gateway_level_and_each_named_logger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import logging

    from llm_gateway.config.schema import LoggingConfig
    from llm_gateway.runtime import apply_logging

    ours, noisy, root = (
        logging.getLogger("llm_gateway"),
        logging.getLogger("some.noisy.lib"),
        logging.getLogger(),
    )
    monkeypatch.setattr(ours, "level", ours.level)
    monkeypatch.setattr(noisy, "level", noisy.level)
    monkeypatch.setattr(
        ours, "handlers", [h for h in ours.handlers if h.name != "llm_gateway.console"]
    )
    # As under uvicorn: nothing handles the root logger, so the gateway adds its handler.
    monkeypatch.setattr(root, "handlers", [])
    config = LoggingConfig.model_validate(
        {"level": "debug", "loggers": {"some.noisy.lib": "error"}}
    )
    apply_logging(config)
    assert ours.level == logging.DEBUG and noisy.level == logging.ERROR
    console = [h for h in ours.handlers if h.name == "llm_gateway.console"]
    assert len(console) == 1 and ours.propagate
    apply_logging(LoggingConfig())  # applying again adds no second handler
    assert [h for h in ours.handlers if h.name == "llm_gateway.console"] == console
    assert ours.level == logging.INFO
