"""Start-up cost guards: the hot path must not wait for FastAPI's import."""

from __future__ import annotations

import subprocess
import sys

import httpx

from llm_gateway.app import create_app
from llm_gateway.config.schema import GatewayConfig


def test_importing_the_app_does_not_import_fastapi() -> None:
    code = (
        "import sys, llm_gateway.app, llm_gateway.cli.serve; "
        "assert 'fastapi' not in sys.modules, 'fastapi imported at start-up'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


async def test_fastapi_routes_work_without_a_lifespan() -> None:
    """Served without lifespan events (some ASGI hosts), the API is built on first use."""
    app = create_app(GatewayConfig.model_validate({"providers": {"mock": {"type": "mock"}}}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        health = await client.get("/health")
        assert health.json() == {
            "status": "healthy",
            "providers": {"mock": "HEALTHY"},
            "components": {},
        }
        chat = await client.post(
            "/v1/chat/completions",
            json={"model": "mock/m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.json()["choices"][0]["message"]["content"] == "This is a mock response to: hi"
    await app.state.aclose()
