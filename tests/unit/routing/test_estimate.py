"""Network-free token estimates."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from llm_gateway.core.types import (
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
)
from llm_gateway.routing.estimate import (
    DEFAULT_COMPLETION_TOKENS,
    IMAGE_TOKENS_HIGH,
    IMAGE_TOKENS_LOW,
    MESSAGE_OVERHEAD_TOKENS,
    REQUEST_OVERHEAD_TOKENS,
    estimate_completion_tokens,
    estimate_prompt_tokens,
)

BASE = REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS


def req(*messages: Message, **kw: object) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), **kw)  # type: ignore[arg-type]


def user(content: str | list[TextPart | ImagePart]) -> Message:
    return Message(role="user", content=content)


def test_four_chars_per_token_rounded_up() -> None:
    assert estimate_prompt_tokens(req(user(""))) == BASE
    assert estimate_prompt_tokens(req(user("abcd"))) == BASE + 1
    assert estimate_prompt_tokens(req(user("abcde"))) == BASE + 2
    assert estimate_prompt_tokens(req(user("x" * 4000))) == BASE + 1000


def test_per_message_overhead() -> None:
    one = estimate_prompt_tokens(req(user("a" * 8)))
    two = estimate_prompt_tokens(req(user("a" * 4), Message(role="assistant", content="a" * 4)))
    assert two == one + MESSAGE_OVERHEAD_TOKENS


def test_images_have_a_fixed_cost_by_detail() -> None:
    low = user([TextPart("abcd"), ImagePart("https://x/y.png", detail="low")])
    high = user([TextPart("abcd"), ImagePart("https://x/y.png", detail="high")])
    auto = user([TextPart("abcd"), ImagePart("data:image/png;base64," + "A" * 100_000)])
    assert estimate_prompt_tokens(req(low)) == BASE + 1 + IMAGE_TOKENS_LOW
    assert estimate_prompt_tokens(req(high)) == BASE + 1 + IMAGE_TOKENS_HIGH
    # The base64 payload is not text: an inline image costs the same as a linked one.
    assert estimate_prompt_tokens(req(auto)) == BASE + 1 + IMAGE_TOKENS_HIGH


def test_tool_schemas_count_as_json() -> None:
    tool = Tool(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    plain = estimate_prompt_tokens(req(user("hi")))
    with_tools = estimate_prompt_tokens(req(user("hi"), tools=[tool]))
    schema_chars = len(msgspec.json.encode([tool]))
    assert with_tools - plain >= schema_chars // 4 - 1


def test_tool_calls_and_reasoning_count() -> None:
    call = ToolCall(id="c1", name="lookup", arguments='{"q": "' + "x" * 400 + '"}')
    assistant = Message(role="assistant", tool_calls=[call], reasoning="r" * 400)
    result = Message(role="tool", content="y" * 40, tool_call_id="c1")
    estimate = estimate_prompt_tokens(req(user("q"), assistant, result))
    assert estimate > 200


def test_json_schema_response_format_counts() -> None:
    schema = {"name": "s", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}
    plain = estimate_prompt_tokens(req(user("hi")))
    fmt = ResponseFormat(type="json_schema", json_schema=schema)
    assert estimate_prompt_tokens(req(user("hi"), response_format=fmt)) > plain


def test_non_ascii_text_is_measured_in_bytes() -> None:
    # CJK tokenises at about one token per character; characters/4 would be far too low.
    text = "漢字" * 100
    assert estimate_prompt_tokens(req(user(text))) == BASE + (len(text.encode()) + 3) // 4


def test_completion_estimate() -> None:
    assert estimate_completion_tokens(req(user("x"))) == DEFAULT_COMPLETION_TOKENS
    assert estimate_completion_tokens(req(user("x")), default=100) == 100
    assert estimate_completion_tokens(req(user("x"), max_tokens=7)) == 7


@given(st.lists(st.text(max_size=200), min_size=1, max_size=20), st.text(max_size=200))
def test_monotonic_in_text(texts: list[str], extra: str) -> None:
    messages = [user(t) for t in texts]
    before = estimate_prompt_tokens(req(*messages))
    after = estimate_prompt_tokens(req(*messages, user(extra)))
    assert before >= REQUEST_OVERHEAD_TOKENS + len(texts) * MESSAGE_OVERHEAD_TOKENS
    assert after >= before + MESSAGE_OVERHEAD_TOKENS
    grown = estimate_prompt_tokens(req(*messages[:-1], user(texts[-1] + extra)))
    assert grown >= before
