"""Text that is safe to show or log: no credentials (and, for display, bounded length).

Upstream error messages sometimes quote the key they rejected (OpenAI: "Incorrect API key
provided: sk-...") and connection errors can carry URLs with user:password. Anything that
looks like a credential is replaced before the text reaches a status page, a socket or a
log line (``redact_secrets``, used by ``runtime.SecretsFilter`` on uvicorn's loggers,
which print WebSocket paths with their ``?token=`` query).
"""

from __future__ import annotations

import re

MAX_LENGTH = 300
REDACTED = "[redacted]"

_SECRETS = re.compile(
    r"(?i)(bearer\s+\S+"
    r"|\bsk-[A-Za-z0-9_\-*.]{4,}"
    r"|\bAIza[0-9A-Za-z_\-]{8,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{8,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"
    r"|(?:api[_-]?key|token|secret|password)=[^&\s\"']+)"
)


def redact_secrets(text: str) -> str:
    """``text`` with every credential-looking part replaced; otherwise unchanged."""
    return _SECRETS.sub(REDACTED, text)


def redact(text: str) -> str:
    """``redact_secrets``, then cut to ``MAX_LENGTH`` characters for display."""
    cleaned = redact_secrets(text)
    if len(cleaned) > MAX_LENGTH:
        cleaned = cleaned[: MAX_LENGTH - 1] + "…"
    return cleaned
