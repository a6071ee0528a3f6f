"""Error text that is safe to show: no credentials, bounded length.

Upstream error messages sometimes quote the key they rejected (OpenAI: "Incorrect API key
provided: sk-...") and connection errors can carry URLs with user:password. Anything that
looks like a credential is replaced before the text reaches a status page or a socket.
"""

from __future__ import annotations

import re

MAX_LENGTH = 300

_SECRETS = re.compile(
    r"(?i)(bearer\s+\S+"
    r"|\bsk-[A-Za-z0-9_\-*.]{4,}"
    r"|\bAIza[0-9A-Za-z_\-]{8,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{8,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"
    r"|(?:api[_-]?key|token|secret|password)=[^&\s]+)"
)


def redact(text: str) -> str:
    cleaned = _SECRETS.sub("[redacted]", text)
    if len(cleaned) > MAX_LENGTH:
        cleaned = cleaned[: MAX_LENGTH - 1] + "…"
    return cleaned
