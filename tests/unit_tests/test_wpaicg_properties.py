"""Property tests: page reading and the reply readers raise nothing but the package's errors."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_chatgptes import ChatGptEsError
from langchain_chatgptes.protocols import choose_bot, read_page
from langchain_chatgptes.protocols._base import Bot, ReplyHead, TextDelta
from langchain_chatgptes.protocols._common import page_text
from langchain_chatgptes.protocols._sse import SSEParser
from langchain_chatgptes.protocols.wpaicg import ReplyReader, StreamDecoder

# The reader decides by the body now; the type is still varied to show it does not matter.
CONTENT_TYPES = st.sampled_from(
    ["application/json; charset=UTF-8", "text/event-stream", "text/html", "", "text/plain"]
)


def parse_page(html: str, page_url: str, status: int = 200) -> Bot:
    text = page_text(ReplyHead(status, {}, page_url), html.encode("utf-8", "surrogatepass"))
    return choose_bot(read_page(text, page_url))


def pieces(body: bytes, cuts: list[int]) -> list[bytes]:
    out, position = [], 0
    for cut in cuts:
        out.append(body[position : position + cut])
        position += cut
    return [*out, body[position:]]


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from([200, 301, 403, 404, 429, 500, 503]))
def test_parse_page_never_raises_anything_else(html: str, status: int) -> None:
    with contextlib.suppress(ChatGptEsError):
        assert isinstance(parse_page(html, "https://chatgpt.es", status), Bot)


ATTRIBUTE_VALUES = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    st.permutations(["data-nonce", "data-post-id", "data-url", "data-bot-id", "class"]),
    st.lists(st.sampled_from(['"', "'", ""]), min_size=5, max_size=5),
    st.text(alphabet="abcdef0123456789", min_size=10, max_size=10),
    st.integers(min_value=1, max_value=10**6),
    st.text(alphabet=" \n\t", min_size=1, max_size=3),
)
def test_parse_page_finds_the_facts_in_any_layout(
    order: list[str], quotes: list[str], nonce: str, post_id: int, gap: str
) -> None:
    values = {
        "data-nonce": nonce,
        "data-post-id": str(post_id),
        "data-url": "https://chatgpt.es",
        "data-bot-id": "0",
        "class": "wpaicg-chat-shortcode",
    }
    attributes = gap.join(
        f"{name}={q}{values[name]}{q}" for name, q in zip(order, quotes, strict=True)
    )
    bot = parse_page(f"<html><body><div{gap}{attributes}></div></body></html>", page_url="x")
    assert (bot.nonce, bot.facts["post_id"], bot.facts["url"]) == (
        nonce,
        str(post_id),
        "https://chatgpt.es",
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=1, max_value=64), max_size=20))
def test_sse_decoder_never_raises_anything_else(body: bytes, cuts: list[int]) -> None:
    decoder = StreamDecoder()
    with contextlib.suppress(ChatGptEsError):
        for piece in pieces(body, cuts):
            decoder.feed(piece)
        decoder.finish()


SSE_LINES = st.lists(
    st.one_of(
        st.just("data: [DONE]"),
        st.just("data: [LIMITED]"),
        st.just("event: message"),
        st.just(""),
        st.just(": ping"),
        st.text(max_size=30).map(
            lambda t: "data: " + json.dumps({"choices": [{"delta": {"content": t}}]})
        ),
        st.text(max_size=30).map(lambda t: "data: " + t),
        st.just('data: {"msg": "x", "tokenLimitReached": true}'),
        st.just('{"status":"success","data":"legacy"}'),
    ),
    max_size=15,
)


@settings(max_examples=300, deadline=None)
@given(SSE_LINES, st.sampled_from(["\n", "\r\n", "\r"]))
def test_sse_decoder_on_plausible_streams(lines: list[str], newline: str) -> None:
    decoder = StreamDecoder()
    with contextlib.suppress(ChatGptEsError):
        decoder.feed(newline.join(lines).encode("utf-8", "surrogatepass"))
        decoder.finish()


def run(reader: StreamDecoder | SSEParser, chunks: list[bytes]) -> tuple[list[object], str]:
    """The events, or the type of the error raised instead ("" when none)."""
    events: list[object] = []
    try:
        for chunk in chunks:
            events += reader.feed(chunk)
        events += reader.finish()
    except ChatGptEsError as exc:
        # Events of the feed that raised are lost, so only the error is compared.
        return [], type(exc).__name__
    return events, ""


@settings(max_examples=300, deadline=None)
@given(
    SSE_LINES,
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.lists(st.integers(min_value=1, max_value=16), max_size=30),
)
def test_sse_decoder_does_not_depend_on_chunking(
    lines: list[str], newline: str, cuts: list[int]
) -> None:
    body = (newline.join(lines) + newline).encode("utf-8", "surrogatepass")
    assert run(StreamDecoder(), pieces(body, cuts)) == run(StreamDecoder(), [body])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=16), max_size=30))
def test_sse_parser_does_not_depend_on_chunking(body: bytes, cuts: list[int]) -> None:
    assert run(SSEParser(), pieces(body, cuts)) == run(SSEParser(), [body])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500), st.sampled_from([200, 400, 403, 429, 500, 502]), CONTENT_TYPES)
def test_decode_reply_never_raises_anything_else(
    body: bytes, status: int, content_type: str
) -> None:
    reader = ReplyReader()
    with contextlib.suppress(ChatGptEsError):
        events = reader.feed(body) + reader.finish(
            ReplyHead(status, {"content-type": content_type}, "https://chatgpt.es")
        )
        assert "".join(event.text for event in events if isinstance(event, TextDelta)).strip()
