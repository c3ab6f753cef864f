"""The protocol-neutral server-sent events parser and the SSE sniff, on literal bytes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from langchain_chatgptes import ResponseFormatError, ResponseTooLargeError
from langchain_chatgptes.protocols._sse import SSEEvent, SSEParser, looks_like_sse


def parse(*chunks: bytes, max_event: int | None = None) -> list[SSEEvent]:
    parser = SSEParser() if max_event is None else SSEParser(max_event=max_event)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.finish()


def feed_all(feed: Callable[[bytes], object], chunks: list[bytes]) -> None:
    for chunk in chunks:
        feed(chunk)


def bytewise(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_each_line_end(eol: bytes) -> None:
    body = b"data: one" + eol + eol + b"data: two" + eol + b"data: 2" + eol + eol + b"data: x"
    expected = [SSEEvent("", "one"), SSEEvent("", "two\n2"), SSEEvent("", "x")]
    assert parse(body) == expected
    assert parse(*bytewise(body)) == expected


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []  # the \n may follow
    assert parser.feed(b"\n") == []  # it did: one line end, no blank line yet
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\ndata: b\n\n") == [SSEEvent("", "a"), SSEEvent("", "b")]


def test_cr_then_lf_in_the_next_chunk_after_a_cr_pair() -> None:
    # "\r" "\r\n" is two line ends (CR, then CRLF): a blank line dispatches.
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n") == [SSEEvent("", "a")]


def test_mixed_line_ends_in_one_stream() -> None:
    assert parse(b"data: a\r\n\ndata: b\r\rdata: c\n\r\n") == [
        SSEEvent("", "a"),
        SSEEvent("", "b"),
        SSEEvent("", "c"),
    ]


def test_comment_lines_are_ignored() -> None:
    assert parse(b": ping\n\n:\ndata: a\n: inside an event\ndata: b\n\n") == [SSEEvent("", "a\nb")]


def test_event_names_ids_and_retry() -> None:
    body = b"event: message\nid: 7\nretry: 100\ndata: hi\n\ndata: plain\n\n"
    assert parse(body) == [SSEEvent("message", "hi", "7"), SSEEvent("", "plain", "7")]


def test_an_event_name_without_data_is_dropped_and_does_not_leak() -> None:
    assert parse(b"event: ping\n\ndata: x\n\n") == [SSEEvent("", "x")]


def test_field_values_lose_one_leading_space_only() -> None:
    assert parse(b"data:a\n\ndata:  b\n\ndata:\n\n") == [
        SSEEvent("", "a"),
        SSEEvent("", " b"),
        SSEEvent("", ""),
    ]


@pytest.mark.parametrize(
    "line",
    [b'{"status":"success","data":"x"}', b"<html>oops</html>", b"unknown: field", b"DATA: x"],
)
def test_a_bare_line_is_returned_with_no_name(line: bytes) -> None:
    parser = SSEParser()
    assert parser.feed(line + b"\n") == [SSEEvent(None, line.decode())]
    assert parser.finish() == []


def test_a_bare_line_does_not_end_the_pending_event() -> None:
    assert parse(b"data: a\n{}\ndata: b\n\n") == [SSEEvent(None, "{}"), SSEEvent("", "a\nb")]


def test_finish_returns_the_last_line_and_the_open_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\ndata: b") == []
    assert parser.finish() == [SSEEvent("", "a\nb")]
    assert parser.finish() == []


def test_invalid_utf8_is_a_format_error() -> None:
    with pytest.raises(ResponseFormatError, match="not valid UTF-8"):
        parse(b"data: \xff\n\n")


def test_multibyte_characters_split_across_chunks() -> None:
    body = "data: 日本語 🎉\n\n".encode()
    assert parse(*bytewise(body)) == [SSEEvent("", "日本語 🎉")]


def test_one_event_above_max_event_is_refused() -> None:
    parser = SSEParser(max_event=64)
    assert parser.feed(b"data: " + b"x" * 40 + b"\n\n") == [SSEEvent("", "x" * 40)]
    parser.feed(b"data: " + b"x" * 40 + b"\n")  # 47 bytes of one event so far
    with pytest.raises(ResponseTooLargeError) as info:
        parser.feed(b"data: " + b"x" * 40 + b"\n")  # the same event: 94 bytes
    assert info.value.limit == 64
    assert isinstance(info.value, ResponseFormatError)


def test_one_line_above_max_event_is_refused_before_it_ends() -> None:
    parser = SSEParser(max_event=64)
    parser.feed(b"data: ")
    with pytest.raises(ResponseTooLargeError, match="larger than 64 bytes"):
        feed_all(parser.feed, [b"x" * 8] * 10)


def test_a_long_bare_line_is_refused_too() -> None:
    parser = SSEParser(max_event=64)
    with pytest.raises(ResponseTooLargeError):
        feed_all(parser.feed, [b"{" + b"x" * 9] * 10)


def test_many_small_events_never_reach_max_event() -> None:
    event = b"data: " + b"x" * 40 + b"\n\n"
    assert len(parse(*[event] * 1000, max_event=64)) == 1000


def test_one_event_above_max_event_in_one_chunk_is_refused() -> None:
    parser = SSEParser(max_event=64)
    with pytest.raises(ResponseTooLargeError):
        parser.feed(b"data: " + b"x" * 100 + b"\n\n")


def test_a_final_cr_is_a_line_end_at_finish() -> None:
    assert parse(b"data: x\r") == [SSEEvent("", "x")]


# --- the sniff -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"data: {", True),
        (b"data:", True),
        (b"event: message\n", True),
        (b"id: 1\n", True),
        (b"retry: 10\n", True),
        (b": ping\n", True),
        (b":", True),
        (b"\n\n\r\ndata: x", True),
        (b"\xef\xbb\xbfdata: x", True),
        (b'{"status":"success"', False),
        (b"<html>", False),
        (b"[1, 2]", False),
        (b"-1\n", False),
        (b"The link you followed has expired.", False),
        (b"Data: x", False),
        (b"data x\n", False),
        (b"", None),
        (b"   \n\r\n", None),
        (b"d", None),
        (b"dat", None),
        (b"-1", None),
    ],
)
def test_looks_like_sse(prefix: bytes, expected: bool | None) -> None:
    assert looks_like_sse(prefix) is expected
