"""JSON libraries on the gateway's own payloads: msgspec vs orjson vs stdlib ``json``.

Three realistic payloads, each decoded from bytes to Python objects (dicts/lists) and
encoded from those objects back to compact UTF-8 bytes (what goes on the wire):

* ``request``  — a ~2 KB ``/v1/chat/completions`` request: 6 messages (system, user, user
  with text + image parts, assistant with a tool call, tool result, user) and 2 tools with
  JSON-schema parameters;
* ``response`` — a ~400-byte ``chat.completion`` object with ``usage``;
* ``chunk``    — a ~250-byte ``chat.completion.chunk`` (one SSE event's JSON);
* ``delta str`` (encode only) — the content string of that chunk, which is all the
  gateway's stream encoder actually JSON-encodes per chunk.

Timing: ``timeit`` with a fixed loop count per cell chosen so one repeat takes ~0.1 s,
best of 5 repeats, reported as ns per call. The gateway uses ``msgspec.json.Decoder()``
(a reused decoder) and ``msgspec.json.encode``; the same calls are timed here. stdlib
``json`` encodes with ``separators=(",", ":")`` so every library writes the same bytes.

Run: ``uv run --with orjson python bench/json_compare.py`` (orjson is not a dependency;
without it its column says "n/a"). Takes ~11 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import timeit
from collections.abc import Callable
from typing import Any

import msgspec

try:
    import orjson  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # not a dependency: `uv run --with orjson ...`
    orjson = None  # type: ignore[assignment, unused-ignore]

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
    "additionalProperties": False,
}
SEARCH_PARAMS = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "Full-text query"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 50},
    },
    "required": ["query"],
}

REQUEST_OBJ: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {
            "role": "system",
            "content": "You are a concise travel assistant. Use the tools when the user asks "
            "about the weather or needs facts you do not know; answer in plain English, at "
            "most three sentences, and never invent numbers.",
        },
        {
            "role": "user",
            "content": "I am flying to Paris next Tuesday for a three-day conference and "
            "I would like to walk between the venues. What should I pack?",
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Here is the map of the venues I was sent:"},
                {
                    "type": "image_url",
                    "image_url": {
                        "url": "https://example.com/static/maps/paris-venues-2026.png",
                        "detail": "low",
                    },
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_Q2x7mZk1uXgWc9Lr",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city":"Paris","unit":"celsius"}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_Q2x7mZk1uXgWc9Lr",
            "content": '{"city":"Paris","forecast":[{"day":"Tue","high":14,"low":7,'
            '"rain":0.6},{"day":"Wed","high":12,"low":6,"rain":0.8},{"day":"Thu",'
            '"high":15,"low":8,"rain":0.2}],"unit":"celsius"}',
        },
        {
            "role": "user",
            "content": "Thanks. And is the Louvre open on Wednesday evening?",
        },
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the 3-day weather forecast for a city.",
                "parameters": WEATHER_PARAMS,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "web_search",
                "description": "Search the web and return the top results as short snippets.",
                "parameters": SEARCH_PARAMS,
            },
        },
    ],
    "tool_choice": "auto",
    "temperature": 0.7,
    "max_tokens": 512,
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "user-7f3a9c21",
}

RESPONSE_OBJ: dict[str, Any] = {
    "id": "chatcmpl-B9x2kQw7LmN4pR8sT1vY6zA3cD5",
    "object": "chat.completion",
    "created": 1_763_792_962,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Yes, on Wednesdays the Louvre is open until 9 pm.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 412, "completion_tokens": 27, "total_tokens": 439},
    "system_fingerprint": "fp_0ba0d124f1",
}

CHUNK_OBJ: dict[str, Any] = {
    "id": "chatcmpl-B9x2kQw7LmN4pR8sT1vY6zA3cD5",
    "object": "chat.completion.chunk",
    "created": 1_763_792_962,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_0ba0d124f1",
    "choices": [
        {"index": 0, "delta": {"content": " the Louvre"}, "logprobs": None, "finish_reason": None}
    ],
}

REQUEST_BODY = msgspec.json.encode(REQUEST_OBJ)
PAYLOADS: dict[str, bytes] = {
    "request": REQUEST_BODY,
    "response": msgspec.json.encode(RESPONSE_OBJ),
    "chunk": msgspec.json.encode(CHUNK_OBJ),
}

REPEATS = 5
TARGET_S = 0.1  # per repeat


def libraries() -> dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]] | None]:
    decoder = msgspec.json.Decoder()
    encode = msgspec.json.encode

    def json_dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    return {
        "msgspec": (decoder.decode, encode),
        "orjson": (orjson.loads, orjson.dumps) if orjson is not None else None,
        "json": (json.loads, json_dumps),
    }


def best_ns(func: Callable[[Any], Any], arg: Any) -> float:
    """Best of ``REPEATS`` timeit repeats, ns per call; loop count sized to ~TARGET_S."""
    timer = timeit.Timer(lambda: func(arg))
    once = min(timer.repeat(repeat=3, number=200)) / 200
    number = max(1000, int(TARGET_S / max(once, 1e-9)))
    return min(timer.repeat(repeat=REPEATS, number=number)) / number * 1e9


def check(libs: dict[str, Any]) -> None:
    """Every library must read the payloads to the same objects and write the same bytes."""
    for name, body in PAYLOADS.items():
        obj = json.loads(body)
        for lib, funcs in libs.items():
            if funcs is None:
                continue
            decode, encode = funcs
            assert decode(body) == obj, (lib, name, "decode")
            assert encode(obj) == body, (lib, name, "encode")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    libs = libraries()
    check(libs)
    versions = {
        "msgspec": msgspec.__version__,
        "orjson": orjson.__version__ if orjson is not None else "not installed",
    }
    print(
        f"python {platform.python_version()}, msgspec {versions['msgspec']}, "
        f"orjson {versions['orjson']}; best of {REPEATS}, ns/op (lower is better)"
    )
    names = list(libs)
    header = f"{'payload':<10} {'bytes':>6} {'op':<7}" + "".join(f"{n:>10}" for n in names)
    print(header)
    print("-" * len(header))
    for pname, body in PAYLOADS.items():
        obj = json.loads(body)
        for op in ("decode", "encode"):
            row = f"{pname:<10} {len(body):>6} {op:<7}"
            for lib in names:
                funcs = libs[lib]
                if funcs is None:
                    row += f"{'n/a':>10}"
                    continue
                func, arg = (funcs[0], body) if op == "decode" else (funcs[1], obj)
                row += f"{best_ns(func, arg):>10,.0f}"
            print(row, flush=True)
    # What the stream encoder really encodes per content chunk: the delta text alone
    # (the rest of the SSE frame is precomputed bytes; see api/openai/stream.py).
    text = CHUNK_OBJ["choices"][0]["delta"]["content"]
    row = f"{'delta str':<10} {len(text) + 2:>6} {'encode':<7}"
    for lib in names:
        funcs = libs[lib]
        row += f"{'n/a':>10}" if funcs is None else f"{best_ns(funcs[1], text):>10,.0f}"
    print(row, flush=True)


if __name__ == "__main__":
    main()
