"""The event-stream decoder against botocore's ``EventStreamBuffer`` on random frames
split at random points, and its failures on corrupt input."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.fakes.bedrock_upstream import encode_frame, event_frame

from llm_gateway.providers.bedrock.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    Message,
)

_VALUES: dict[int, st.SearchStrategy[Any]] = {
    0: st.just(True),
    1: st.just(False),
    2: st.integers(-(2**7), 2**7 - 1),
    3: st.integers(-(2**15), 2**15 - 1),
    4: st.integers(-(2**31), 2**31 - 1),
    5: st.integers(-(2**63), 2**63 - 1),
    6: st.binary(max_size=40),
    7: st.text(max_size=40),
    8: st.integers(-(2**63), 2**63 - 1),
    9: st.binary(min_size=16, max_size=16),
}
_HEADER = st.integers(0, 9).flatmap(
    lambda kind: st.tuples(st.text(min_size=1, max_size=20), st.just(kind), _VALUES[kind])
)
_HEADERS = st.lists(_HEADER, max_size=6, unique_by=lambda h: h[0]).filter(
    lambda hs: all(len(n.encode()) < 256 for n, _, _ in hs)
)
_MESSAGE = st.tuples(_HEADERS, st.binary(max_size=300))


def decode_in_pieces(data: bytes, cuts: list[int]) -> list[Message]:
    decoder = EventStreamDecoder()
    out: list[Message] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out.extend(decoder.feed(data[start:cut]))
        start = max(start, cut)
    assert decoder.pending == 0
    return out


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(_MESSAGE, min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_same_frames_as_botocore(
    messages: list[tuple[list[tuple[str, int, Any]], bytes]], cuts: list[int]
) -> None:
    data = b"".join(encode_frame(headers, payload) for headers, payload in messages)
    ours = decode_in_pieces(data, cuts)
    reference = EventStreamBuffer()
    reference.add_data(data)
    theirs = list(reference)
    assert [(m.headers, m.payload) for m in ours] == [(m.headers, m.payload) for m in theirs]
    assert [m.payload for m in ours] == [payload for _, payload in messages]


def test_byte_by_byte() -> None:
    data = event_frame("contentBlockDelta", {"delta": {"text": "hi"}}) * 3
    decoder = EventStreamDecoder()
    out: list[Message] = []
    for i in range(len(data)):
        out.extend(decoder.feed(data[i : i + 1]))
        if out and len(out) < 3:
            assert decoder.pending < len(data) // 3
    assert len(out) == 3
    assert out[0].headers[":event-type"] == "contentBlockDelta"


def test_message_crc_mismatch_after_good_frames() -> None:
    good = event_frame("messageStart", {"role": "assistant"})
    bad = bytearray(event_frame("contentBlockDelta", {"delta": {"text": "x"}}))
    bad[-6] ^= 0x01
    decoder = EventStreamDecoder()
    messages, error = decoder.feed_partial(good + bytes(bad) + good)
    assert [m.headers[":event-type"] for m in messages] == ["messageStart"]
    assert isinstance(error, EventStreamError)
    assert "message CRC mismatch" in str(error)
    # Framing is lost: the decoder stays failed.
    with pytest.raises(EventStreamError):
        decoder.feed(good)


def test_prelude_crc_mismatch() -> None:
    frame = bytearray(event_frame("messageStart", {"role": "assistant"}))
    frame[9] ^= 0x80  # inside the prelude CRC
    with pytest.raises(EventStreamError, match="prelude CRC mismatch"):
        EventStreamDecoder().feed(bytes(frame))


def test_impossible_lengths_are_errors_not_waits() -> None:
    import binascii
    import struct

    prelude = struct.pack("!II", 14, 40)  # shorter than its own headers
    frame = prelude + struct.pack("!I", binascii.crc32(prelude))
    with pytest.raises(EventStreamError, match="too small"):
        EventStreamDecoder().feed(frame + b"\0" * 10)
    huge = struct.pack("!II", 30 * 1024 * 1024, 0)
    with pytest.raises(EventStreamError, match="exceeds"):
        EventStreamDecoder().feed(huge + struct.pack("!I", binascii.crc32(huge)))


def test_bad_header_type_is_an_error() -> None:
    frame = bytearray(encode_frame([("x", 7, "abc")], b"{}"))
    # The type byte of the only header sits after the prelude and the 1-byte name.
    frame[12 + 2] = 42
    import binascii
    import struct

    frame[-4:] = struct.pack("!I", binascii.crc32(bytes(frame[:-4])))
    with pytest.raises(EventStreamError, match="unknown header value type 42"):
        EventStreamDecoder().feed(bytes(frame))


def test_a_cut_frame_stays_pending() -> None:
    frame = event_frame("metadata", {"usage": {}})
    decoder = EventStreamDecoder()
    assert decoder.feed(frame[:-3]) == []
    assert decoder.pending == len(frame) - 3
