"""Server-sent events, parsed in linear time with a cap per event.

Each byte is scanned once: the buffer keeps the position where the search for the next
line end stopped, and consumed bytes are dropped in amortised constant time. One event (or
one line) larger than :data:`~langchain_chatgptes._limits.MAX_EVENT_BYTES` is an error,
so a reply cannot make the client buffer without bound; a whole stream has no cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_chatgptes._limits import MAX_EVENT_BYTES
from langchain_chatgptes.errors import ResponseFormatError, ResponseTooLargeError

_EOL = re.compile(rb"[\r\n]")
_FIELDS = frozenset({"data", "event", "id", "retry"})
EXCERPT = 200


@dataclass(frozen=True)
class SSEEvent:
    r"""One dispatched event, or a bare line outside the SSE framing.

    Attributes:
        name: The ``event:`` field ("" when none); ``None`` marks a bare line (not a
            field, e.g. a JSON object PHP printed after a stream), whose text is ``data``.
        data: The ``data:`` lines joined with ``\\n``.
        id: The ``id:`` field ("" when none).
    """

    name: str | None
    data: str
    id: str = ""


def looks_like_sse(prefix: bytes) -> bool | None:
    """Whether a body that starts with ``prefix`` is an event stream.

    Returns ``None`` while the first line is too short to tell.
    """
    head = prefix.lstrip(b"\xef\xbb\xbf").lstrip()  # a byte order mark, blank lines
    if not head:
        return None
    line = _EOL.split(head, maxsplit=1)[0]
    if head.startswith(b":"):
        return True
    name, colon, _ = line.partition(b":")
    if colon:
        return name in (b"data", b"event", b"id", b"retry")
    if len(line) == len(head) and len(line) <= len(b"retry"):  # the first line may go on
        return None
    return False


class SSEParser:
    """Turns event-stream bytes into :class:`SSEEvent` s as they arrive."""

    def __init__(self, max_event: int = MAX_EVENT_BYTES) -> None:
        """Create a parser; one event or line above ``max_event`` bytes raises."""
        self._buffer = bytearray()
        self._start = 0  # where the unread part of the buffer begins
        self._scan = 0  # where the search for the next line end resumes
        self._max = max_event
        self._name = ""
        self._id = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume bytes; return the events (and bare lines) they complete."""
        buffer = self._buffer
        buffer += chunk
        events: list[SSEEvent] = []
        while (end := _EOL.search(buffer, self._scan)) is not None:
            stop = end.start()
            if buffer[stop] == 0x0D and stop + 1 == len(buffer):
                self._scan = stop  # a final \r may be the first half of \r\n
                break
            raw = bytes(buffer[self._start : stop])
            crlf = buffer[stop] == 0x0D and buffer[stop + 1] == 0x0A
            self._start = self._scan = stop + (2 if crlf else 1)
            event = self._line(raw)
            if event is not None:
                events.append(event)
        else:
            self._scan = len(buffer)
        if self._start > 65_536 and 2 * self._start > len(buffer):
            del buffer[: self._start]
            self._scan -= self._start
            self._start = 0
        if len(buffer) - self._start + self._size > self._max:
            raise ResponseTooLargeError(
                f"An event in the stream is larger than {self._max} bytes.", limit=self._max
            )
        return events

    def finish(self) -> list[SSEEvent]:
        """The stream ended: the last line and any event not closed by a blank line."""
        events: list[SSEEvent] = []
        if self._start < len(self._buffer):
            rest = bytes(self._buffer[self._start :])
            event = self._line(rest.removesuffix(b"\r"))  # a held-back \r ended the line
            if event is not None:
                events.append(event)
        self._buffer.clear()
        self._start = self._scan = 0
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ResponseFormatError(
                f"The event stream is not valid UTF-8: {raw[:EXCERPT]!r}"
            ) from exc
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if not colon or name not in _FIELDS:
            return SSEEvent(None, line)
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
            self._size += len(raw)
            if self._size > self._max:
                raise ResponseTooLargeError(
                    f"An event in the stream is larger than {self._max} bytes.", limit=self._max
                )
        elif name == "event":
            self._name = value
        elif name == "id":
            self._id = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._name = ""
            return None
        event = SSEEvent(self._name, "\n".join(self._data), self._id)
        self._data, self._name, self._size = [], "", 0
        return event
