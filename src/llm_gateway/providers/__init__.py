"""Outbound adapters: one module per upstream wire API behind the small ``Provider`` interface."""
