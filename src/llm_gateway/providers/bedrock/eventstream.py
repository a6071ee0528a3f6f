"""An incremental decoder for ``application/vnd.amazon.eventstream``.

The frame layout (AWS "event stream encoding", and botocore's ``eventstream.py`` which we
test against) is, all integers big-endian::

    prelude   total_length u32 | headers_length u32 | prelude_crc u32 (CRC32 of the 8 bytes)
    headers   headers_length bytes of: name_len u8, name utf-8, type u8, value
    payload   total_length - headers_length - 16 bytes
    trailer   message_crc u32 (CRC32 of every byte of the frame before it)

Header value types: 0 true, 1 false, 2 int8, 3 int16, 4 int32, 5 int64, 6 bytes (u16
length), 7 utf-8 string (u16 length), 8 timestamp (int64 milliseconds), 9 uuid (16 bytes).

Bytes may be fed split anywhere; complete frames come out as soon as their last byte
arrives. CRCs are checked with ``zlib.crc32`` (C) and the buffer is compacted once per
``feed``, so a streamed chunk costs a handful of C calls plus one small dict per frame.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["EventStreamDecoder", "EventStreamError", "HeaderValue", "Message"]

HeaderValue = bool | int | bytes | str

_PRELUDE = struct.Struct("!III")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_FIXED = {2: struct.Struct("!b"), 3: struct.Struct("!h"), 4: struct.Struct("!i"),
          5: struct.Struct("!q"), 8: struct.Struct("!q")}  # fmt: skip
# Limits as the service documents them (and botocore enforces): a frame larger than this
# is corruption, not data, and must not make us buffer without bound.
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
_MIN_FRAME = 16


class EventStreamError(ValueError):
    """The byte stream is not a valid event stream (bad CRC, bad lengths, bad headers)."""


class Message:
    """One decoded frame: its headers by name and its raw payload."""

    __slots__ = ("headers", "payload")

    def __init__(self, headers: dict[str, HeaderValue], payload: bytes) -> None:
        self.headers = headers
        self.payload = payload

    def __repr__(self) -> str:
        return f"Message({self.headers!r}, {self.payload[:60]!r})"


def parse_headers(data: bytes) -> dict[str, HeaderValue]:
    """The header block of one frame. Raises EventStreamError if it is malformed."""
    view = data
    end = len(view)
    headers: dict[str, HeaderValue] = {}
    pos = 0
    try:
        while pos < end:
            name_len = view[pos]
            pos += 1
            name = view[pos : pos + name_len].decode("utf-8")
            pos += name_len
            kind = view[pos]
            pos += 1
            value: HeaderValue
            if kind == 0:
                value = True
            elif kind == 1:
                value = False
            elif kind == 7 or kind == 6:
                (length,) = _U16.unpack_from(view, pos)
                pos += 2
                raw = view[pos : pos + length]
                if len(raw) != length:
                    raise EventStreamError("header value runs past the header block")
                pos += length
                value = raw.decode("utf-8") if kind == 7 else raw
            elif kind == 9:
                value = view[pos : pos + 16]
                if len(value) != 16:
                    raise EventStreamError("uuid header runs past the header block")
                pos += 16
            else:
                fixed = _FIXED.get(kind)
                if fixed is None:
                    raise EventStreamError(f"unknown header value type {kind}")
                (value,) = fixed.unpack_from(view, pos)
                pos += fixed.size
            if pos > end:
                raise EventStreamError("header runs past the header block")
            if name in headers:
                raise EventStreamError(f"duplicate header {name!r}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"malformed headers: {exc}") from exc
    return headers


class EventStreamDecoder:
    """Feed bytes as they arrive; get back the frames they complete.

    After an ``EventStreamError`` the decoder is poisoned (framing is lost, nothing after
    a corrupt frame can be trusted) and every later ``feed`` raises again.
    """

    __slots__ = ("_buf", "_failed")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._failed: EventStreamError | None = None

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back; non-zero at EOF means a cut frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        """The frames completed by ``data``. On a corrupt frame, raise EventStreamError;
        use ``feed_partial`` to also get the frames decoded before it."""
        messages, error = self.feed_partial(data)
        if error is not None:
            raise error
        return messages

    def feed_partial(self, data: bytes) -> tuple[list[Message], EventStreamError | None]:
        """The frames completed by ``data`` and the error that stopped decoding, if any:
        frames before a corrupt one are still good and are returned with the error."""
        if self._failed is not None:
            return [], self._failed
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos = 0
        size = len(buf)
        error: EventStreamError | None = None
        view = memoryview(buf)
        try:
            while size - pos >= 12:
                total, headers_len, prelude_crc = _PRELUDE.unpack_from(buf, pos)
                if zlib.crc32(view[pos : pos + 8]) != prelude_crc:
                    error = EventStreamError(
                        f"prelude CRC mismatch at frame offset {pos}: expected "
                        f"0x{prelude_crc:08x}, got 0x{zlib.crc32(view[pos : pos + 8]):08x}"
                    )
                    break
                if headers_len > MAX_HEADERS_LENGTH:
                    error = EventStreamError(f"headers length {headers_len} exceeds the limit")
                    break
                if total < _MIN_FRAME + headers_len:
                    error = EventStreamError(
                        f"frame length {total} is too small for {headers_len} header bytes"
                    )
                    break
                if total - headers_len - _MIN_FRAME > MAX_PAYLOAD_LENGTH:
                    error = EventStreamError(f"payload of frame length {total} exceeds the limit")
                    break
                if size - pos < total:
                    break  # wait for the rest of this frame
                end = pos + total
                (message_crc,) = _U32.unpack_from(buf, end - 4)
                actual = zlib.crc32(view[pos : end - 4])
                if actual != message_crc:
                    error = EventStreamError(
                        f"message CRC mismatch: expected 0x{message_crc:08x}, got 0x{actual:08x}"
                    )
                    break
                headers_end = pos + 12 + headers_len
                try:
                    headers = parse_headers(bytes(view[pos + 12 : headers_end]))
                except EventStreamError as exc:
                    error = exc
                    break
                out.append(Message(headers, bytes(view[headers_end : end - 4])))
                pos = end
        finally:
            view.release()
        if error is not None:
            self._failed = error
            buf.clear()
        elif pos:
            del buf[:pos]
        return out, error
