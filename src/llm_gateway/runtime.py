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

from llm_gateway.config.schema import LoggingConfig

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


def apply_logging(config: LoggingConfig) -> None:
    """The gateway's log level and ``logging.loggers`` (a level per logger, e.g. to quiet
    a noisy library). Runs in every worker; uvicorn configures only its own loggers."""
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
