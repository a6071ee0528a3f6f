"""Anthropic Messages request as it arrives on the wire, validated by msgspec.

Shapes follow Anthropic's API reference and the official SDK's param types
(``anthropic/types/message_create_params.py`` and the ``*_param.py`` block types).
Class names mirror the SDK's so the OpenAPI components read like Anthropic's own docs,
and differ from the OpenAI dialect's ``Wire*`` names so both sets live in one document.

msgspec's errors carry the JSON path of the bad field (``at `$.messages[0].content```),
which ``convert`` turns into a 400 naming it. Unknown fields inside blocks (``cache_control``,
``citations``) are ignored, as Anthropic-specific hints no other provider understands;
unknown top-level fields are kept in ``ChatRequest.extra``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

# --- content blocks ---------------------------------------------------------------------


class Base64ImageSource(Struct, tag="base64", tag_field="type"):
    media_type: str
    data: str


class URLImageSource(Struct, tag="url", tag_field="type"):
    url: str


ImageSource = Base64ImageSource | URLImageSource


class TextBlockParam(Struct, tag="text", tag_field="type"):
    text: str


class ImageBlockParam(Struct, tag="image", tag_field="type"):
    source: ImageSource


class ToolUseBlockParam(Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


ToolResultContent = TextBlockParam | ImageBlockParam


class ToolResultBlockParam(Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[ToolResultContent] | None = None
    is_error: bool = False


class ThinkingBlockParam(Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class RedactedThinkingBlockParam(Struct, tag="redacted_thinking", tag_field="type"):
    data: str


ContentBlockParam = (
    TextBlockParam
    | ImageBlockParam
    | ToolUseBlockParam
    | ToolResultBlockParam
    | ThinkingBlockParam
    | RedactedThinkingBlockParam
)


class MessageParam(Struct):
    # "system" in the list is accepted by current SDKs (SystemMessageParam); it becomes a
    # canonical system message like the top-level ``system``.
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlockParam]


# --- tools ------------------------------------------------------------------------------


class ToolParam(Struct):
    name: Annotated[str, Meta(min_length=1, max_length=128)]
    input_schema: dict[str, Any]
    description: str | None = None
    # Only client tools ("custom") can be served by other providers; server tools
    # (web_search_..., bash_...) are refused by name in convert before this decode.
    type: Literal["custom"] | None = None
    strict: bool | None = None


class ToolChoiceAuto(Struct, tag="auto", tag_field="type"):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Struct, tag="any", tag_field="type"):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(Struct, tag="tool", tag_field="type"):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Struct, tag="none", tag_field="type"):
    pass


ToolChoiceParam = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class ThinkingConfigParam(Struct, forbid_unknown_fields=False):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Annotated[int, Meta(ge=1)] | None = None


class MetadataParam(Struct):
    user_id: str | None = None


# --- requests ---------------------------------------------------------------------------


class CountTokensRequest(Struct, kw_only=True, forbid_unknown_fields=False):
    """``POST /v1/messages/count_tokens``: a Messages request without ``max_tokens``."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[MessageParam], Meta(min_length=1, max_length=100_000)]
    system: str | list[TextBlockParam] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingConfigParam | None = None


class MessagesRequest(CountTokensRequest, kw_only=True, forbid_unknown_fields=False):
    """``POST /v1/messages``."""

    max_tokens: Annotated[int, Meta(ge=1)]
    stop_sequences: Annotated[list[str], Meta(max_length=64)] | None = None
    # Anthropic's documented ranges: temperature 0..1, top_p 0..1, top_k >= 0.
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    metadata: MetadataParam | None = None
    stream: bool = False


KNOWN_FIELDS = frozenset(MessagesRequest.__struct_fields__)


def request_schema() -> dict[str, Any]:
    """JSON Schemas of both request bodies, for the OpenAPI document."""
    (messages, count), components = msgspec.json.schema_components(
        [MessagesRequest, CountTokensRequest], ref_template="#/components/schemas/{name}"
    )
    return {"messages": messages, "count_tokens": count, "components": components}
