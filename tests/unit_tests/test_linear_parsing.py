"""Untrusted input is read in linear time (defect regressions: the old readers were quadratic).

Each test times a reader on an input of size N and of size 4N (best of 5 runs each, in
this process's CPU time, so other processes on the machine hardly count) and asserts the
ratio stays below 8: linear work gives about 4, quadratic work about 16. N doubles until
the larger run takes at least ~50 ms, so the timings are not noise, and a pair over the bound
is measured again (up to 3 trials) before it fails. This is a complexity
check, not a speed target: speed is measured by ``make bench``.
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
from langchain_chatgptes.protocols._sse import SSEParser
from langchain_chatgptes.protocols.wpaicg import ReplyReader, StreamDecoder

CHUNK = 8 * 1024
MAX_RATIO = 8.0
MIN_LARGE_SECONDS = 0.05
TRIALS = 3

Run = Callable[[], object]


def best_of_5(run: Run) -> float:
    times = []
    for _ in range(5):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            run()
            times.append(time.process_time() - start)
        finally:
            gc.enable()
    return min(times)


def assert_linear(make: Callable[[int], Run], n: int, *, max_n: int) -> None:
    """``make(n)`` builds the input of size ``n`` (untimed) and returns the timed run.

    The pair is measured again, up to :data:`TRIALS` times in all, while the ratio is not
    below the bound: a busy machine can slow one measurement down (a 4N run of a linear
    reader once took 8.1 times its N run, in CI beside other work), while quadratic work is
    about 16 times in every trial, so the bound still catches it.
    """
    while True:
        small, large = best_of_5(make(n)), best_of_5(make(4 * n))
        if large >= MIN_LARGE_SECONDS or 2 * n > max_n:
            break
        n *= 2
    ratio = large / max(small, 1e-9)
    for _ in range(TRIALS - 1):
        if ratio < MAX_RATIO:
            break
        small, large = best_of_5(make(n)), best_of_5(make(4 * n))
        ratio = large / max(small, 1e-9)
    assert ratio < MAX_RATIO, (
        f"N={n}: {small * 1000:.1f} ms, 4N: {large * 1000:.1f} ms (ratio {ratio:.1f}; "
        f"linear is about 4, quadratic about 16)"
    )


def chunks(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


MiB = 1024 * 1024


# --- event streams ---------------------------------------------------------------------------


def test_sse_parser_one_big_event_in_8k_chunks() -> None:
    def make(n: int) -> Run:
        pieces = chunks(b"data: " + b"x" * n + b"\n\n")

        def run() -> None:
            parser = SSEParser()
            events = [event for piece in pieces for event in parser.feed(piece)]
            assert len(events + parser.finish()) == 1

        return run

    assert_linear(make, 2 * MiB, max_n=8 * MiB)


def test_sse_parser_one_event_of_many_lines_in_8k_chunks() -> None:
    def make(n: int) -> Run:
        pieces = chunks(b"data: x\n" * (n // 8) + b"\n")

        def run() -> None:
            parser = SSEParser()
            events = [event for piece in pieces for event in parser.feed(piece)]
            assert len(events + parser.finish()) == 1

        return run

    assert_linear(make, 128 * 1024, max_n=4 * MiB)


def test_stream_decoder_one_big_event_in_8k_chunks() -> None:
    def make(n: int) -> Run:
        event = json.dumps({"choices": [{"delta": {"content": "x" * n}}]}).encode()
        pieces = chunks(b"data: " + event + b"\n\ndata: [DONE]\n\n")

        def run() -> None:
            decoder = StreamDecoder()
            events = [event for piece in pieces for event in decoder.feed(piece)]
            assert len(events + decoder.finish()) == 2

        return run

    assert_linear(make, 2 * MiB, max_n=8 * MiB)


def test_reply_reader_one_big_event_in_8k_chunks() -> None:
    def make(n: int) -> Run:
        event = json.dumps({"choices": [{"delta": {"content": "x" * n}}]}).encode()
        pieces = chunks(b"data: " + event + b"\n\ndata: [DONE]\n\n")

        def run() -> None:
            reader = ReplyReader()
            events = [event for piece in pieces for event in reader.feed(piece)]
            assert len(events + reader.finish(ReplyHead(200))) == 2

        return run

    assert_linear(make, 2 * MiB, max_n=8 * MiB)


def test_reply_reader_big_json_body_in_8k_chunks() -> None:
    def make(n: int) -> Run:
        pieces = chunks(json.dumps({"status": "success", "data": "x" * n}).encode())

        def run() -> None:
            reader = ReplyReader()
            for piece in pieces:
                reader.feed(piece)
            assert len(reader.finish(ReplyHead(200))) == 2

        return run

    # 4N stays under the 32 MiB cap on a body read whole.
    assert_linear(make, 2 * MiB, max_n=4 * MiB)


# --- pages -----------------------------------------------------------------------------------


def script(text: str) -> str:
    return f"<script>{text}</script>"


def read(html: str) -> None:
    with contextlib.suppress(NonceNotFoundError):
        read_page(html, "https://example.com/")


PAGES: dict[str, tuple[Callable[[int], str], int]] = {
    # one tag name as long as the page
    "lt_then_letters": (lambda n: "<" + "a" * n, 2 * MiB),
    # the script variable over and over (the old lazy regex rescanned to the end each time;
    # now the first object is taken, so this stays far below 50 ms even at 4 x 8 MiB)
    "params_repeated": (lambda n: script("wpaicgParams={}" * (n // 15)), 8 * MiB),
    # the script variable over and over, never assigned an object (each one is looked at)
    "params_not_assigned": (lambda n: script("wpaicgParams=0;" * (n // 15)), 2 * MiB),
    # ... and in a script element of its own each time
    "params_scripts": (lambda n: "<script>wpaicgParams=0;</script>" * (n // 32), 64 * 1024),
    # markup a browser does not render, opened over and over and never closed
    "comment_openers": (lambda n: "<!--" * (n // 4), 2 * MiB),
    # ... and closed, over and over (each end tag is searched for once)
    "scripts": (lambda n: "<script>a</script>" * (n // 18), 64 * 1024),
    "textareas": (lambda n: "<textarea>a</textarea>" * (n // 22), 64 * 1024),
    "declarations": (lambda n: "<!x>" * (n // 4), 64 * 1024),
    # one opener that never closes, before a page of tags (all of it is text)
    "unclosed_script": (lambda n: "<script>" + "<a b=c>" * (n // 7), 512 * 1024),
    # templates nested deep, or closed more often than opened
    "template_nesting": (lambda n: "<template>" * (n // 10), 64 * 1024),
    "template_closers": (lambda n: "</template>" * (n // 11), 64 * 1024),
    # chat boxes hidden in comments and templates, over and over
    "hidden_boxes": (
        lambda n: (
            '<!-- <div class="mwai-chatbot-container" data-system="{}"> -->'
            '<template><div class="aipkit_chat_container" data-config="{}"></template>' * (n // 120)
        ),
        128 * 1024,
    ),
    # many tags with a space and no attribute
    "lt_a_space": (lambda n: "<a " * (n // 3), 32 * 1024),
    # quoted values that close in the next tag
    "open_quotes": (lambda n: '<a b="' * (n // 6), 32 * 1024),
    # one tag with very many attributes
    "many_attributes": (lambda n: "<a " + "b=c " * (n // 4), 64 * 1024),
    # chat boxes that lack their post id, over and over
    "incomplete_boxes": (
        lambda n: '<div class="wpaicg-chat-shortcode" data-nonce="n">' * (n // 51),
        128 * 1024,
    ),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_read_page_is_linear(name: str) -> None:
    build, n = PAGES[name]

    def make(size: int) -> Run:
        html = build(size)
        return lambda: read(html)

    assert_linear(make, n, max_n=8 * MiB)


def test_start_tags_lt_then_letters() -> None:
    def make(n: int) -> Run:
        html = "<" + "a" * n
        return lambda: sum(1 for _ in start_tags(html))

    assert_linear(make, 4 * MiB, max_n=8 * MiB)


@pytest.mark.parametrize("unit", ["wpaicgParams={bad}", 'wpaicgParams={"a":"'])
def test_script_object_with_many_unreadable_assignments(unit: str) -> None:
    def make(n: int) -> Run:
        html = script(unit * (n // len(unit)))
        return lambda: script_object(html, "wpaicgParams")

    assert_linear(make, 32 * 1024, max_n=32 * 1024)
