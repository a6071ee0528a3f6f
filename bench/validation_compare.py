"""Validating a chat request: our msgspec structs vs an equivalent pydantic v2 model set.

The body is the ~2 KB request of ``bench/json_compare.py`` (6 messages with text and image
content parts, an assistant tool call, a tool result, 2 tools with JSON-schema parameters,
``tool_choice``, ``stream_options``...). Timed, from the same ``bytes`` each time:

* ``gateway parse_request`` — ``llm_gateway.api.openai.convert.parse_request(body)``, the
  real hot path: decode to dicts, ``msgspec.convert`` into ``WireChatRequest``, collect the
  unknown top-level fields, convert to the canonical ``ChatRequest``;
* ``msgspec decode + convert`` — the same without the canonical conversion (the difference
  to the row above is what ``_to_core`` costs);
* ``msgspec typed decode`` — ``msgspec.json.Decoder(WireChatRequest).decode(body)``: one
  pass, no intermediate dicts (but then the unknown fields are not kept);
* ``pydantic model_validate_json`` — ``PChatRequest.model_validate_json(body)`` on models
  written below to match ``api/openai/wire.py`` field by field (same types, literals,
  bounds, the discriminated content-part union; unknown top-level fields kept through
  ``extra="allow"``), default (lax) mode;
* ``no validation`` — ``msgspec.json.decode(body)`` to dicts and lists only.

Before timing, every approach must accept the body and reject the same broken variants.
Timing: ``timeit``, loop count sized to ~0.1 s per repeat, best of 5, µs per call.

Run: ``uv run python bench/validation_compare.py`` (~3 s).
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

if __package__ in (None, ""):  # run as a script: make the ``bench`` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.json_compare import REQUEST_BODY, REQUEST_OBJ
from llm_gateway.api.openai.convert import parse_request
from llm_gateway.api.openai.wire import WireChatRequest
from llm_gateway.core.errors import InvalidRequestError

# pydantic v2 twin of api/openai/wire.py ---------------------------------------------------


class PImageURL(BaseModel):
    url: str
    detail: str | None = None


class PTextPart(BaseModel):
    type: Literal["text"]
    text: str


class PImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: PImageURL


PContentPart = Annotated[PTextPart | PImagePart, Field(discriminator="type")]


class PFunctionCall(BaseModel):
    name: str
    arguments: str = ""


class PToolCall(BaseModel):
    id: str
    function: PFunctionCall
    type: Literal["function"] = "function"


class PMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[PContentPart] | None = None
    name: str | None = None
    tool_calls: list[PToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class PFunctionDef(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class PTool(BaseModel):
    function: PFunctionDef
    type: Literal["function"] = "function"


class PNamedFunction(BaseModel):
    name: str


class PNamedToolChoice(BaseModel):
    function: PNamedFunction
    type: Literal["function"] = "function"


class PResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class PStreamOptions(BaseModel):
    include_usage: bool = False


class PChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[PMessage], Field(min_length=1, max_length=10_000)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[PTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | PNamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: PResponseFormat | None = None
    stream: bool = False
    stream_options: PStreamOptions | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None


# Checks ---------------------------------------------------------------------------------

_typed_decoder = msgspec.json.Decoder(WireChatRequest)
_decoder = msgspec.json.Decoder()


def msgspec_decode_convert(body: bytes) -> WireChatRequest:
    return msgspec.convert(_decoder.decode(body), WireChatRequest)


def broken_bodies() -> dict[str, bytes]:
    def variant(path: list[Any], value: Any) -> bytes:
        obj = msgspec.json.decode(REQUEST_BODY)
        target = obj
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return msgspec.json.encode(obj)

    return {
        "unknown role": variant(["messages", 1, "role"], "robot"),
        "temperature > 2": variant(["temperature"], 3),
        "max_tokens = 0": variant(["max_tokens"], 0),
        "bad part type": variant(["messages", 2, "content", 0, "type"], "audio"),
        "tool name too long": variant(["tools", 0, "function", "name"], "x" * 65),
        "empty messages": variant(["messages"], []),
        "n = 2": variant(["n"], 2),
        "invalid JSON": REQUEST_BODY[:-1],
    }


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def check() -> None:
    request, include_usage = parse_request(REQUEST_BODY)
    assert include_usage and len(request.messages) == 6 and len(request.tools or ()) == 2
    wire = _typed_decoder.decode(REQUEST_BODY)
    assert wire == msgspec_decode_convert(REQUEST_BODY)
    model = PChatRequest.model_validate_json(REQUEST_BODY)
    # Same data both ways, defaults included (None-valued fields dropped on both sides).
    assert model.model_dump(mode="json", exclude_none=True) == _drop_none(msgspec.to_builtins(wire))
    assert model.model_dump(mode="json", exclude_unset=True) == REQUEST_OBJ
    for why, body in broken_bodies().items():
        try:
            parse_request(body)
        except InvalidRequestError:
            pass
        else:
            raise AssertionError(f"parse_request accepted: {why}")
        try:
            PChatRequest.model_validate_json(body)
        except pydantic.ValidationError:
            pass
        else:
            raise AssertionError(f"pydantic accepted: {why}")


# Timing ---------------------------------------------------------------------------------

REPEATS = 5
TARGET_S = 0.1


def best_us(func: Callable[[bytes], Any], body: bytes) -> float:
    timer = timeit.Timer(lambda: func(body))
    once = min(timer.repeat(repeat=3, number=100)) / 100
    number = max(500, int(TARGET_S / max(once, 1e-9)))
    return min(timer.repeat(repeat=REPEATS, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    check()
    print(
        f"python {platform.python_version()}, msgspec {msgspec.__version__}, "
        f"pydantic {pydantic.VERSION} (pydantic-core {pydantic_core.__version__}); "
        f"body {len(REQUEST_BODY)} bytes; best of {REPEATS}, µs/op (lower is better)"
    )
    cases: list[tuple[str, Callable[[bytes], Any]]] = [
        ("gateway parse_request (msgspec)", parse_request),
        ("  msgspec decode + convert only", msgspec_decode_convert),
        ("  msgspec typed decode, 1 pass", _typed_decoder.decode),
        ("pydantic model_validate_json", PChatRequest.model_validate_json),
        ("no validation: msgspec.json.decode", msgspec.json.decode),
    ]
    results = {}
    for name, func in cases:
        results[name] = best_us(func, REQUEST_BODY)
        print(f"{name:<38} {results[name]:>8.2f}", flush=True)
    base = results[cases[0][0]]
    print(f"pydantic / parse_request: x{results[cases[3][0]] / base:.2f}")


if __name__ == "__main__":
    main()
