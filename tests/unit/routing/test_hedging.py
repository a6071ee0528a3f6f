"""The hedge delay: fixed, or the route's p95 time to first token with a floor."""

from __future__ import annotations

import math

import pytest

from llm_gateway.config.schema import HedgeConfig
from llm_gateway.routing.hedging import DEFAULT_HEDGE_DELAY, hedge_delay


def test_fixed_delay_is_used_as_is_whatever_the_p95() -> None:
    config = HedgeConfig(after_ms=250.0, min_delay_ms=500.0)
    assert hedge_delay(config, None) == pytest.approx(0.25)
    assert hedge_delay(config, 3.0) == pytest.approx(0.25)
    assert hedge_delay(HedgeConfig(after_ms=0.0), 1.0) == 0.0


def test_p95_is_used_when_known() -> None:
    config = HedgeConfig(after_ms="p95", min_delay_ms=50.0)
    assert hedge_delay(config, 0.8) == pytest.approx(0.8)


def test_p95_is_floored_by_min_delay() -> None:
    config = HedgeConfig(after_ms="p95", min_delay_ms=50.0)
    assert hedge_delay(config, 0.01) == pytest.approx(0.05)
    assert hedge_delay(config, 0.0) == pytest.approx(0.05)


def test_unknown_p95_uses_the_default() -> None:
    assert hedge_delay(HedgeConfig(), None) == DEFAULT_HEDGE_DELAY == 1.0
    assert hedge_delay(HedgeConfig(), math.nan) == DEFAULT_HEDGE_DELAY
    # ...unless the floor is higher.
    assert hedge_delay(HedgeConfig(min_delay_ms=2500.0), None) == pytest.approx(2.5)
