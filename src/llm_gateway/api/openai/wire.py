"""OpenAI chat-completions request as it arrives on the wire, validated by msgspec.

msgspec validates while converting and its errors carry the JSON path of the offending
field (``at `$.messages[0].role```), which becomes the ``param`` of the 400 we return.
Unknown top-level fields are allowed: they are collected into ``ChatRequest.extra`` and
passed through to providers of the OpenAI family.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct


class WireImageURL(Struct):
    url: str
    detail: str | None = None


class WireTextPart(Struct, tag="text", tag_field="type"):
    text: str


class WireImagePart(Struct, tag="image_url", tag_field="type"):
    image_url: WireImageURL


WireContentPart = WireTextPart | WireImagePart


class WireFunctionCall(Struct):
    name: str
    arguments: str = ""


class WireToolCall(Struct):
    id: str
    function: WireFunctionCall
    type: Literal["function"] = "function"


class WireMessage(Struct):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[WireContentPart] | None = None
    name: str | None = None
    tool_calls: list[WireToolCall] | None = None
    tool_call_id: str | None = None
    # Some clients echo DeepSeek-style reasoning back; accepted and ignored upstream.
    reasoning_content: str | None = None


class WireFunctionDef(Struct):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class WireTool(Struct):
    function: WireFunctionDef
    type: Literal["function"] = "function"


class WireNamedFunction(Struct):
    name: str


class WireNamedToolChoice(Struct):
    function: WireNamedFunction
    type: Literal["function"] = "function"


class WireResponseFormat(Struct):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class WireStreamOptions(Struct):
    include_usage: bool = False


class WireChatRequest(Struct, forbid_unknown_fields=False):
    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[WireMessage], Meta(min_length=1, max_length=10_000)]
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    stop: str | Annotated[list[str], Meta(max_length=16)] | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[WireTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | WireNamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: WireResponseFormat | None = None
    stream: bool = False
    stream_options: WireStreamOptions | None = None
    n: Annotated[int, Meta(ge=1, le=1)] | None = None


KNOWN_FIELDS = frozenset(WireChatRequest.__struct_fields__)


def request_schema() -> dict[str, Any]:
    """JSON Schema of the request body, for the OpenAPI document."""
    (schema,), components = msgspec.json.schema_components(
        [WireChatRequest], ref_template="#/components/schemas/{name}"
    )
    return {"schema": schema, "components": components}
