"""Local token counting (placeholder: the estimate; replaced by a real tokenizer)."""

from __future__ import annotations

from llm_gateway.core.types import ChatRequest
from llm_gateway.routing.estimate import CHARS_PER_TOKEN, estimate_prompt_tokens


def count_text(text: str) -> int:
    """Tokens in produced text."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def count_prompt(request: ChatRequest) -> int:
    """Prompt tokens of a request, as the provider would count them (approximately)."""
    return estimate_prompt_tokens(request)
