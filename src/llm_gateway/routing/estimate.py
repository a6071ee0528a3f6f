"""Fast, network-free token estimates for routing decisions (cost order, context fit).

Not a tokenizer: about four characters per token over the text a request sends (message
text, tool calls, tool schemas as JSON, a JSON schema response format), plus a small fixed
overhead per message and a fixed cost per image. Text that is not ASCII is measured in
UTF-8 bytes instead of characters, which keeps the estimate from collapsing for scripts
that tokenise at one or two characters per token (CJK), without a per-call encode for the
common ASCII case. Good to within tens of percent for English prose and code, which is
enough to rank routes by price and to tell whether a prompt fits a window with headroom;
never use it for billing (the provider's usage is).

Images cost ``IMAGE_TOKENS_LOW`` with ``detail: low`` and ``IMAGE_TOKENS_HIGH`` otherwise
(OpenAI's 85-token base tile and the 765 tokens of a 1024x1024 high-detail image): the high
figure is the default because underestimating a prompt is the costly mistake when
checking a context window.
"""

from __future__ import annotations

import msgspec

from llm_gateway.core.types import ChatRequest, ImagePart, Message, TextPart

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators around each message
REQUEST_OVERHEAD_TOKENS = 3  # priming of the reply
TOOL_CALL_OVERHEAD_TOKENS = 8  # id, type and framing of one call
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765
DEFAULT_COMPLETION_TOKENS = 512
# Reservations never assume a longer answer than this (a caller's max_tokens of 10**12
# must not reserve a whole rate limit or an int64-overflowing cost).
COMPLETION_CEILING = 262_144

_encode = msgspec.json.encode


def _size(text: str) -> int:
    """Characters for ASCII text, UTF-8 bytes otherwise."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _parts_size(message: Message) -> tuple[int, int]:
    """(text size, fixed tokens) of everything in a message but plain string content."""
    size = 0
    fixed = 0
    content = message.content
    if content and not isinstance(content, str):
        for part in content:
            if isinstance(part, TextPart):
                size += _size(part.text)
            elif isinstance(part, ImagePart):
                fixed += IMAGE_TOKENS_LOW if part.detail == "low" else IMAGE_TOKENS_HIGH
    if message.tool_calls:
        for call in message.tool_calls:
            size += _size(call.name) + _size(call.arguments)
            fixed += TOOL_CALL_OVERHEAD_TOKENS
    if message.reasoning:
        size += _size(message.reasoning)
    if message.name:
        size += _size(message.name)
    return size, fixed


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """Approximate prompt tokens of ``request`` (see the module docs for the rule)."""
    messages = request.messages
    size = 0
    tokens = REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * len(messages)
    for message in messages:
        content = message.content
        if isinstance(content, str):  # the common case, kept inline
            size += len(content) if content.isascii() else _size(content)
            if not (message.tool_calls or message.reasoning or message.name):
                continue
        more, fixed = _parts_size(message)
        size += more
        tokens += fixed
    if request.tools:
        size += len(_encode(request.tools))
    fmt = request.response_format
    if fmt is not None and fmt.json_schema:
        size += len(_encode(fmt.json_schema))
    return tokens + -(-size // CHARS_PER_TOKEN)


def estimate_completion_tokens(
    request: ChatRequest, default: int = DEFAULT_COMPLETION_TOKENS
) -> int:
    """The completion budget: the caller's ``max_tokens``, else ``default``."""
    asked = request.max_tokens
    return default if asked is None else asked
