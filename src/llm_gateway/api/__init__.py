"""Inbound dialects: each converts wire JSON to and from ``core`` and knows nothing of providers."""
