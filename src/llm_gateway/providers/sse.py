"""An incremental Server-Sent Events parser for upstream streams.

Feed it byte pieces exactly as they come off the socket (split anywhere: inside a line,
inside a ``\\r\\n``, inside a UTF-8 character) and it returns the events completed so far.

Why it works on bytes and whole blocks: an upstream chunk is usually one complete event
(``data: {...}\\n\\n``), so the common case is one ``rfind``, one ``split`` and one decode
per piece. Lines are decoded only once complete, so a multi-byte character split across
pieces can never be decoded half-way. Line endings are normalised to ``\\n`` on the way in;
a piece ending in ``\\r`` is treated as a finished line at once and a ``\\n`` starting the
next piece is dropped, so a ``\\r\\n`` split across pieces never delays or duplicates a line.

Follows the WHATWG event-stream rules: ``:`` comments are ignored (OpenRouter sends
``: OPENROUTER PROCESSING`` keep-alives), one space after the colon is stripped, several
``data`` lines join with ``\\n``, an ``id`` containing NUL is ignored, ``retry`` is ignored.
Unlike a browser, ``close()`` dispatches a final event that lacks its blank line, because
several upstreams end with ``data: [DONE]\\n`` and nothing after it.
"""

from __future__ import annotations

__all__ = ["SSEEvent", "SSEParser"]

_BOM = b"\xef\xbb\xbf"


class SSEEvent:
    """One dispatched event. ``event`` is ``"message"`` when the stream names none."""

    __slots__ = ("data", "event", "id")

    def __init__(self, data: str, event: str = "message", id: str | None = None) -> None:
        self.data = data
        self.event = event
        self.id = id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SSEEvent):
            return NotImplemented
        return (self.data, self.event, self.id) == (other.data, other.event, other.id)

    def __hash__(self) -> int:
        return hash((self.data, self.event, self.id))

    def __repr__(self) -> str:
        return f"SSEEvent(data={self.data!r}, event={self.event!r}, id={self.id!r})"


class SSEParser:
    __slots__ = ("_buf", "_data", "_event", "_last_id", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._skip_lf = False  # the previous piece ended in "\r": drop a leading "\n"
        self._started = False  # the BOM check happens once, on the first complete block
        self._data: list[str] = []
        self._event = ""
        # The last event id persists across events, as the spec says.
        self._last_id: str | None = None

    def feed(self, piece: bytes) -> list[SSEEvent]:
        """Add bytes; return the events they complete (often none, usually one)."""
        if not piece:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if piece[:1] == b"\n":
                piece = piece[1:]
        if b"\r" in piece:
            if piece[-1:] == b"\r":
                self._skip_lf = True
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf + piece if self._buf else piece
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 2 :]
        events: list[SSEEvent] = []
        # The block is complete lines followed by a blank line, so it always dispatches.
        self._lines(buf[:end].split(b"\n"), events)
        self._dispatch(events)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: parse what is left as complete lines and dispatch it."""
        self._skip_lf = False
        rest, self._buf = self._buf, b""
        events: list[SSEEvent] = []
        if rest:
            self._lines(rest.split(b"\n"), events)
        self._dispatch(events)
        return events

    def _lines(self, lines: list[bytes], events: list[SSEEvent]) -> None:
        if not self._started:
            self._started = True
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        for line in lines:
            if not line:
                self._dispatch(events)
                continue
            if line[0] == 58:  # b":" -> a comment
                continue
            colon = line.find(b":")
            if colon < 0:
                field, value = line, b""
            else:
                field = line[:colon]
                value = line[colon + 1 :]
                if value[:1] == b" ":
                    value = value[1:]
            if field == b"data":
                self._data.append(value.decode("utf-8", "replace"))
            elif field == b"event":
                self._event = value.decode("utf-8", "replace")
            elif field == b"id" and b"\x00" not in value:
                self._last_id = value.decode("utf-8", "replace")
            # "retry" and unknown fields are ignored.

    def _dispatch(self, events: list[SSEEvent]) -> None:
        data = self._data
        if not data:
            self._event = ""
            return
        text = data[0] if len(data) == 1 else "\n".join(data)
        events.append(SSEEvent(text, self._event or "message", self._last_id))
        self._data = []
        self._event = ""
