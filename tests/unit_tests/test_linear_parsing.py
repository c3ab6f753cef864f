"""Untrusted input is read in linear time (defect regressions: the old readers were quadratic).

Each test times a reader on an input of size N and of size 16N (best of 5 runs each, in
this process's CPU time, so other processes on the machine hardly count) and asserts the
ratio stays below 64 (16 to the power 1.5): linear work gives about 16, quadratic work about
256. The span is wide because the cost of a byte is not the same at every size: the memory
allocator and the caches change mode at sizes that differ from machine to machine (a linear
reader once read a byte 2.1 times slower at 16 MiB than at 4 MiB, and here, in 8 KiB
chunks, 1.8 times slower at 256 KiB than at 128 KiB), which over a span of 4 was enough to
pass for quadratic work. The sizes are fixed (16N is at most 2 MiB) and the reader runs over
its input again until the smaller run takes at least ~10 ms, so the timings are not noise;
a pair over the bound is measured again (up to 3 trials) before it fails. The first tests
check that the check fails on two quadratic readers: one that searches the buffer again for
each chunk, and one that copies it. This is a complexity check, not a speed target: speed
is measured by ``make bench``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
from collections.abc import Callable

import pytest

from langchain_chatgptes import NonceNotFoundError
from langchain_chatgptes.protocols import read_page
from langchain_chatgptes.protocols._base import ReplyHead
from langchain_chatgptes.protocols._html import script_object, start_tags
from langchain_chatgptes.protocols._sse import SSEEvent, SSEParser
from langchain_chatgptes.protocols.wpaicg import ReplyReader, StreamDecoder

CHUNK = 512  # small, so that work repeated for each chunk (a rescan, a copy) weighs more
SPAN = 16
MAX_RATIO = SPAN**1.5
MAX_SIZE = 128 * 1024  # N, so that 16N stays small
MIN_SMALL_SECONDS = 0.01
TRIALS = 3

Run = Callable[[], object]


def best_of_5(run: Run) -> float:
    # One collection first (it takes tens of ms beside a whole test suite), none while timing.
    gc.collect()
    gc.disable()
    try:
        times = []
        for _ in range(5):
            start = time.process_time()
            run()
            times.append(time.process_time() - start)
        return min(times)
    finally:
        gc.enable()


def repeated(run: Run, times: int) -> Run:
    def again() -> None:
        for _ in range(times):
            run()

    return again


def assert_linear(
    make: Callable[[int], Run],
    n: int,
    *,
    trials: int = TRIALS,
    min_small: float = MIN_SMALL_SECONDS,
) -> None:
    """``make(n)`` builds the input of size ``n`` (untimed) and returns the timed run.

    Both runs are repeated as often as it takes the smaller to last ``min_small`` seconds.
    The pair is measured again, up to ``trials`` times in all, while the ratio is not below
    the bound: a busy machine can slow one measurement down, while quadratic work is far
    above the bound in every trial, so the bound still catches it.
    """
    assert n <= MAX_SIZE, f"N={n} is above {MAX_SIZE}"
    small_run, large_run = make(n), make(SPAN * n)
    times = 1
    while (small := best_of_5(repeated(small_run, times))) < min_small:
        times *= 2
    large = best_of_5(repeated(large_run, times))
    for _ in range(trials - 1):
        if large / max(small, 1e-9) < MAX_RATIO:
            break
        small = best_of_5(repeated(small_run, times))
        large = best_of_5(repeated(large_run, times))
    ratio = large / max(small, 1e-9)
    assert ratio < MAX_RATIO, (
        f"N={n}, {times} runs: {small * 1000:.1f} ms, {SPAN}N: {large * 1000:.1f} ms "
        f"(ratio {ratio:.0f}; linear is about {SPAN}, quadratic about {SPAN**2})"
    )


def chunks(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


# --- event streams ---------------------------------------------------------------------------


class RescanningParser(SSEParser):
    """The SSE parser with an old defect: each chunk is searched again from the unread start."""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._scan = self._start
        return super().feed(chunk)


class CopyingParser(SSEParser):
    """The SSE parser with another quadratic defect: each chunk copies the buffer."""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer = bytearray(self._buffer)
        return super().feed(chunk)


def one_big_event(parser: type[SSEParser]) -> Callable[[int], Run]:
    def make(n: int) -> Run:
        pieces = chunks(b"data: " + b"x" * n + b"\n\n")

        def run() -> None:
            reader = parser()
            events = [event for piece in pieces for event in reader.feed(piece)]
            assert len(events + reader.finish()) == 1

        return run

    return make


@pytest.mark.parametrize(
    ("parser", "n"), [(RescanningParser, 16 * 1024), (CopyingParser, MAX_SIZE)]
)
def test_the_check_fails_on_a_quadratic_reader(parser: type[SSEParser], n: int) -> None:
    # One trial of shorter runs: a quadratic reader fails every trial, and its 16N run lasts
    # hundreds of times the N run. A copy costs little, so that defect needs the largest N.
    with pytest.raises(AssertionError, match="quadratic about 256"):
        assert_linear(one_big_event(parser), n, trials=1, min_small=0.001)


def test_sse_parser_one_big_event_in_small_chunks() -> None:
    assert_linear(one_big_event(SSEParser), 128 * 1024)


def test_sse_parser_one_event_of_many_lines_in_small_chunks() -> None:
    def make(n: int) -> Run:
        pieces = chunks(b"data: x\n" * (n // 8) + b"\n")

        def run() -> None:
            parser = SSEParser()
            events = [event for piece in pieces for event in parser.feed(piece)]
            assert len(events + parser.finish()) == 1

        return run

    assert_linear(make, 128 * 1024)


def test_stream_decoder_one_big_event_in_small_chunks() -> None:
    def make(n: int) -> Run:
        event = json.dumps({"choices": [{"delta": {"content": "x" * n}}]}).encode()
        pieces = chunks(b"data: " + event + b"\n\ndata: [DONE]\n\n")

        def run() -> None:
            decoder = StreamDecoder()
            events = [event for piece in pieces for event in decoder.feed(piece)]
            assert len(events + decoder.finish()) == 2

        return run

    assert_linear(make, 128 * 1024)


def test_reply_reader_one_big_event_in_small_chunks() -> None:
    def make(n: int) -> Run:
        event = json.dumps({"choices": [{"delta": {"content": "x" * n}}]}).encode()
        pieces = chunks(b"data: " + event + b"\n\ndata: [DONE]\n\n")

        def run() -> None:
            reader = ReplyReader()
            events = [event for piece in pieces for event in reader.feed(piece)]
            assert len(events + reader.finish(ReplyHead(200))) == 2

        return run

    assert_linear(make, 128 * 1024)


def test_reply_reader_big_json_body_in_small_chunks() -> None:
    def make(n: int) -> Run:
        pieces = chunks(json.dumps({"status": "success", "data": "x" * n}).encode())

        def run() -> None:
            reader = ReplyReader()
            for piece in pieces:
                reader.feed(piece)
            assert len(reader.finish(ReplyHead(200))) == 2

        return run

    assert_linear(make, 128 * 1024)


# --- pages -----------------------------------------------------------------------------------


def script(text: str) -> str:
    return f"<script>{text}</script>"


def read(html: str) -> None:
    with contextlib.suppress(NonceNotFoundError):
        read_page(html, "https://example.com/")


PAGES: dict[str, tuple[Callable[[int], str], int]] = {
    # one tag name as long as the page
    "lt_then_letters": (lambda n: "<" + "a" * n, 128 * 1024),
    # the script variable over and over (the old lazy regex rescanned to the end each time;
    # now the first object is taken)
    "params_repeated": (lambda n: script("wpaicgParams={}" * (n // 15)), 128 * 1024),
    # the script variable over and over, never assigned an object (each one is looked at)
    "params_not_assigned": (lambda n: script("wpaicgParams=0;" * (n // 15)), 128 * 1024),
    # ... and in a script element of its own each time
    "params_scripts": (lambda n: "<script>wpaicgParams=0;</script>" * (n // 32), 64 * 1024),
    # markup a browser does not render, opened over and over and never closed
    "comment_openers": (lambda n: "<!--" * (n // 4), 128 * 1024),
    # ... and closed, over and over (each end tag is searched for once)
    "scripts": (lambda n: "<script>a</script>" * (n // 18), 16 * 1024),
    "textareas": (lambda n: "<textarea>a</textarea>" * (n // 22), 16 * 1024),
    "declarations": (lambda n: "<!x>" * (n // 4), 32 * 1024),
    # one opener that never closes, before a page of tags (all of it is text)
    "unclosed_script": (lambda n: "<script>" + "<a b=c>" * (n // 7), 128 * 1024),
    # templates nested deep, or closed more often than opened
    "template_nesting": (lambda n: "<template>" * (n // 10), 32 * 1024),
    "template_closers": (lambda n: "</template>" * (n // 11), 32 * 1024),
    # chat boxes hidden in comments and templates, over and over
    "hidden_boxes": (
        lambda n: (
            '<!-- <div class="mwai-chatbot-container" data-system="{}"> -->'
            '<template><div class="aipkit_chat_container" data-config="{}"></template>' * (n // 120)
        ),
        64 * 1024,
    ),
    # many tags with a space and no attribute
    "lt_a_space": (lambda n: "<a " * (n // 3), 8 * 1024),
    # quoted values that close in the next tag
    "open_quotes": (lambda n: '<a b="' * (n // 6), 16 * 1024),
    # one tag with very many attributes
    "many_attributes": (lambda n: "<a " + "b=c " * (n // 4), 16 * 1024),
    # chat boxes that lack their post id, over and over
    "incomplete_boxes": (
        lambda n: '<div class="wpaicg-chat-shortcode" data-nonce="n">' * (n // 51),
        32 * 1024,
    ),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_read_page_is_linear(name: str) -> None:
    build, n = PAGES[name]

    def make(size: int) -> Run:
        html = build(size)
        return lambda: read(html)

    assert_linear(make, n)


def test_start_tags_lt_then_letters() -> None:
    def make(n: int) -> Run:
        html = "<" + "a" * n
        return lambda: sum(1 for _ in start_tags(html))

    assert_linear(make, 128 * 1024)


@pytest.mark.parametrize("unit", ["wpaicgParams={bad}", 'wpaicgParams={"a":"'])
def test_script_object_with_many_unreadable_assignments(unit: str) -> None:
    def make(n: int) -> Run:
        html = script(unit * (n // len(unit)))
        return lambda: script_object(html, "wpaicgParams")

    assert_linear(make, 32 * 1024)
