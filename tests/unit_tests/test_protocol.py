"""The sans-I/O protocol functions, on literal HTML and bytes."""

from __future__ import annotations

import json

import pytest

from langchain_chatgptes import (
    BlockedError,
    ConsentRequiredError,
    HTTPStatusError,
    NonceNotFoundError,
    NonceRejectedError,
    RateLimitError,
    ResponseFormatError,
    SiteError,
)
from langchain_chatgptes._protocol import (
    CHECKBOX_MESSAGE,
    ReplyReader,
    SiteInfo,
    SSEDecoder,
    StreamEnd,
    TextDelta,
    build_form,
    decode_reply,
    parse_page,
)

URL = "https://chatgpt.es"

# The shortcode template's layout (protocol reference §3.2), abridged.
PLUGIN_PAGE = """<!DOCTYPE html><html><head><title>ChatGPT en Español</title></head>
<body class="home page-template-default page page-id-2173">
<div class="wpaicg-chat-shortcode"
     data-user-bg-color="#444654"
     data-ai-bg-color="#343541"
     data-nonce="5f1e2d3c4b"
     data-post-id="2173"
     data-url="https://chatgpt.es"
     data-bot-id="0"
     data-width="100%"
     data-height="445"
     data-openai_stream_nav="0"
     data-type="shortcode"
>
<input type="hidden" id="wpaicg-img-nonce" value="aaaaaaaaaa">
</div>
<script id="wpaicg-init-js-extra">
var wpaicgParams = {"ajax_url":"https:\\/\\/chatgpt.es\\/wp-admin\\/admin-ajax.php",
"search_nonce":"5f1e2d3c4b","logged_in":"0"};
</script></body></html>"""

CLOUDFLARE_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="360"></head><body><div id="cf-please-wait">
<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script>
</div></body></html>"""

SITE = SiteInfo(nonce="5f1e2d3c4b", post_id="2173", url=URL, bot_id="0", streams=False)


def sse(*payloads: str) -> bytes:
    return b"".join(f"data: {p}\n\n".encode() for p in payloads)


def delta(text: str, finish: str | None = None) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
        },
        ensure_ascii=False,
    )


# --- the page ---------------------------------------------------------------------------


def test_parse_page_reads_the_plugin_layout() -> None:
    assert parse_page(PLUGIN_PAGE, page_url=URL) == SITE


@pytest.mark.parametrize(
    "tag",
    [
        # another attribute order, single quotes
        "<div data-type='shortcode' data-openai_stream_nav='1' data-bot-id='0' "
        "data-url='https://chatgpt.es' data-post-id='2173' data-nonce='5f1e2d3c4b' "
        "class='wpaicg-chat-shortcode'>",
        # minified: unquoted values, one line
        "<div class=wpaicg-chat-shortcode data-nonce=5f1e2d3c4b data-post-id=2173 "
        "data-url=https://chatgpt.es data-bot-id=0 data-openai_stream_nav=1>",
        # attributes across lines with tabs, self-closing
        '<div\n\tdata-post-id="2173"\n\tdata-nonce="5f1e2d3c4b"\n\tdata-openai_stream_nav="1"/>',
    ],
)
def test_parse_page_whatever_the_attribute_order_quoting_or_minification(tag: str) -> None:
    site = parse_page(f"<html><body>{tag}</div></body></html>", page_url=URL)
    assert (site.nonce, site.post_id, site.streams) == ("5f1e2d3c4b", "2173", True)
    assert site.url == URL and site.bot_id == "0"


def test_parse_page_reads_the_tag_like_a_browser() -> None:
    page = (
        "<p>About data-nonce and nonces</p>"
        '<div title="a > b" data-nonce=\'5f1e2d3c4b\' data-post-id="2173" '
        'data-url="https://chatgpt.es/?a=1&amp;b=2" DATA-BOT-ID="0"></div>'
    )
    site = parse_page(page, page_url=URL)
    assert (site.nonce, site.post_id, site.url) == (
        "5f1e2d3c4b",
        "2173",
        "https://chatgpt.es/?a=1&b=2",
    )


def test_parse_page_ignores_other_nonces_before_the_chat_box() -> None:
    noisy = PLUGIN_PAGE.replace(
        "<title>", '<script>var other = {"nonce":"0000000000"};</script><title>'
    )
    assert parse_page(noisy, page_url=URL).nonce == "5f1e2d3c4b"


def test_parse_page_falls_back_to_search_nonce() -> None:
    page = PLUGIN_PAGE.replace('data-nonce="5f1e2d3c4b"', 'data-nonce=""').replace(
        '"search_nonce":"5f1e2d3c4b"', '"search_nonce":"abcdef0123"'
    )
    assert parse_page(page, page_url=URL).nonce == "abcdef0123"


def test_parse_page_without_a_nonce_says_what_is_missing() -> None:
    page = PLUGIN_PAGE.replace('data-nonce="5f1e2d3c4b"', "").replace(
        '"search_nonce":"5f1e2d3c4b",', ""
    )
    with pytest.raises(NonceNotFoundError, match=r"missing the nonce \(data-nonce"):
        parse_page(page, page_url=URL)


def test_parse_page_without_a_post_id_says_what_is_missing() -> None:
    page = PLUGIN_PAGE.replace('data-post-id="2173"', "")
    with pytest.raises(NonceNotFoundError, match=r"missing the post id \(data-post-id\)"):
        parse_page(page, page_url=URL)


def test_parse_page_of_a_page_without_chat_box() -> None:
    with pytest.raises(NonceNotFoundError, match=r"nonce .* and the post id"):
        parse_page("<html><body><h1>Maintenance</h1></body></html>", page_url=URL)


@pytest.mark.parametrize("status", [403, 503])
def test_parse_page_cloudflare_challenge_is_blocked(status: int) -> None:
    with pytest.raises(BlockedError, match=r"proxy=.*impersonate=") as info:
        parse_page(CLOUDFLARE_PAGE, page_url=URL, status=status)
    assert info.value.status_code == status


def test_parse_page_other_http_error() -> None:
    with pytest.raises(HTTPStatusError, match="HTTP 404") as info:
        parse_page("<h1>Not found</h1>", page_url=URL, status=404)
    assert not isinstance(info.value, BlockedError)


# --- the request ------------------------------------------------------------------------


def test_build_form_fields() -> None:
    form = build_form(SITE, "Hi", "0123456789")
    assert form == {
        "_wpnonce": "5f1e2d3c4b",
        "post_id": "2173",
        "url": URL,
        "action": "wpaicg_chat_shortcode_message",
        "message": "Hi",
        "bot_id": "0",
        "chatbot_identity": "shortcode",
        "wpaicg_chat_client_id": "0123456789",
        "wpaicg_chat_history": "[]",
    }
    # The plugin strips every backslash before json_decode: the history must survive that.
    history = form["wpaicg_chat_history"]
    assert json.loads(history.replace("\\", "")) == json.loads(history)


# --- JSON replies ------------------------------------------------------------------------

JSON = {"content-type": "application/json; charset=UTF-8"}
HTML = {"content-type": "text/html; charset=UTF-8"}
STREAM = {"content-type": "text/event-stream"}


def test_json_success_php_encoded() -> None:
    body = (
        b'{"status":"success","msg":"Something went wrong","greeting_message":"Hi",'
        b'"data":"\\u00a1Hola! Ver https:\\/\\/x.es","log":false}'
    )
    assert decode_reply(200, JSON, body) == "¡Hola! Ver https://x.es"


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        (
            b'{"status":"error","msg":"Your message contains prohibited words."}',
            SiteError,
            "prohibited words",
        ),
        (
            b'{"msg":"You have reached your token limit.","tokenLimitReached":true}',
            RateLimitError,
            "token limit",
        ),
        (b'{"status":"error","msg":"Nonce verification failed"}', NonceRejectedError, "nonce"),
        (
            json.dumps({"status": "success", "data": CHECKBOX_MESSAGE}).encode(),
            ConsentRequiredError,
            "Kästchen",
        ),
        (b'{"status":"success","data":""}', ResponseFormatError, "empty answer"),
        (b'{"status":"success","data":"  \\n"}', ResponseFormatError, "empty answer"),
        (b'{"status":"success"}', ResponseFormatError, "Unexpected reply format"),
        (b'{"status":"success","data":42}', ResponseFormatError, "Unexpected reply format"),
        (b"[1, 2]", ResponseFormatError, "JSON object"),
        (b"<html><body>Oops</body></html>", ResponseFormatError, "HTML page"),
        (b'{"status":"succ', ResponseFormatError, "something else"),
        (b"\xff\xfe\x00garbage", ResponseFormatError, "Expected the plugin's JSON"),
        (b"[" * 100_000 + b"]" * 100_000, ResponseFormatError, "Expected the plugin's JSON"),
        (b'{"msg":"You are not allowed.","ipBanned":true}', SiteError, "not allowed"),
    ],
)
def test_json_error_bodies(body: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        decode_reply(200, JSON, body)


def test_site_error_keeps_the_message() -> None:
    with pytest.raises(SiteError) as info:
        decode_reply(200, JSON, b'{"status":"error","msg":"It appears that nothing was inputted."}')
    assert info.value.site_message == "It appears that nothing was inputted."


@pytest.mark.parametrize(
    "body",
    [
        b"The link you followed has expired.",
        b"The link you followed has expired.</p>"
        b'<p><a href="https://chatgpt.es/">Please try again.</a>',
        b"-1",
    ],
)
def test_http_403_expired_nonce(body: bytes) -> None:
    with pytest.raises(NonceRejectedError) as info:
        decode_reply(403, HTML, body)
    assert info.value.status_code == 403


def test_http_403_cloudflare_is_blocked_not_nonce() -> None:
    with pytest.raises(BlockedError):
        decode_reply(403, HTML, CLOUDFLARE_PAGE.encode())


def test_http_429_is_rate_limit_with_retry_after() -> None:
    with pytest.raises(RateLimitError) as info:
        decode_reply(429, {"retry-after": "7"}, b"slow down")
    assert (info.value.status_code, info.value.retry_after) == (429, 7.0)


def test_http_400_zero_means_no_handler() -> None:
    with pytest.raises(HTTPStatusError, match="no handler"):
        decode_reply(400, HTML, b"0")


def test_http_500() -> None:
    with pytest.raises(HTTPStatusError, match="HTTP 500") as info:
        decode_reply(500, HTML, b"<h1>Internal Server Error</h1>")
    assert info.value.status_code == 500


# --- event streams -------------------------------------------------------------------------


def events_of(body: bytes, *, step: int | None = None) -> list[object]:
    decoder = SSEDecoder()
    events: list[object] = []
    pieces = [body] if step is None else [body[i : i + step] for i in range(0, len(body), step)]
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.finish()


def test_sse_openai_chunks() -> None:
    body = sse(delta("Hola"), delta(", mundo"), delta("", "stop"), "[DONE]")
    assert events_of(body) == [TextDelta("Hola"), TextDelta(", mundo"), StreamEnd("stop")]


def test_sse_fed_byte_by_byte_with_multibyte_text_and_crlf() -> None:
    body = sse(delta("日本語 🎉"), delta("ü"), "[DONE]").replace(b"\n", b"\r\n")
    assert events_of(body, step=1) == [TextDelta("日本語 🎉"), TextDelta("ü"), StreamEnd("stop")]


def test_sse_events_arrive_before_the_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(sse(delta("one"))) == [TextDelta("one")]
    assert decoder.feed(b"data: " + delta(" two").encode()) == []  # line not complete yet
    assert decoder.feed(b"\n\n") == [TextDelta(" two")]


def test_sse_length_finish_reason() -> None:
    body = sse(delta("cut"), delta("", "length"), "[DONE]")
    assert events_of(body)[-1] == StreamEnd("length")


def test_sse_legacy_json_after_done_is_ignored() -> None:
    trailing = b'{"status":"success","msg":"Something went wrong","data":"Hola","log":false}'
    body = sse(delta("Hola"), "[DONE]") + trailing
    assert events_of(body) == [TextDelta("Hola"), StreamEnd("stop")]


def test_sse_comments_ids_and_keepalives_are_ignored() -> None:
    body = b": keep-alive\n\nid: 1\nretry: 10\n" + sse(delta("ok"), "[DONE]")
    assert events_of(body) == [TextDelta("ok"), StreamEnd("stop")]


def test_sse_finish_reason_without_done_ends_the_answer() -> None:
    body = sse(delta("ok"), delta("", "stop"))
    assert events_of(body) == [TextDelta("ok"), StreamEnd("stop")]


def words(*items: str) -> bytes:
    return b"".join(
        b"event: message\n" + sse(json.dumps({"choices": [{"delta": {"content": w}}]}))
        for w in items
    )


def test_sse_error_as_words_is_a_site_error_and_never_text() -> None:
    decoder = SSEDecoder()
    for word in ("Incorrect", " API", " key"):
        assert decoder.feed(words(word)) == []  # held back, never shown as answer text
    with pytest.raises(SiteError, match="Incorrect API key"):
        decoder.feed(sse(json.dumps({"choices": [{"finish_reason": "stop"}]})))


def test_sse_limited_is_a_site_error() -> None:
    with pytest.raises(SiteError, match="Quota exceeded"):
        events_of(words("Quota", " exceeded") + sse("[LIMITED]"))


@pytest.mark.parametrize(
    ("flag", "error"),
    [("tokenLimitReached", RateLimitError), ("ipBanned", SiteError), ("messageFlagged", SiteError)],
)
def test_sse_flag_objects(flag: str, error: type[Exception]) -> None:
    with pytest.raises(error, match="Nope"):
        events_of(sse(json.dumps({"msg": "Nope", flag: True})))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (sse("[DONE]"), "empty answer"),
        (b"", "ended before"),
        (sse(delta("half")), "ended before"),
        (sse("{not json"), "Unreadable event"),
        (sse("[" * 100_000 + "]" * 100_000), "Unreadable event"),
        (sse(delta("\n "), delta("  "), "[DONE]"), "empty answer"),
        (b"data: \xff\xfe\n\n", "not valid UTF-8"),
        (b"<html>oops</html>\n", "Unexpected line"),
    ],
)
def test_sse_broken_streams(body: bytes, match: str) -> None:
    with pytest.raises(ResponseFormatError, match=match):
        events_of(body)


def test_decode_reply_of_a_whole_event_stream() -> None:
    assert decode_reply(200, STREAM, sse(delta("a"), delta("b"), "[DONE]")) == "ab"


def test_reply_reader_json_arrives_at_finish() -> None:
    reader = ReplyReader(200, JSON)
    assert reader.feed(b'{"status":"success",') == []
    assert reader.feed(b'"data":"Hi"}') == []
    assert reader.finish() == [TextDelta("Hi"), StreamEnd("stop")]


def test_reply_reader_error_status_with_event_stream_type_is_judged_by_status() -> None:
    reader = ReplyReader(403, STREAM)
    reader.feed(b"The link you followed has expired.")
    with pytest.raises(NonceRejectedError):
        reader.finish()
