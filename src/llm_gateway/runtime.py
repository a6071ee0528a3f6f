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
import os

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
