"""The OpenAI-compatible vendors, as rows of data served by the one OpenAI adapter.

Every difference between vendors is a flag or a small pure function on its row, so the
request path never asks which vendor it is talking to. Each quirk below was checked
against the vendor's own documentation, SDK or recorded traffic:

- **openai**: ``max_completion_tokens`` (``max_tokens`` is deprecated and rejected by
  reasoning models); ``stream_options.include_usage`` adds a last chunk with empty
  ``choices`` and the usage.
- **groq**: the final chunk carries ``x_groq.usage`` (groq-python ``ChatCompletionChunk.
  XGroq.usage``: "Only sent in the final chunk"); ``stream_options`` is accepted too, so
  usage may arrive twice and the last one wins. ``x_groq.error`` explains a stream cut
  short. Reasoning models stream ``delta.reasoning``.
- **openrouter**: ``HTTP-Referer`` / ``X-Title`` attribute the traffic to an app;
  ``usage: {"include": true}`` asked for ``usage.cost`` (OpenRouter now documents it as
  deprecated and always on, and still accepts it); reasoning arrives as ``reasoning``;
  ``: OPENROUTER PROCESSING`` SSE comments keep idle streams open.
- **deepseek**: ``reasoning_content`` on the message and on deltas; cache hits are
  ``usage.prompt_cache_hit_tokens``. The R1 guide says ``reasoning_content`` sent back in
  input is a 400; the later thinking mode demands it back on turns that called tools. R1
  never called tools, so echoing it only on tool-call turns satisfies both.
- **mistral**: rejects unknown body fields with 422 ``extra_forbidden`` (that includes
  ``stream_options``, ``max_completion_tokens``, ``seed``, ``user``), streams usage in its
  final chunk unasked, names the seed ``random_seed``, and requires tool-call ids of exactly
  9 characters ``[a-zA-Z0-9]`` (400 "Tool call id was ... but must be a-z, A-Z, 0-9, with a
  length of 9.").
- **openai_compatible** (Ollama, vLLM, LM Studio, ...): no key required, ``base_url``
  required; reasoning may be spelled ``reasoning_content`` (vLLM) or ``reasoning`` (Ollama).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "DEEPSEEK",
    "FAMILIES",
    "GROQ",
    "MISTRAL",
    "OPENAI",
    "OPENAI_COMPATIBLE",
    "OPENROUTER",
    "OpenAIFamily",
    "family_for",
    "mistral_tool_call_id",
]


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class OpenAIFamily:
    """One OpenAI-compatible vendor: where it lives and how its wire dialect differs."""

    type: str
    default_base_url: str | None
    api_key_env: str | None
    requires_key: bool = True
    # The field that carries the caller's max tokens.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    seed_field: str = "seed"
    # Send stream_options.include_usage so every stream reports usage.
    stream_usage_option: bool = True
    # Fields merged into every body (the caller's ``extra`` still wins).
    extra_body: Mapping[str, Any] = field(default_factory=_frozen)
    # Headers sent unless the provider config sets the same header.
    default_headers: Mapping[str, str] = field(default_factory=_frozen)
    # Maps a (possibly foreign) tool-call id to one the vendor accepts; None = as is.
    tool_call_id: Callable[[str], str] | None = None
    # Fields of a message / delta that carry reasoning text, first present wins.
    reasoning_fields: tuple[str, ...] = ()
    # The field to echo an assistant turn's reasoning back in, on turns with tool calls.
    reasoning_echo_field: str | None = None
    # Where usage may appear in a chunk besides ``usage`` (a path of keys).
    extra_usage_path: tuple[str, ...] | None = None
    # When set, top-level body fields outside it are dropped (the vendor 422s on them).
    allowed_fields: frozenset[str] | None = None
    # Whether ``name`` may be sent on system/user/assistant messages.
    message_names: bool = True

    @property
    def requires_base_url(self) -> bool:
        return self.default_base_url is None


_TOOL_ID_OK = re.compile(r"[A-Za-z0-9]{9}")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def mistral_tool_call_id(foreign: str) -> str:
    """A 9-character ``[a-zA-Z0-9]`` id for ``foreign``: itself when already valid, else
    a base62 digest. Deterministic, so an assistant's ``tool_calls[].id`` and the matching
    tool message's ``tool_call_id`` map to the same value without shared state."""
    if _TOOL_ID_OK.fullmatch(foreign):
        return foreign
    number = int.from_bytes(hashlib.sha256(foreign.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


OPENAI = OpenAIFamily(
    type="openai",
    default_base_url="https://api.openai.com/v1",
    api_key_env="OPENAI_API_KEY",
    max_tokens_field="max_completion_tokens",
)

GROQ = OpenAIFamily(
    type="groq",
    default_base_url="https://api.groq.com/openai/v1",
    api_key_env="GROQ_API_KEY",
    reasoning_fields=("reasoning",),
    extra_usage_path=("x_groq", "usage"),
)

OPENROUTER = OpenAIFamily(
    type="openrouter",
    default_base_url="https://openrouter.ai/api/v1",
    api_key_env="OPENROUTER_API_KEY",
    extra_body=_frozen({"usage": {"include": True}}),
    default_headers=_frozen(
        {"HTTP-Referer": "https://github.com/llm-gateway/llm-gateway", "X-Title": "llm-gateway"}
    ),
    reasoning_fields=("reasoning", "reasoning_content"),
)

DEEPSEEK = OpenAIFamily(
    type="deepseek",
    default_base_url="https://api.deepseek.com/v1",
    api_key_env="DEEPSEEK_API_KEY",
    reasoning_fields=("reasoning_content",),
    reasoning_echo_field="reasoning_content",
)

# Mistral's chat request schema (mistralai/client-python ChatCompletionRequest).
_MISTRAL_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "prompt_mode",
        "safe_prompt",
    }
)

MISTRAL = OpenAIFamily(
    type="mistral",
    default_base_url="https://api.mistral.ai/v1",
    api_key_env="MISTRAL_API_KEY",
    seed_field="random_seed",
    stream_usage_option=False,
    tool_call_id=mistral_tool_call_id,
    allowed_fields=_MISTRAL_FIELDS,
    message_names=False,
)

OPENAI_COMPATIBLE = OpenAIFamily(
    type="openai_compatible",
    default_base_url=None,
    api_key_env=None,
    requires_key=False,
    reasoning_fields=("reasoning_content", "reasoning"),
)

FAMILIES: Mapping[str, OpenAIFamily] = MappingProxyType(
    {f.type: f for f in (OPENAI, GROQ, OPENROUTER, DEEPSEEK, MISTRAL, OPENAI_COMPATIBLE)}
)


def family_for(type_name: str) -> OpenAIFamily:
    """The row for a provider type; KeyError names the known types."""
    try:
        return FAMILIES[type_name]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise KeyError(f"unknown OpenAI-compatible type {type_name!r} (known: {known})") from None
