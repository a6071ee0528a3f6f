"""Encodes core stream events as Anthropic Messages SSE events.

Anthropic's stream is a sequence of *content blocks*, each opened, filled and closed
before the next one opens (``message_start``, then per block ``content_block_start`` /
``content_block_delta``... / ``content_block_stop``, then ``message_delta`` with the stop
reason and usage, then ``message_stop``). Canonical events carry no block structure, so
this encoder keeps one block open at a time and switches blocks as the kind of delta
changes: text → ``text_delta``, reasoning → ``thinking_delta`` / ``signature_delta``, a
tool call → a ``tool_use`` block filled by ``input_json_delta``.

Tool-call input must reach the client complete and in order, whatever the upstream:
- OpenAI-style fragments of one call after another stream live into one block;
- whole-call deltas (Gemini) become a block with one ``input_json_delta``;
- fragments *interleaved* across calls cannot be streamed live, since a block cannot be
  reopened once closed. While a tool block is open and its arguments are not yet a
  complete JSON object, every event for anything else is held back, in order, and
  replayed as soon as that call's arguments complete (or when the stream ends). The
  common cases never hold anything; the rare interleaved one costs a JSON parse per
  fragment while something is held.

Per chunk, a text delta in an open text block costs one JSON string encode and two
concatenations against prefixes computed when the block opened.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from llm_gateway.api.anthropic.convert import error_payload, stop_reason, usage_to_wire
from llm_gateway.core.errors import GatewayError
from llm_gateway.core.events import (
    ErrorEvent,
    FinishEvent,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    UsageEvent,
)
from llm_gateway.core.types import FinishReason, Usage

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# Which kind of block is open.
_NONE, _TEXT, _THINKING, _TOOL = 0, 1, 2, 3
_PENDING, _OPEN, _CLOSED = 0, 1, 2

_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_DELTA_TAIL = b"}}\n\n"
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _event(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


class _Call:
    """A tool call as far as it has arrived."""

    __slots__ = ("arguments", "block", "id", "name", "state")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []
        self.state = _PENDING
        self.block = -1

    def complete(self) -> bool:
        """Whether the arguments so far are a whole JSON object (no more can follow)."""
        text = "".join(self.arguments).strip()
        if not text.startswith("{"):
            return False
        try:
            return isinstance(_decode(text), dict)
        except msgspec.DecodeError:
            return False


class AnthropicStreamEncoder:
    __slots__ = (
        "_calls",
        "_held",
        "_kind",
        "_next_block",
        "_open_call",
        "_prefix",
        "_stop_sequence",
        "failed",
        "finish_reason",
        "id",
        "model",
        "usage",
    )

    def __init__(self, *, id: str, model: str, stop_sequence: str | None = None) -> None:
        self.id = id
        self.model = model
        self._stop_sequence = stop_sequence
        self._kind = _NONE
        self._next_block = 0
        self._prefix = b""  # the delta frame up to the delta's value, for the open block
        self._open_call: _Call | None = None
        self._calls: dict[int, _Call] = {}
        self._held: list[StreamEvent] = []
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.failed = False

    # --- frames -------------------------------------------------------------------------

    def start(self, first: Sequence[StreamEvent] = ()) -> bytes:
        """``message_start``; input tokens come from a usage event in ``first`` if any
        (Anthropic upstreams report them up front), else 0 until ``message_delta``."""
        usage = next((e.usage for e in first if isinstance(e, UsageEvent)), None)
        message: dict[str, object] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage_to_wire(usage), "output_tokens": 0},
        }
        return _event(b"message_start", _encode({"type": "message_start", "message": message}))

    def encode(self, event: StreamEvent) -> bytes | None:
        """The frames for one event, or None when it produces none (yet)."""
        if type(event) is TextDelta and self._kind == _TEXT:
            # The hot path: more text for the open text block (nothing can be held then).
            return self._prefix + _encode(event.text) + _DELTA_TAIL
        out: list[bytes] = []
        self._process(event, out)
        return b"".join(out) if out else None

    def end(self) -> bytes:
        """Closes every block (releasing anything held), then message_delta, message_stop."""
        out: list[bytes] = []
        self._drain(out)
        self._close(out)
        has_tools = any(c.state == _CLOSED for c in self._calls.values())
        finish: FinishReason = self.finish_reason or ("tool_calls" if has_tools else "stop")
        reason = stop_reason(finish, has_tools, self._stop_sequence)
        usage = self.usage
        delta_usage: dict[str, int] = (
            usage_to_wire(usage) if usage is not None else {"output_tokens": 0}
        )
        payload = {
            "type": "message_delta",
            "delta": {
                "stop_reason": reason,
                "stop_sequence": self._stop_sequence if reason == "stop_sequence" else None,
            },
            "usage": delta_usage,
        }
        out.append(_event(b"message_delta", _encode(payload)))
        out.append(_MESSAGE_STOP)
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        """Anthropic's in-stream error event; the SDKs raise an APIStatusError on it."""
        self.failed = True
        return _event(b"error", _encode(error_payload(error)))

    # --- block machinery ----------------------------------------------------------------

    def _open(self, kind: int, block: dict[str, object], delta_key: bytes, out: list[bytes]) -> int:
        self._close(out)
        index = self._next_block
        self._next_block += 1
        self._kind = kind
        out.append(
            _event(
                b"content_block_start",
                b'{"type":"content_block_start","index":'
                + str(index).encode()
                + b',"content_block":'
                + _encode(block)
                + b"}",
            )
        )
        self._prefix = _DELTA + str(index).encode() + b',"delta":' + delta_key
        return index

    def _close(self, out: list[bytes]) -> None:
        if self._kind == _NONE:
            return
        index = self._next_block - 1
        out.append(
            _event(
                b"content_block_stop",
                b'{"type":"content_block_stop","index":' + str(index).encode() + b"}",
            )
        )
        if self._open_call is not None:
            self._open_call.state = _CLOSED
            self._open_call = None
        self._kind = _NONE

    def _holding(self) -> bool:
        """Whether a new event must wait: an open tool block may still get fragments."""
        if self._held:
            return True  # keep the order of everything already waiting
        call = self._open_call
        return call is not None and not call.complete()

    def _process(self, event: StreamEvent, out: list[bytes]) -> None:
        kind = type(event)
        if kind is ToolCallDelta:
            assert isinstance(event, ToolCallDelta)
            self._tool(event, out)
        elif kind is TextDelta:
            assert isinstance(event, TextDelta)
            if not event.text:
                return
            if self._holding():
                self._held.append(event)
                return
            if self._kind != _TEXT:
                self._open(
                    _TEXT, {"type": "text", "text": ""}, b'{"type":"text_delta","text":', out
                )
            out.append(self._prefix + _encode(event.text) + _DELTA_TAIL)
        elif kind is ReasoningDelta:
            assert isinstance(event, ReasoningDelta)
            if not event.text and not event.signature:
                return
            if self._holding():
                self._held.append(event)
                return
            if self._kind != _THINKING:
                self._open(
                    _THINKING,
                    {"type": "thinking", "thinking": "", "signature": ""},
                    b'{"type":"thinking_delta","thinking":',
                    out,
                )
            if event.text:
                out.append(self._prefix + _encode(event.text) + _DELTA_TAIL)
            if event.signature:
                index = str(self._next_block - 1).encode()
                out.append(
                    _DELTA
                    + index
                    + b',"delta":{"type":"signature_delta","signature":'
                    + _encode(event.signature)
                    + _DELTA_TAIL
                )
        elif kind is UsageEvent:
            self.usage = event.usage  # type: ignore[union-attr]
        elif kind is FinishEvent:
            self.finish_reason = event.reason  # type: ignore[union-attr]
        elif kind is ErrorEvent:
            out.append(self.error(event.error))  # type: ignore[union-attr]

    def _tool(self, event: ToolCallDelta, out: list[bytes]) -> None:
        call = self._calls.get(event.index)
        if call is not None and call is self._open_call:
            if event.arguments:
                call.arguments.append(event.arguments)
                out.append(self._prefix + _encode(event.arguments) + _DELTA_TAIL)
                if self._held and call.complete():
                    self._close(out)
                    self._replay(out)
            return
        if call is not None and call.state == _CLOSED:
            # Only whitespace can follow a complete JSON object; nothing is lost.
            return
        if self._holding():
            self._held.append(event)
            return
        if call is None:
            call = self._calls[event.index] = _Call()
        if event.id:
            call.id = event.id
        if event.name:
            call.name = event.name
        if event.arguments:
            call.arguments.append(event.arguments)
        call.block = self._open(
            _TOOL,
            {
                "type": "tool_use",
                # The first delta carries id and name (core.events contract); an upstream
                # that omits the id still gets a stable one.
                "id": call.id or f"toolu_{self.id}_{event.index}",
                "name": call.name,
                "input": {},
            },
            b'{"type":"input_json_delta","partial_json":',
            out,
        )
        self._open_call = call
        call.state = _OPEN
        if call.arguments:
            out.append(self._prefix + _encode("".join(call.arguments)) + _DELTA_TAIL)

    def _replay(self, out: list[bytes]) -> None:
        held, self._held = self._held, []
        for event in held:
            self._process(event, out)

    def _drain(self, out: list[bytes]) -> None:
        """At the end of the stream no fragment can still arrive for the open tool block,
        so close it and replay what waited, until nothing does."""
        while self._held:
            self._close(out)
            self._replay(out)
