"""Model resolution and the choice of routes (strategies, fallback)."""
