"""The gateway's own HTTP API (/api/llm, /api/chat)."""
