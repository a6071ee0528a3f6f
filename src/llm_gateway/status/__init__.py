"""Provider state (NOT_CONFIGURED / HEALTHY / UNHEALTHY), health checks and dependency checks.

``ProviderTracker`` holds each configured provider's state, fed by real call outcomes (the
router's ``on_outcome`` hook), by the circuit breakers and by health checks
(``HealthChecker``); subscribers (the live status WebSocket) hear every state change.
``DependencyChecks`` reports optional dependencies (database, Redis) on ``/health``.
"""

from llm_gateway.status.checks import CheckResult, HealthChecker
from llm_gateway.status.dependencies import ComponentStatus, DependencyChecks
from llm_gateway.status.tracker import (
    ErrorInfo,
    ProviderState,
    ProviderStatus,
    ProviderTracker,
    StateChange,
    overall_status,
)

__all__ = [
    "CheckResult",
    "ComponentStatus",
    "DependencyChecks",
    "ErrorInfo",
    "HealthChecker",
    "ProviderState",
    "ProviderStatus",
    "ProviderTracker",
    "StateChange",
    "overall_status",
]
