"""``serve --workers N`` without Redis warns that limits, budgets and key changes are per
worker (kept here with the other status/operability checks of this change; it belongs
with tests/unit/cli if the lead prefers)."""

from __future__ import annotations

from llm_gateway.cli.serve import workers_warning
from llm_gateway.config.schema import GatewayConfig


def test_warns_only_for_several_workers_without_redis() -> None:
    plain = GatewayConfig.model_validate({"auth": {"keys_refresh_seconds": 15}})
    warning = workers_warning(plain, 4)
    assert warning is not None
    assert "4 workers without redis.url" in warning and "4x" in warning
    assert "15 s" in warning and "LLM_GATEWAY_REDIS_URL" in warning
    assert workers_warning(plain, 1) is None
    shared = GatewayConfig.model_validate({"redis": {"url": "redis://127.0.0.1:6379/0"}})
    assert workers_warning(shared, 4) is None
