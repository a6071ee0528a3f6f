"""Process-level tuning applied once the app is built.

Python's cyclic garbage collector pauses the whole event loop. With its default
thresholds a gateway holding a thousand open streams ran a full collection every few
seconds, each pausing every stream for 30-60 ms (measured, docs/performance.md).
Freezing the start-up heap (modules, config, FastAPI's route graph) removes it from every
later collection, and a larger young-generation threshold makes collections rarer; each
young collection stays short because request objects mostly die young (they are freed
by reference counting, not by the collector).
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from llm_gateway.config.schema import LoggingConfig
from llm_gateway.status.redact import REDACTED, redact_secrets

DEFAULT_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> tuple[int, int, int]:
    """Freeze what exists now and raise the collector's thresholds; returns them.

    ``LLM_GATEWAY_GC_THRESHOLDS=a,b,c`` overrides the thresholds (``off`` leaves
    Python's defaults and skips the freeze), for measuring alternatives.
    """
    raw = os.environ.get("LLM_GATEWAY_GC_THRESHOLDS", "")
    if raw.strip().lower() == "off":
        return gc.get_threshold()
    thresholds = DEFAULT_THRESHOLDS
    if raw:
        first, second, third = (int(part) for part in raw.split(","))
        thresholds = (first, second, third)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    return thresholds


_HANDLER_NAME = "llm_gateway.console"
# uvicorn logs each WebSocket handshake with its query string ("WebSocket /ws?token=...")
# on uvicorn.error, whatever access_log says, and request lines on uvicorn.access.
SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access")
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)
# A cheap pre-check: only messages that may hold a credential pay for the regex.
_HINTS = ("token=", "sk-", "key=", "secret=", "password=", "bearer", "Bearer", "AIza", "@")


def _clean(value: Any) -> Any:
    if isinstance(value, str) and any(hint in value for hint in _HINTS):
        return redact_secrets(value)
    return value


class SecretsFilter(logging.Filter):
    """Redacts credentials in a record's message and arguments; never drops a record.

    The arguments are cleaned one by one rather than the message formatted once, because
    uvicorn's access formatter unpacks ``record.args`` positionally.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _clean(record.msg)
        args = record.args
        if isinstance(args, tuple):
            if len(args) == 2 and str(args[0]).lower() in _SECRET_HEADERS:
                # The WebSocket library logs each handshake header as ("< %s: %s", name,
                # value) at DEBUG; a key need not look like one (an admin key is free text).
                record.args = (args[0], REDACTED)
                return True
            record.args = tuple(_clean(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: _clean(v) for k, v in args.items()}
        return True


def install_secrets_filter(names: tuple[str, ...] = SERVER_LOGGERS) -> None:
    """Adds ``SecretsFilter`` to each named logger once (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretsFilter) for f in logger.filters):
            logger.addFilter(SecretsFilter())


def apply_logging(config: LoggingConfig) -> None:
    """The gateway's log level and ``logging.loggers`` (a level per logger, e.g. to quiet
    a noisy library). Runs in every worker; uvicorn configures only its own loggers.
    Also installs the secrets filter on uvicorn's loggers, however uvicorn was started."""
    install_secrets_filter()
    ours = logging.getLogger("llm_gateway")
    ours.setLevel(config.level)
    # Under uvicorn nothing handles the root logger, so without a handler of our own only
    # warnings would surface (Python's last resort). Where the host already configured
    # logging (root has handlers, as under pytest), records simply propagate there.
    has_ours = any(h.name == _HANDLER_NAME for h in ours.handlers)
    if not logging.getLogger().handlers and not has_ours:
        handler = logging.StreamHandler()
        handler.name = _HANDLER_NAME
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        ours.addHandler(handler)
    for name, level in config.loggers.items():
        logging.getLogger(name).setLevel(level)
