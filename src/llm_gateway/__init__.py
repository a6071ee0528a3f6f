"""LLM Gateway: one fast OpenAI- and Anthropic-compatible API in front of every LLM provider."""

__version__ = "0.1.0"
