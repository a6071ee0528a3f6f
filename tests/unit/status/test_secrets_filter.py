"""The log filter on uvicorn's loggers: credentials redacted, records never dropped."""

from __future__ import annotations

import logging

from llm_gateway.runtime import SecretsFilter, install_secrets_filter
from llm_gateway.status.redact import redact, redact_secrets

KEY = "sk-gw-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg"


def record(msg: str, args: tuple[object, ...] | None) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)


def test_arguments_are_redacted_and_still_format() -> None:
    rec = record('%s - "WebSocket %s" [accepted]', ("127.0.0.1:5", f"/ws?token={KEY}&a=1"))
    assert SecretsFilter().filter(rec) is True
    assert rec.getMessage() == '127.0.0.1:5 - "WebSocket /ws?[redacted]&a=1" [accepted]'
    # uvicorn's access formatter unpacks five positional arguments: the shape is kept.
    access = ("1.2.3.4:5", "GET", f"/x?api_key={KEY}", "1.1", 200)
    rec = record('%s - "%s %s HTTP/%s" %d', access)
    SecretsFilter().filter(rec)
    assert rec.args == ("1.2.3.4:5", "GET", "/x?[redacted]", "1.1", 200)


def test_plain_messages_and_bearer_headers_are_redacted_nothing_else_changes() -> None:
    rec = record(f"header was Bearer {KEY}", None)
    SecretsFilter().filter(rec)
    assert KEY not in rec.getMessage() and "[redacted]" in rec.getMessage()
    untouched = record("GET /v1/models 200 in %d ms", (3,))
    SecretsFilter().filter(untouched)
    assert untouched.getMessage() == "GET /v1/models 200 in 3 ms"


def test_installing_twice_adds_one_filter() -> None:
    install_secrets_filter(("test.secrets.logger",))
    install_secrets_filter(("test.secrets.logger",))
    filters = logging.getLogger("test.secrets.logger").filters
    assert sum(isinstance(f, SecretsFilter) for f in filters) == 1


def test_log_redaction_does_not_cut_long_lines_display_redaction_does() -> None:
    long = "x" * 500 + f" token={KEY}"
    assert redact_secrets(long) == "x" * 500 + " [redacted]"
    assert len(redact(long)) == 300


def test_secret_headers_are_redacted_whatever_the_value_looks_like() -> None:
    rec = record("< %s: %s", ("X-Api-Key", "plain-admin-words"))
    SecretsFilter().filter(rec)
    assert rec.getMessage() == "< X-Api-Key: [redacted]"
    rec = record("< %s: %s", ("Host", "127.0.0.1:8000"))
    SecretsFilter().filter(rec)
    assert rec.getMessage() == "< Host: 127.0.0.1:8000"
