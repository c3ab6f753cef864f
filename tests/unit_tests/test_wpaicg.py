"""The legacy (wpaicg) protocol and page detection, on literal HTML and bytes (no sockets)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

import pytest

from langchain_chatgptes import (
    BlockedError,
    ConsentRequiredError,
    HTTPStatusError,
    NonceNotFoundError,
    NonceRejectedError,
    RateLimitError,
    ResponseFormatError,
    ResponseTooLargeError,
    SiteError,
)
from langchain_chatgptes._conversation import ChatInput, Turn, Visitor, flatten
from langchain_chatgptes._limits import MAX_BODY_BYTES, MAX_EVENT_BYTES, MAX_PAGE_BYTES
from langchain_chatgptes.chat_models import advise
from langchain_chatgptes.protocols import Page, choose_bot, read_page
from langchain_chatgptes.protocols._base import (
    Bot,
    BotState,
    End,
    Event,
    HttpRequest,
    ReplyHead,
    TextDelta,
)
from langchain_chatgptes.protocols._common import page_text
from langchain_chatgptes.protocols.wpaicg import (
    ACTION,
    AJAX_PATH,
    CHECKBOX_MESSAGE,
    ReplyReader,
    StreamDecoder,
    WpaicgProtocol,
    build_form,
    find_bots,
    post_headers,
)

URL = "https://chatgpt.es"
ENDPOINT = "https://chatgpt.es/wp-admin/admin-ajax.php"

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

BOT = Bot(
    protocol="wpaicg",
    bot_id="0",
    page_url=URL,
    endpoint=ENDPOINT,
    nonce="5f1e2d3c4b",
    inline=True,
    facts={"post_id": "2173", "url": URL, "streams": False, "headers": post_headers(URL)},
)


def parse(html: str, page_url: str = URL, status: int = 200) -> Bot:
    """What the old ``parse_page`` did: the page's status checks, then its chat bot."""
    text = page_text(ReplyHead(status, {}, page_url), html.encode())
    return choose_bot(read_page(text, page_url))


def decode_reply(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """What the old ``decode_reply`` did: read a whole reply, return its answer text."""
    reader = ReplyReader()
    events = reader.feed(body) + reader.finish(ReplyHead(status, headers, URL))
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def feed_all(feed: Callable[[bytes], object], chunks: list[bytes]) -> None:
    for chunk in chunks:
        feed(chunk)


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
    assert parse(PLUGIN_PAGE) == BOT


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
        # attributes across lines with tabs, self-closing (no class: found by its data-*)
        '<div\n\tdata-post-id="2173"\n\tdata-nonce="5f1e2d3c4b"\n\tdata-openai_stream_nav="1"/>',
    ],
)
def test_parse_page_whatever_the_attribute_order_quoting_or_minification(tag: str) -> None:
    bot = parse(f"<html><body>{tag}</div></body></html>")
    assert (bot.nonce, bot.facts["post_id"], bot.facts["streams"]) == ("5f1e2d3c4b", "2173", True)
    assert bot.facts["url"] == URL and bot.bot_id == "0"
    assert bot.endpoint == ENDPOINT  # no wpaicgParams: the site root's admin-ajax.php


def test_parse_page_reads_the_tag_like_a_browser() -> None:
    page = (
        "<p>About data-nonce and nonces</p>"
        '<div title="a > b" data-nonce=\'5f1e2d3c4b\' data-post-id="2173" '
        'data-url="https://chatgpt.es/?a=1&amp;b=2" DATA-BOT-ID="0"></div>'
    )
    bot = parse(page)
    assert (bot.nonce, bot.facts["post_id"], bot.facts["url"]) == (
        "5f1e2d3c4b",
        "2173",
        "https://chatgpt.es/?a=1&b=2",
    )


def test_parse_page_ignores_other_nonces_before_the_chat_box() -> None:
    noisy = PLUGIN_PAGE.replace(
        "<title>", '<script>var other = {"nonce":"0000000000"};</script><title>'
    )
    assert parse(noisy).nonce == "5f1e2d3c4b"


def test_parse_page_falls_back_to_search_nonce() -> None:
    page = PLUGIN_PAGE.replace('data-nonce="5f1e2d3c4b"', 'data-nonce=""').replace(
        '"search_nonce":"5f1e2d3c4b"', '"search_nonce":"abcdef0123"'
    )
    assert parse(page).nonce == "abcdef0123"


def test_parse_page_without_a_nonce_says_what_is_missing() -> None:
    page = PLUGIN_PAGE.replace('data-nonce="5f1e2d3c4b"', "").replace(
        '"search_nonce":"5f1e2d3c4b",', ""
    )
    with pytest.raises(NonceNotFoundError, match=r"missing the nonce \(data-nonce") as info:
        parse(page)
    assert info.value.missing == ("nonce",)
    assert info.value.page_url == URL


def test_parse_page_without_a_post_id_says_what_is_missing() -> None:
    page = PLUGIN_PAGE.replace('data-post-id="2173"', "")
    with pytest.raises(NonceNotFoundError, match=r"missing the post id \(data-post-id\)") as info:
        parse(page)
    assert info.value.missing == ("post id",)


def test_parse_page_of_a_box_without_nonce_and_post_id_names_both() -> None:
    page = '<div class="wpaicg-chat-shortcode" data-url="https://chatgpt.es"></div>'
    message = (
        r"missing the nonce \(data-nonce or wpaicgParams\.search_nonce\) "
        r"and the post id \(data-post-id\)"
    )
    with pytest.raises(NonceNotFoundError, match=message) as info:
        parse(page)
    assert info.value.missing == ("nonce", "post id")


def test_parse_page_of_a_page_without_chat_box() -> None:
    # Behaviour change: a page with no chat box at all no longer reports a missing nonce and
    # post id; it says no chat bot was found and what was looked for (``missing`` is empty).
    with pytest.raises(NonceNotFoundError, match=r"shows no chat bot .* looked for") as info:
        parse("<html><body><h1>Maintenance</h1></body></html>")
    assert info.value.missing == ()
    # The page reader tries every protocol: the legacy chat box is among what it names.
    assert WpaicgProtocol.looked_for in info.value.looked_for
    assert "div.wpaicg-chat-shortcode" in str(info.value)
    assert info.value.page_url == URL


def test_a_data_nonce_alone_is_not_a_chat_box() -> None:
    # Behaviour change: a box is found by its class (or data-nonce *and* data-post-id), so a
    # lone data-nonce (e.g. another plugin's form) is no chat box.
    with pytest.raises(NonceNotFoundError, match="shows no chat bot") as info:
        parse('<form data-nonce="5f1e2d3c4b"></form>')
    assert info.value.missing == ()


@pytest.mark.parametrize("status", [403, 503])
def test_parse_page_cloudflare_challenge_is_blocked(status: int) -> None:
    with pytest.raises(BlockedError, match=r"anti-bot \(Cloudflare\) challenge") as info:
        parse(CLOUDFLARE_PAGE, status=status)
    assert info.value.status_code == status
    # The advice moved out of the protocol layer: the chat model adds it to the message.
    advise(info.value)
    assert re.search(r"proxy=.*impersonate=", str(info.value))


def test_page_with_a_challenge_header_is_blocked_even_with_200() -> None:
    head = ReplyHead(200, {"cf-mitigated": "challenge"}, URL)
    with pytest.raises(BlockedError):
        page_text(head, PLUGIN_PAGE.encode())


def test_parse_page_other_http_error() -> None:
    with pytest.raises(HTTPStatusError, match="HTTP 404") as info:
        parse("<h1>Not found</h1>", status=404)
    assert not isinstance(info.value, BlockedError)
    assert info.value.status_code == 404


def test_page_larger_than_the_cap_is_refused() -> None:
    head = ReplyHead(200, {}, URL)
    assert page_text(head, b"x" * MAX_PAGE_BYTES) == "x" * MAX_PAGE_BYTES
    with pytest.raises(ResponseTooLargeError) as info:
        page_text(head, b"x" * (MAX_PAGE_BYTES + 1))
    assert info.value.limit == MAX_PAGE_BYTES
    assert isinstance(info.value, ResponseFormatError)


def test_find_bots_takes_the_nonce_from_search_nonce_when_the_box_has_none() -> None:
    page = (
        '<div class="wpaicg-chat-shortcode" data-post-id="2173" data-bot-id="7"></div>'
        '<script>var wpaicgParams = {"search_nonce":"abcdef0123"};</script>'
    )
    findings = find_bots(page, URL)
    assert findings.incomplete == ()
    (bot,) = findings.bots
    assert (bot.nonce, bot.bot_id, bot.facts["post_id"]) == ("abcdef0123", "7", "2173")


def test_find_bots_rejects_a_search_nonce_that_is_no_token() -> None:
    page = (
        '<div class="wpaicg-chat-shortcode" data-post-id="2173"></div>'
        '<script>var wpaicgParams = {"search_nonce":"<b>x</b>"};</script>'
    )
    assert find_bots(page, URL).incomplete == (("nonce",),)


def test_find_bots_every_box_in_document_order_and_choose_bot_takes_the_first() -> None:
    page = (
        '<div class="wpaicg-chat-shortcode" data-post-id="1" data-bot-id="11" data-nonce="n1">'
        '<div class="wpaicg-chat-shortcode" data-post-id="2" data-bot-id="22" data-nonce="n2">'
    )
    page_obj = read_page(page, URL)
    assert [(bot.bot_id, bot.nonce) for bot in page_obj.bots] == [("11", "n1"), ("22", "n2")]
    assert choose_bot(page_obj).bot_id == "11"


def test_an_incomplete_box_before_a_complete_one_does_not_hide_it() -> None:
    page = (
        '<div class="wpaicg-chat-shortcode" data-nonce="n1"></div>'
        '<div class="wpaicg-chat-shortcode" data-post-id="2" data-nonce="n2"></div>'
    )
    findings = find_bots(page, URL)
    assert findings.incomplete == (("post id",),)
    assert [bot.nonce for bot in findings.bots] == ["n2"]
    assert parse(page).nonce == "n2"


def test_choose_bot_prefers_an_inline_bot() -> None:
    popup = Bot("wpaicg", "1", URL, ENDPOINT, "n1", inline=False)
    inline = Bot("wpaicg", "2", URL, ENDPOINT, "n2")
    assert choose_bot(Page(URL, (popup, inline))) is inline
    assert choose_bot(Page(URL, (popup,))) is popup


def test_find_bots_odd_bot_ids_and_missing_data_url() -> None:
    page = '<div class="wpaicg-chat-shortcode" data-post-id="5" data-nonce="n" data-bot-id="x">'
    (bot,) = find_bots(page, "https://example.com/chat/").bots
    assert bot.bot_id == "0"  # not digits: the default shortcode bot
    assert bot.facts["url"] == "https://example.com/chat"  # the page URL, without the slash


# --- the endpoint --------------------------------------------------------------------------


def page_with_ajax_url(ajax_url: str) -> str:
    params = json.dumps({"ajax_url": ajax_url, "search_nonce": "abcdef0123"})
    return (
        '<div class="wpaicg-chat-shortcode" data-post-id="2173"></div>'
        f"<script>var wpaicgParams = {params};</script>"
    )


@pytest.mark.parametrize(
    ("page_url", "ajax_url", "endpoint"),
    [
        # absolute: taken as it is, whatever the page
        (
            "https://example.com/chat/",
            "https://api.example.com/blog/wp-admin/admin-ajax.php",
            "https://api.example.com/blog/wp-admin/admin-ajax.php",
        ),
        # relative to the host: WordPress installed under /blog
        (
            "https://example.com/blog/chat/",
            "/blog/wp-admin/admin-ajax.php",
            "https://example.com/blog/wp-admin/admin-ajax.php",
        ),
        # relative to the page
        (
            "https://example.com/blog/chat/",
            "../wp-admin/admin-ajax.php",
            "https://example.com/blog/wp-admin/admin-ajax.php",
        ),
        # empty: the fallback
        ("https://example.com/chat/", "", "https://example.com/wp-admin/admin-ajax.php"),
    ],
)
def test_endpoint_comes_from_ajax_url_resolved_against_the_page(
    page_url: str, ajax_url: str, endpoint: str
) -> None:
    (bot,) = find_bots(page_with_ajax_url(ajax_url), page_url).bots
    assert bot.endpoint == endpoint
    assert bot.page_url == page_url


def test_endpoint_from_the_escaped_ajax_url_of_the_plugin_page() -> None:
    (bot,) = find_bots(PLUGIN_PAGE, "https://chatgpt.es/chat/").bots
    assert bot.endpoint == ENDPOINT


@pytest.mark.parametrize(
    "params",
    [
        "",
        "<script>var wpaicgParams = {};</script>",
        '<script>var wpaicgParams = {"ajax_url": 42};</script>',
        '<script>var wpaicgParams = {"ajax_url": ""};</script>',
    ],
)
def test_endpoint_falls_back_to_the_site_root_under_a_sub_path(params: str) -> None:
    page = f'<div class="wpaicg-chat-shortcode" data-post-id="1" data-nonce="n"></div>{params}'
    (bot,) = find_bots(page, "https://example.com/chat/").bots
    assert bot.endpoint == "https://example.com" + AJAX_PATH
    assert bot.endpoint == "https://example.com/wp-admin/admin-ajax.php"


# --- the request ------------------------------------------------------------------------


def test_build_form_fields() -> None:
    form = build_form(BOT, BOT.nonce, "Hi", "0123456789")
    assert form == (
        ("_wpnonce", "5f1e2d3c4b"),
        ("post_id", "2173"),
        ("url", URL),
        ("action", "wpaicg_chat_shortcode_message"),
        ("message", "Hi"),
        ("bot_id", "0"),
        ("chatbot_identity", "shortcode"),
        ("wpaicg_chat_client_id", "0123456789"),
        ("wpaicg_chat_history", "[]"),
    )
    # The plugin strips every backslash before json_decode: the history must survive that.
    history = dict(form)["wpaicg_chat_history"]
    assert json.loads(history.replace("\\", "")) == json.loads(history)


def test_build_form_sends_the_nonce_it_is_given_not_the_pages() -> None:
    form = dict(build_form(BOT, "fresh12345", "Hi", "0123456789"))
    assert form["_wpnonce"] == "fresh12345"


@pytest.mark.parametrize(
    ("page_url", "origin"),
    [
        ("https://example.com/chat/?lang=es", "https://example.com"),
        ("http://127.0.0.1:8080/blog/chat/", "http://127.0.0.1:8080"),
        ("https://chatgpt.es", "https://chatgpt.es"),
    ],
)
def test_post_headers_name_the_page(page_url: str, origin: str) -> None:
    assert post_headers(page_url) == (
        ("Accept", "*/*"),
        ("Origin", origin),
        ("Referer", page_url),
        ("X-Requested-With", "XMLHttpRequest"),
    )


def test_post_headers_origin_has_no_credentials() -> None:
    headers = dict(post_headers("https://user:s3cr3t@example.com/chat/"))
    assert headers["Origin"] == "https://example.com"


@pytest.mark.parametrize("streams", ["0", "1"])
def test_one_call_is_one_post_of_the_form(streams: str) -> None:
    page = (
        '<div class="wpaicg-chat-shortcode" data-post-id="2173" data-nonce="pagenonce" '
        f'data-openai_stream_nav="{streams}"></div>'
        '<script>var wpaicgParams = {"ajax_url": "/blog/wp-admin/admin-ajax.php"};</script>'
    )
    page_url = "https://example.com/blog/chat/"
    (bot,) = find_bots(page, page_url).bots
    visitor = Visitor(client_id="0123456789", session_id="s")
    chat = ChatInput((Turn("user", "User", "Hola"),), "", visitor)
    call = WpaicgProtocol().start(bot, BotState("statenonce"), chat)
    request = call.next_request()
    assert request == HttpRequest(
        "POST",
        "https://example.com/blog/wp-admin/admin-ajax.php",
        headers=post_headers(page_url),
        form=build_form(bot, "statenonce", flatten(chat), "0123456789"),
        streamed=streams == "1",
        step="chat",
    )
    assert request is not None and dict(request.form or ())["action"] == ACTION
    assert call.sent_text == flatten(chat)
    assert call.next_request() is None
    assert isinstance(call.reader(), ReplyReader)
    assert call.new_state() is None


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


def test_whole_body_larger_than_the_cap_is_refused() -> None:
    reader = ReplyReader()
    chunk = b" " * (1024 * 1024)
    reader.feed(b'{"status":"success","data":"')
    with pytest.raises(ResponseTooLargeError) as info:
        feed_all(reader.feed, [chunk] * (MAX_BODY_BYTES // len(chunk) + 1))
    assert info.value.limit == MAX_BODY_BYTES


def test_leading_blank_space_is_dropped_not_kept() -> None:
    # Blank space before the first byte means nothing in JSON or SSE: it is dropped as it
    # comes, so even more of it than the body cap neither grows memory nor counts.
    reader = ReplyReader()
    chunk = b" \r\n" * (1024 * 1024 // 3)
    for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
        assert reader.feed(chunk) == []
    reader.feed(b'{"status":"success","data":"still here"}')
    events = reader.finish(ReplyHead(200, {}, URL))
    assert events == [TextDelta("still here"), End("stop")]


# --- event streams -------------------------------------------------------------------------


def events_of(body: bytes, *, step: int | None = None) -> list[Event]:
    decoder = StreamDecoder()
    events: list[Event] = []
    pieces = [body] if step is None else [body[i : i + step] for i in range(0, len(body), step)]
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.finish()


def test_sse_openai_chunks() -> None:
    body = sse(delta("Hola"), delta(", mundo"), delta("", "stop"), "[DONE]")
    assert events_of(body) == [TextDelta("Hola"), TextDelta(", mundo"), End("stop")]


def test_sse_fed_byte_by_byte_with_multibyte_text_and_crlf() -> None:
    body = sse(delta("日本語 🎉"), delta("ü"), "[DONE]").replace(b"\n", b"\r\n")
    assert events_of(body, step=1) == [TextDelta("日本語 🎉"), TextDelta("ü"), End("stop")]


def test_sse_fed_byte_by_byte_with_cr_line_ends() -> None:
    body = sse(delta("a"), delta("b")).replace(b"\n", b"\r") + sse("[DONE]")
    assert events_of(body, step=1) == [TextDelta("a"), TextDelta("b"), End("stop")]


@pytest.mark.parametrize("step", [None, 1])
def test_sse_stream_ending_in_a_cr_line_end(step: int | None) -> None:
    body = sse(delta("a"), "[DONE]").replace(b"\n", b"\r")
    assert events_of(body, step=step) == [TextDelta("a"), End("stop")]


def test_sse_events_arrive_before_the_end() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(sse(delta("one"))) == [TextDelta("one")]
    assert decoder.feed(b"data: " + delta(" two").encode()) == []  # line not complete yet
    assert decoder.feed(b"\n\n") == [TextDelta(" two")]


def test_sse_length_finish_reason() -> None:
    body = sse(delta("cut"), delta("", "length"), "[DONE]")
    assert events_of(body)[-1] == End("length")


def test_sse_legacy_json_after_done_is_ignored() -> None:
    trailing = b'{"status":"success","msg":"Something went wrong","data":"Hola","log":false}'
    body = sse(delta("Hola"), "[DONE]") + trailing
    assert events_of(body) == [TextDelta("Hola"), End("stop")]


@pytest.mark.parametrize(
    "body",
    [
        b'data: {"status":"success","data":"Hola"}\n\n',
        b': ping\n\n{"status":"success","data":"Hola"}',  # a bare line, as PHP prints it
    ],
)
def test_sse_legacy_json_alone_is_the_answer(body: bytes) -> None:
    assert events_of(body) == [TextDelta("Hola"), End("stop")]


def test_sse_comments_ids_and_keepalives_are_ignored() -> None:
    body = b": keep-alive\n\nid: 1\nretry: 10\n" + sse(delta("ok"), "[DONE]")
    assert events_of(body) == [TextDelta("ok"), End("stop")]


def test_sse_finish_reason_without_done_ends_the_answer() -> None:
    body = sse(delta("ok"), delta("", "stop"))
    assert events_of(body) == [TextDelta("ok"), End("stop")]


def words(*items: str) -> bytes:
    return b"".join(
        b"event: message\n" + sse(json.dumps({"choices": [{"delta": {"content": w}}]}))
        for w in items
    )


def test_sse_error_as_words_is_a_site_error_and_never_text() -> None:
    decoder = StreamDecoder()
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


def test_sse_event_larger_than_the_cap_is_refused() -> None:
    decoder = StreamDecoder()
    decoder.feed(b"data: ")
    chunk = b"x" * (1024 * 1024)
    with pytest.raises(ResponseTooLargeError) as info:
        feed_all(decoder.feed, [chunk] * (MAX_EVENT_BYTES // len(chunk) + 1))
    assert info.value.limit == MAX_EVENT_BYTES


def test_decode_reply_of_a_whole_event_stream() -> None:
    assert decode_reply(200, STREAM, sse(delta("a"), delta("b"), "[DONE]")) == "ab"


def test_reply_reader_json_arrives_at_finish() -> None:
    reader = ReplyReader()
    assert reader.feed(b'{"status":"success",') == []
    assert reader.feed(b'"data":"Hi"}') == []
    assert reader.finish(ReplyHead(200, JSON, URL)) == [TextDelta("Hi"), End("stop")]


def test_reply_reader_error_status_with_event_stream_type_is_judged_by_status() -> None:
    reader = ReplyReader()
    reader.feed(b"The link you followed has expired.")
    with pytest.raises(NonceRejectedError):
        reader.finish(ReplyHead(403, STREAM, URL))


# --- the reader decides by the body, not the Content-Type ------------------------------------


@pytest.mark.parametrize("headers", [JSON, HTML, {}])
def test_reply_reader_streams_an_event_stream_whatever_its_content_type(
    headers: Mapping[str, str],
) -> None:
    reader = ReplyReader()
    assert reader.feed(sse(delta("Ho"))) == [TextDelta("Ho")]  # before the end: streamed
    assert reader.feed(sse(delta("la"), "[DONE]")) == [TextDelta("la"), End("stop")]
    assert reader.finish(ReplyHead(200, headers, URL)) == []


def test_reply_reader_reads_json_under_an_event_stream_type() -> None:
    # Behaviour change: the old reader trusted Content-Type: text/event-stream and fed JSON to
    # the SSE decoder ("Unexpected line"); the body decides now.
    assert decode_reply(200, STREAM, b'{"status":"success","data":"Hola"}') == "Hola"


def test_reply_reader_judges_a_json_error_under_an_event_stream_type() -> None:
    with pytest.raises(SiteError, match="prohibited"):
        decode_reply(200, STREAM, b'{"status":"error","msg":"prohibited words"}')


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_reply_reader_sniffs_across_small_chunks(step: int) -> None:
    body = b"\n\n" + sse(delta("a"), "[DONE]")
    reader = ReplyReader()
    events: list[Event] = []
    for i in range(0, len(body), step):
        events += reader.feed(body[i : i + step])
    assert events + reader.finish(ReplyHead(200, {}, URL)) == [TextDelta("a"), End("stop")]


def test_reply_reader_short_body_is_judged_at_finish() -> None:
    reader = ReplyReader()
    assert reader.feed(b"-1") == []  # too short to tell what it is
    with pytest.raises(NonceRejectedError):
        reader.finish(ReplyHead(403, {}, URL))


def test_reply_reader_event_stream_with_an_error_status_fails_at_finish() -> None:
    # Non-2xx statuses are judged at finish, once the body is read, whatever it was.
    reader = ReplyReader()
    reader.feed(sse(delta("a"), "[DONE]"))
    with pytest.raises(HTTPStatusError, match="HTTP 502") as info:
        reader.finish(ReplyHead(502, STREAM, URL))
    assert info.value.status_code == 502


@pytest.mark.parametrize("field", [b"event", b"retry"])
def test_reply_reader_sniff_does_not_depend_on_where_the_first_chunk_ends(field: bytes) -> None:
    body = field + b": x\n" + sse(delta("a"), "[DONE]")
    reader = ReplyReader()
    events = reader.feed(body[: len(field)]) + reader.feed(body[len(field) :])
    assert events + reader.finish(ReplyHead(200, {}, URL)) == [TextDelta("a"), End("stop")]


def test_reply_reader_streams_after_many_blank_lines() -> None:
    assert decode_reply(200, STREAM, b"\n" * 100 + sse(delta("a"), "[DONE]")) == "a"


def test_reply_reader_streams_after_a_byte_order_mark() -> None:
    assert decode_reply(200, STREAM, b"\xef\xbb\xbf" + sse(delta("a"), "[DONE]")) == "a"


def test_json_after_a_byte_order_mark_is_read() -> None:
    assert decode_reply(200, JSON, b'\xef\xbb\xbf{"status":"success","data":"Hi"}') == "Hi"
