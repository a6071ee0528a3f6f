"""Rate limits (requests and tokens per minute) and spend budgets: in-process or Redis."""
