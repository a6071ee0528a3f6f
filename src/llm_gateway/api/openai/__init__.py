"""The OpenAI-compatible inbound API (``/v1/chat/completions``, ``/v1/models``)."""
