"""Property tests: the page parser and the reply decoders raise nothing but the package's errors."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_chatgptes import ChatGptEsError
from langchain_chatgptes._protocol import SiteInfo, SSEDecoder, decode_reply, parse_page

CONTENT_TYPES = st.sampled_from(
    ["application/json; charset=UTF-8", "text/event-stream", "text/html", "", "text/plain"]
)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from([200, 301, 403, 404, 429, 500, 503]))
def test_parse_page_never_raises_anything_else(html: str, status: int) -> None:
    with contextlib.suppress(ChatGptEsError):
        assert isinstance(parse_page(html, page_url="https://chatgpt.es", status=status), SiteInfo)


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
    site = parse_page(f"<html><body><div{gap}{attributes}></div></body></html>", page_url="x")
    assert (site.nonce, site.post_id, site.url) == (nonce, str(post_id), "https://chatgpt.es")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=1, max_value=64), max_size=20))
def test_sse_decoder_never_raises_anything_else(body: bytes, cuts: list[int]) -> None:
    decoder = SSEDecoder()
    try:
        position = 0
        for cut in cuts:
            decoder.feed(body[position : position + cut])
            position += cut
        decoder.feed(body[position:])
        decoder.finish()
    except ChatGptEsError:
        pass


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
    decoder = SSEDecoder()
    try:
        decoder.feed(newline.join(lines).encode("utf-8", "surrogatepass"))
        decoder.finish()
    except ChatGptEsError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500), st.sampled_from([200, 400, 403, 429, 500, 502]), CONTENT_TYPES)
def test_decode_reply_never_raises_anything_else(
    body: bytes, status: int, content_type: str
) -> None:
    with contextlib.suppress(ChatGptEsError):
        assert decode_reply(status, {"content-type": content_type}, body).strip()
