"""The Anthropic-compatible inbound API (``/v1/messages``), served by any provider."""
