"""Schemathesis against our own OpenAPI document: no generated request gets a 5xx.

Every operation in /openapi.json is exercised with inputs generated from its schema (and
mutations of them), in-process through the ASGI app, against the mock provider.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from llm_gateway.app import create_app
from llm_gateway.config.schema import GatewayConfig

app = create_app(
    GatewayConfig.model_validate(
        {
            "storage": {"url": "memory://"},
            "providers": {"mock": {"type": "mock", "chunk_delay_ms": 0}},
            "models": {"mock": {"routes": [{"provider": "mock", "model": "mock-1"}]}},
        }
    )
)
# Open mode serves loopback Host names only (api/origin.py); the ASGI client's default
# Host is "testserver".
LOCAL = {"host": "127.0.0.1"}
schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=LOCAL)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(headers=LOCAL)
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
    if response.status_code >= 400 and case.path.startswith("/v1/"):
        # Errors on the OpenAI surface use OpenAI's error shape.
        assert "error" in response.json(), (
            case.method,
            case.path,
            case.path_parameters,
            response.status_code,
            response.text,
        )
        error = response.json()["error"]
        assert error["message"] and error["type"]
