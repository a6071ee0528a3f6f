"""The incremental SSE parser: fixed cases and properties over arbitrary splits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_gateway.providers.sse import SSEEvent, SSEParser


def parse_all(pieces: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.close())
    return events


def test_single_data_event() -> None:
    assert parse_all([b"data: {}\n\n"]) == [SSEEvent("{}")]


def test_multi_line_data_joined_with_newline_and_names_and_ids() -> None:
    stream = b"event: delta\nid: 7\ndata: a\ndata:b\ndata:  c\n\n"
    assert parse_all([stream]) == [SSEEvent("a\nb\n c", "delta", "7")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    stream = b": OPENROUTER PROCESSING\n\nretry: 10\nfoo: bar\ndata: x\n\n:keepalive\n\n"
    assert parse_all([stream]) == [SSEEvent("x")]


def test_field_without_colon_and_empty_data() -> None:
    assert parse_all([b"data\n\n"]) == [SSEEvent("")]


def test_crlf_and_cr_line_endings() -> None:
    assert parse_all([b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]) == [
        SSEEvent("a"),
        SSEEvent("b"),
        SSEEvent("c"),
    ]


def test_crlf_split_between_pieces_dispatches_at_once_without_duplicates() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\n\r") == [SSEEvent("a")]
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n\r\n") == [SSEEvent("b")]
    assert parser.close() == []


def test_utf8_character_split_across_pieces() -> None:
    raw = "data: héllo €\n\n".encode()
    cut = raw.index("€".encode()) + 1
    parser = SSEParser()
    assert parser.feed(raw[:cut]) == []
    assert parser.feed(raw[cut:]) == [SSEEvent("héllo €")]


def test_no_trailing_blank_line_at_eof() -> None:
    assert parse_all([b"data: 1\n\ndata: [DONE]"]) == [SSEEvent("1"), SSEEvent("[DONE]")]
    assert parse_all([b"data: [DONE]\n"]) == [SSEEvent("[DONE]")]


def test_bom_is_stripped_and_ids_persist_and_nul_ids_are_ignored() -> None:
    stream = b"\xef\xbb\xbfid: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\n"
    assert parse_all([stream]) == [
        SSEEvent("a", id="1"),
        SSEEvent("b", id="1"),
        SSEEvent("c", id="1"),
    ]


def test_event_name_without_data_is_not_dispatched() -> None:
    assert parse_all([b"event: ping\n\ndata: x\n\n"]) == [SSEEvent("x")]


def test_event_repr_and_hash() -> None:
    event = SSEEvent("d", "e", "i")
    assert "d" in repr(event)
    assert hash(event) == hash(SSEEvent("d", "e", "i"))
    assert event != "d"


# --- properties ------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    max_size=20,
)
_event = st.tuples(
    st.lists(_text, min_size=1, max_size=3),  # data lines
    st.one_of(st.none(), _text.filter(lambda s: s != "")),  # event name
    st.one_of(st.none(), _text),  # id
)
_newline = st.sampled_from([b"\n", b"\r\n", b"\r"])


def _encode(events: list[tuple[list[str], str | None, str | None]], nl: bytes) -> bytes:
    out = bytearray()
    for data, name, ident in events:
        out += b": comment" + nl
        if name is not None:
            out += b"event: " + name.encode() + nl
        if ident is not None:
            out += b"id: " + ident.encode() + nl
        for line in data:
            out += b"data: " + line.encode() + nl
        out += nl
    return bytes(out)


def _expected(events: list[tuple[list[str], str | None, str | None]]) -> list[SSEEvent]:
    expected = []
    last_id = None
    for data, name, ident in events:
        if ident is not None:
            last_id = ident
        expected.append(SSEEvent("\n".join(data), name or "message", last_id))
    return expected


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_event, max_size=6), nl=_newline, data=st.data())
def test_any_split_gives_the_same_events(
    events: list[tuple[list[str], str | None, str | None]], nl: bytes, data: st.DataObject
) -> None:
    raw = _encode(events, nl)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert parse_all(pieces) == _expected(events)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(_event, min_size=1, max_size=4), nl=_newline)
def test_byte_at_a_time_equals_whole(
    events: list[tuple[list[str], str | None, str | None]], nl: bytes
) -> None:
    raw = _encode(events, nl)
    assert parse_all([raw[i : i + 1] for i in range(len(raw))]) == parse_all([raw])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.data())
def test_arbitrary_bytes_never_raise(raw: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(raw)))
    whole = parse_all([raw])
    assert parse_all([raw[:cut], raw[cut:]]) == whole
