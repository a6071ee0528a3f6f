"""The built-in ``mock`` provider: deterministic answers with no network and no keys.

It lets a new user get answers at once and gives tests a provider with known output:
- a plain prompt is answered with a fixed sentence that echoes the last user message;
- with tools offered (and tool_choice not "none") after a user turn, it calls a tool with
  arguments derived from the tool's JSON Schema;
- after a tool result, it reports that result in text;
- ``stop`` sequences and ``max_tokens`` are honoured (finish reasons stop / length);
- ``response_format`` json_object / json_schema yields a JSON object.
Streams go word by word at ``chunk_delay_ms``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec

from llm_gateway.core.events import (
    FinishEvent,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from llm_gateway.core.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    ModelInfo,
    NamedToolChoice,
    Tool,
    ToolCall,
    Usage,
)


def _approx_tokens(text: str) -> int:
    """A local, network-free token estimate: about one token per four characters."""
    return max(1, (len(text) + 3) // 4) if text else 0


def _example_value(schema: dict[str, Any], hint: str) -> Any:
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_example_value(schema.get("items") or {"type": "string"}, hint)]
    if kind == "object":
        return _example_object(schema, hint)
    return hint


def _example_object(schema: dict[str, Any], hint: str) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties") or {}
    required = schema.get("required")
    names = list(required) if required else list(props)
    return {name: _example_value(props.get(name) or {}, hint) for name in names}


class _Plan(msgspec.Struct):
    """What the mock will answer: text split into pieces, or one tool call."""

    pieces: list[str]
    tool_call: ToolCall | None
    finish: FinishReason
    prompt_tokens: int


class MockProvider:
    type = "mock"

    def __init__(
        self,
        name: str = "mock",
        *,
        chunk_delay_ms: float = 20.0,
        first_token_delay_ms: float = 0.0,
        models: Sequence[str] = ("mock-1",),
    ) -> None:
        self.name = name
        self._chunk_delay = chunk_delay_ms / 1000.0
        self._first_delay = first_token_delay_ms / 1000.0
        self._models = list(models)

    # -- planning -------------------------------------------------------------------------

    def _plan(self, request: ChatRequest) -> _Plan:
        messages = request.messages
        prompt_tokens = sum(_approx_tokens(m.text()) for m in messages) + 3 * len(messages)
        last = messages[-1]
        last_user = next((m.text() for m in reversed(messages) if m.role == "user"), "")

        tool = self._tool_to_call(request) if last.role == "user" else None
        if tool is not None:
            args = msgspec.json.encode(_example_object(tool.parameters or {}, last_user)).decode()
            digest = hashlib.sha256(f"{tool.name}:{last_user}".encode()).hexdigest()[:24]
            call = ToolCall(id=f"call_{digest}", name=tool.name, arguments=args)
            return _Plan(
                pieces=[], tool_call=call, finish="tool_calls", prompt_tokens=prompt_tokens
            )

        if last.role == "tool":
            text = f"The tool returned: {last.text()}"
        elif request.response_format is not None and request.response_format.type != "text":
            text = msgspec.json.encode({"answer": "mock", "echo": last_user}).decode()
        else:
            text = f"This is a mock response to: {last_user}" if last_user else "Hello from mock."

        finish: FinishReason = "stop"
        if request.stop:
            cut = min((i for s in request.stop if s and (i := text.find(s)) >= 0), default=-1)
            if cut >= 0:
                text = text[:cut]
        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []
        if request.max_tokens is not None and len(pieces) > request.max_tokens:
            pieces = pieces[: request.max_tokens]
            finish = "length"
        return _Plan(pieces=pieces, tool_call=None, finish=finish, prompt_tokens=prompt_tokens)

    @staticmethod
    def _tool_to_call(request: ChatRequest) -> Tool | None:
        tools = request.tools
        choice = request.tool_choice
        if not tools or choice == "none":
            return None
        if isinstance(choice, NamedToolChoice):
            return next((t for t in tools if t.name == choice.name), tools[0])
        return tools[0]

    @staticmethod
    def _usage(plan: _Plan) -> Usage:
        completion = len(plan.pieces)
        if plan.tool_call is not None:
            completion = _approx_tokens(plan.tool_call.arguments) + 5
        return Usage(
            prompt_tokens=plan.prompt_tokens,
            completion_tokens=completion,
            total_tokens=plan.prompt_tokens + completion,
        )

    # -- Provider interface ---------------------------------------------------------------

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        plan = self._plan(request)
        if self._first_delay:
            await asyncio.sleep(self._first_delay)
        return ChatResponse(
            id=f"mock-{int(time.time() * 1000)}",
            model=model,
            created=int(time.time()),
            content="".join(plan.pieces) if plan.tool_call is None else None,
            tool_calls=[plan.tool_call] if plan.tool_call is not None else None,
            finish_reason=plan.finish,
            usage=self._usage(plan),
        )

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[list[StreamEvent]]:
        plan = self._plan(request)
        if self._first_delay:
            await asyncio.sleep(self._first_delay)
        delay = self._chunk_delay
        call = plan.tool_call
        if call is not None:
            yield [ToolCallDelta(index=0, id=call.id, name=call.name)]
            args = call.arguments
            step = max(1, len(args) // 3)
            for i in range(0, len(args), step):
                if delay:
                    await asyncio.sleep(delay)
                yield [ToolCallDelta(index=0, arguments=args[i : i + step])]
        for i, piece in enumerate(plan.pieces):
            if delay and i:
                await asyncio.sleep(delay)
            yield [TextDelta(piece)]
        yield [FinishEvent(plan.finish), UsageEvent(self._usage(plan))]

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id=m, owned_by="mock") for m in self._models]

    async def aclose(self) -> None:
        return None
