"""No secret ever reaches a log line, an error message or the admin listing.

Every logger is opened up to DEBUG and captured (caplog on the root logger, uvicorn's
access log routed there too, and whatever reaches the process's stdout/stderr), while
keys are created, listed, used (plain and streamed, both dialects, both headers), misused
(a near-miss of a real key, a revoked, an expired, a rate-limited and a forbidden-model
key, a wrong admin key, a user key on the admin API) and revoked. Then every captured
byte is searched for every secret: each virtual key, and the admin key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.admin_harness import AdminGateway, admin_gateway

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def all_loggers_at_debug() -> Iterator[None]:
    """Every known logger at DEBUG and propagating to the root (restored after)."""
    manager = logging.root.manager
    saved: dict[str, tuple[int, bool]] = {}
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            saved[name] = (logger.level, logger.propagate)
            logger.setLevel(logging.DEBUG)
            logger.propagate = True
    try:
        yield
    finally:
        for name, (level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate = propagate


def stream_chat(gw: AdminGateway, key: str) -> str:
    body = {
        "model": "mock",
        "stream": True,
        "messages": [{"role": "user", "content": "stream please"}],
    }
    with gw.http.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}"},
    ) as response:
        assert response.status_code == 200
        return "".join(response.iter_text())


def exercise(gw: AdminGateway) -> tuple[list[str], list[str]]:
    """Create, use, misuse and revoke keys; returns (secrets, every response text)."""
    seen: list[str] = []

    def keep(response: Any) -> Any:
        seen.append(response.text)
        seen.append(str(dict(response.headers)))
        return response

    # Creation answers are the one place a secret belongs: kept apart from ``seen``.
    created = [
        gw.admin("POST", "/admin/keys", json=body).json()
        for body in [
            {"name": "plain"},
            {"name": "narrow", "allowed_models": ["gpt-*"]},
            {"name": "slow", "rpm": 1},
            {"name": "soon-gone"},
            {"name": "expiring"},
        ]
    ]
    plain, narrow, slow, gone, expiring = (c["key"] for c in created)
    secrets = [plain, narrow, slow, gone, expiring]

    assert keep(gw.chat(plain)).status_code == 200
    assert keep(gw.chat(plain, header="x-api-key")).status_code == 200
    assert keep(gw.messages(plain)).status_code == 200
    seen.append(stream_chat(gw, plain))
    assert keep(gw.chat(gw.admin_key)).status_code == 200

    near_miss = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    secrets.append(near_miss)
    assert keep(gw.chat(near_miss)).status_code == 401
    assert keep(gw.messages(near_miss)).status_code == 401
    assert keep(gw.chat(narrow)).status_code == 403
    assert keep(gw.chat(slow)).status_code == 200
    assert keep(gw.chat(slow)).status_code == 429
    keep(gw.admin("PATCH", f"/admin/keys/{created[4]['id']}", json={"expires_at": time.time()}))
    assert keep(gw.chat(expiring)).status_code == 401
    keep(gw.admin("DELETE", f"/admin/keys/{created[3]['id']}"))
    assert keep(gw.chat(gone)).status_code == 401
    assert keep(gw.messages(gone)).status_code == 401

    wrong_admin = gw.admin_key[:-1] + ("x" if gw.admin_key[-1] != "x" else "y")
    secrets.append(wrong_admin)
    for headers in [{"authorization": f"Bearer {wrong_admin}"}, {"x-api-key": plain}]:
        response = keep(gw.http.get(gw.url + "/admin/keys", headers=headers))
        assert response.status_code in (401, 403)
    keep(gw.admin("GET", "/admin/usage", params={"key_id": created[0]["id"]}))
    keep(gw.admin("GET", "/admin/keys"))
    for c in created:
        keep(gw.admin("GET", f"/admin/keys/{c['id']}"))
        keep(gw.admin("GET", f"/admin/keys/{c['id']}/spend"))
    if gw.state.writer is not None:
        page = gw.wait_for_usage(1, key_id=created[0]["id"])
        seen.append(str(page))
    return secrets, seen


def test_no_secret_in_logs_errors_or_listings(
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    all_loggers_at_debug: None,
) -> None:
    caplog.set_level(logging.DEBUG)
    with admin_gateway(
        {"logging": {"level": "DEBUG"}}, access_log=True, log_config=None, log_level="debug"
    ) as gw:
        secrets, responses = exercise(gw)
        admin_key = gw.admin_key
        listing = gw.admin("GET", "/admin/keys").text

    captured = capfd.readouterr()
    lines = [
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}"
        for r in caplog.records
    ]
    logs = "\n".join(lines) + captured.out + captured.err

    # The capture is real: the admin actions and the access log are in it.
    assert "admin: key" in logs and "created" in logs and "revoked" in logs
    assert "/v1/chat/completions" in logs
    assert "/admin/keys" in logs

    for secret in [*secrets, admin_key]:
        # The full secret, and everything past the shown prefix (no partial leak either).
        for needle in (secret, secret[10:]):
            assert needle not in logs, "a secret reached the logs"
            assert needle not in listing, "a secret reached the admin listing"
    error_texts = [t for t in responses if '"error"' in t]
    assert len(error_texts) >= 8, "expected the refused requests to be captured"
    for text in responses:
        for secret in [*secrets, admin_key]:
            assert secret[10:] not in text, "a secret reached a response or its headers"
