"""The AIPKit protocol (AI Power >= 2.3) without sockets: pages, requests, replies.

Page markup, fields and event shapes follow ``shared/reference/wp-chat-plugins.md`` Part A
(the plugin's own source, 2.4.71, with 2.3-2.4.0 differences).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from syrupy.assertion import SnapshotAssertion

from langchain_chatgptes import (
    HTTPStatusError,
    IncompleteAnswerError,
    NonceNotFoundError,
    NonceRejectedError,
    RateLimitError,
    ResponseFormatError,
    SiteError,
)
from langchain_chatgptes._conversation import SYSTEM_PROMPT, ChatInput, Turn, Visitor, flatten
from langchain_chatgptes._policy import Pipeline, Settings
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes.protocols import aipkit, choose_bot, read_page
from langchain_chatgptes.protocols._base import (
    Bot,
    BotState,
    Call,
    End,
    Event,
    HttpRequest,
    Metadata,
    ReplyHead,
    TextDelta,
)

from .scripted import Scripted, ScriptedAdapter

URL = "https://example.com/chat/"
ENDPOINT = "https://example.com/wp-admin/admin-ajax.php"
CHAT = ChatInput(
    (Turn("user", "User", "Hello there"),),
    "",
    Visitor("a1b2c3d4e5", "0f6c7a3e-3d1b-4b8e-9a51-6e1c2f0d9b77"),
)


def data_config(bot_id: int = 123, **extra: Any) -> str:
    """``data-config`` as the plugin writes it: JSON_HEX_* flags, then ``esc_attr``."""
    config = {
        "botId": bot_id,
        "ajaxUrl": ENDPOINT,
        "nonce": "3f2a9c1b7e",
        "postId": 42,
        "theme": "light",
        "popupEnabled": False,
        "headerName": "Support <Bot> & 'Co'",
        "text": {"typeMessage": "Type your message...", "errorPrefix": "Error:"},
        **extra,
    }
    encoded = json.dumps(config, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    for char, code in (("<", "003C"), (">", "003E"), ("'", "0027"), ("&", "0026")):
        encoded = encoded.replace(char, f"\\u{code}")
    return html.escape(encoded, quote=True)


def inline_bot(bot_id: int = 123, **extra: Any) -> str:
    return (
        f'<div class="aipkit_chat_container aipkit-theme-light  aipkit-sidebar-state-closed   " '
        f'id="aipkit_chat_container_{bot_id}" data-bot-id="{bot_id}" '
        f"data-config='{data_config(bot_id, **extra)}' >"
        '<div class="aipkit_chat_body"><div class="aipkit_chat_messages"></div></div></div>'
    )


def popup_bot(bot_id: int = 77, **extra: Any) -> str:
    return (
        f'<div class="aipkit_popup_wrapper aipkit-popup-theme-dark" id="aipkit_popup_wrapper_'
        f"{bot_id}\" data-config='{data_config(bot_id, popupEnabled=True, **extra)}' "
        f'data-bot-id="{bot_id}" data-icon-size="medium">'
        f'<button type="button" class="aipkit_popup_trigger" id="aipkit_popup_trigger_{bot_id}">'
        "</button>"
        f'<div class="aipkit_chat_container aipkit_popup_content" id="aipkit_chat_container_'
        f'{bot_id}" aria-hidden="true" inert></div></div>'
    )


LEGACY_BOX = (
    '<div class="wpaicg-chat-shortcode" data-nonce="5f1e2d3c4b" data-post-id="7" '
    'data-url="https://example.com/chat/" data-bot-id="0"></div>'
)
SCRIPTS = (
    '<script id="aipkit-public-main-js-before">window.aipkit_getChatNonceAction = '
    '"aipkit_get_frontend_chat_nonce";</script>'
    '<script src="https://example.com/wp-content/plugins/gpt3-ai-content-generator/dist/js/'
    'public-main.bundle.js?ver=2.4.71" id="aipkit-public-main-js"></script>'
)


def page(*bodies: str) -> str:
    return f"<!DOCTYPE html><html><body>{''.join(bodies)}{SCRIPTS}</body></html>"


def bot_of(*bodies: str, plugin: str = "auto", bot_id: str | None = None) -> Bot:
    return choose_bot(read_page(page(*bodies), URL), plugin, bot_id)


def sse(*events: tuple[str | None, Any]) -> bytes:
    """An AIPKit stream: the 4096-space preamble, then the events (name ``None``: unnamed)."""
    out = [b":" + b" " * 4096 + b"\n\n"]
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        if name in ("error", "warning"):
            head += "id: err-1767225600\n"
        out.append(f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode())
    return b"".join(out)


START = ("message_start", {"message_id": "aipkit-msg-66f1a2b3c4d5e6.12345678"})
DONE = ("done", {"finished": True})


def delta(text: str) -> tuple[None, dict[str, str]]:
    return (None, {"delta": text})


def cache_ok(key: str = "aipkit_sse_AbCdEfGhIjKlMnOpQrStUvWxYz012345") -> bytes:
    return json.dumps({"success": True, "data": {"cache_key": key}}).encode()


def run_step(call: Call, status: int, body: bytes, chunk: int = 0) -> list[Event]:
    """Feed one reply to the call's current reader (in ``chunk``-byte pieces if given)."""
    reader = call.reader()
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    events: list[Event] = []
    try:
        for piece in pieces:
            events += reader.feed(piece)
        events += reader.finish(ReplyHead(status, {}, ENDPOINT))
    finally:  # as the policy does: only the call applies what the reply taught
        call.learn(reader.learned())
    return events


def start(bot: Bot | None = None) -> Call:
    bot = bot or bot_of(inline_bot())
    return aipkit.AipkitProtocol().start(bot, BotState(bot.nonce), CHAT)


def streamed(body: bytes, chunk: int = 0) -> list[Event]:
    """The events of a whole call whose cache POST succeeds and whose stream is ``body``."""
    call = start()
    assert call.next_request() is not None
    assert run_step(call, 200, cache_ok()) == []
    request = call.next_request()
    assert request is not None and request.method == "GET"
    return run_step(call, 200, body, chunk)


def text(events: Sequence[Event]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


# --- the page -------------------------------------------------------------------------------


def test_an_inline_bot_is_read_from_its_data_config() -> None:
    bot = bot_of(inline_bot())
    assert bot == Bot(
        protocol="aipkit",
        bot_id="123",
        page_url=URL,
        endpoint=ENDPOINT,
        nonce="3f2a9c1b7e",
        inline=True,
        facts={
            "post_id": "42",
            "streams": True,
            "name": "Support <Bot> & 'Co'",
        },
    )


def test_a_popup_bot_reads_the_wrapper_config_and_is_found_once() -> None:
    page_ = read_page(page(popup_bot(77)), URL)
    assert [(bot.bot_id, bot.inline) for bot in page_.bots] == [("77", False)]


def test_the_same_bot_twice_on_a_page_is_one_bot() -> None:
    page_ = read_page(page(inline_bot(5), inline_bot(5)), URL)
    assert [bot.bot_id for bot in page_.bots] == ["5"]


def test_an_inline_bot_is_preferred_to_a_popup_before_it() -> None:
    assert bot_of(popup_bot(77), inline_bot(123)).bot_id == "123"


def test_the_first_inline_bot_in_page_order_is_chosen() -> None:
    assert bot_of(inline_bot(9), inline_bot(3)).bot_id == "9"


def test_bot_id_picks_a_bot_and_an_unknown_one_lists_the_page_s_bots() -> None:
    assert bot_of(inline_bot(9), popup_bot(3), bot_id="3").bot_id == "3"
    with pytest.raises(NonceNotFoundError, match=r"no bot with the id '4'.*'9' \(aipkit\)"):
        bot_of(inline_bot(9), popup_bot(3), bot_id="4")


def test_a_relative_ajax_url_is_resolved_against_the_page() -> None:
    bot = bot_of(inline_bot().replace("https:\\/\\/example.com", ""))
    assert bot.endpoint == ENDPOINT


def test_a_config_without_a_nonce_names_what_is_missing() -> None:
    box = inline_bot().replace("nonce&quot;:&quot;3f2a9c1b7e", "nonce&quot;:&quot;")
    with pytest.raises(
        NonceNotFoundError, match=r"AIPKit bot, but it is missing its nonce"
    ) as info:
        read_page(page(box), URL)
    assert info.value.missing == ("nonce",)


def test_an_unreadable_config_is_not_a_bot() -> None:
    box = inline_bot().replace("data-config='{", "data-config='{,")
    with pytest.raises(NonceNotFoundError, match="missing its configuration"):
        read_page(page(box), URL)


def test_a_container_without_config_is_not_a_bot() -> None:
    # The inner container of a popup carries no data-config; alone it is nothing to talk to.
    with pytest.raises(NonceNotFoundError, match="shows no chat bot") as info:
        read_page(page('<div class="aipkit_chat_container" data-bot-id="5"></div>'), URL)
    assert aipkit.AipkitProtocol.looked_for in info.value.looked_for
    assert "AIPKit's script but no bot on this page" in str(info.value)


@pytest.mark.parametrize(
    ("markup", "hint"),
    [
        ('[aipkit_chatbot id="12"]', "AIPKit shortcode left as text"),
        ("[wpaicg_chatgpt]", "legacy AI Power shortcode left as text"),
        ('<div class="mwai-chatbot-container" data-system="{}"></div>', "AI Engine bot, but"),
    ],
)
def test_no_bot_says_what_the_page_shows_instead(markup: str, hint: str) -> None:
    with pytest.raises(NonceNotFoundError, match=re.escape(hint)):
        read_page(f"<html><body><p>{markup}</p></body></html>", URL)


def test_auto_passes_over_a_stale_legacy_box_beside_an_aipkit_bot() -> None:
    assert bot_of(LEGACY_BOX, inline_bot()).protocol == "aipkit"


def test_a_forced_plugin_picks_its_own_bots() -> None:
    assert bot_of(LEGACY_BOX, inline_bot(), plugin="wpaicg").protocol == "wpaicg"
    assert bot_of(LEGACY_BOX, inline_bot(), plugin="aipkit").protocol == "aipkit"
    with pytest.raises(NonceNotFoundError, match=r"shows no aipkit bot \(it shows: wpaicg\)"):
        bot_of(LEGACY_BOX, plugin="aipkit")


def test_stream_enabled_false_marks_a_2_3_bot_without_streaming() -> None:
    assert bot_of(inline_bot(streamEnabled=False)).facts["streams"] is False
    assert bot_of(inline_bot(streamEnabled=True)).facts["streams"] is True


# --- the requests (wire formats) -------------------------------------------------------------


def _stable(value: str) -> str:
    """Replace what changes per call (time, random ids) so a snapshot can hold the rest."""
    value = re.sub(
        r"aipkit-client-msg-(\d+)-\d{13}-[a-z0-9]{5}", r"aipkit-client-msg-\1-T-R", value
    )
    value = re.sub(r"^\d{13}$", "T", value)
    return re.sub(r"^[0-9a-f-]{36}$", "UUID", value)


def test_the_cache_post_wire_format(snapshot: SnapshotAssertion) -> None:
    request = start().next_request()
    assert request is not None
    assert (request.method, request.url, request.step, request.streamed) == (
        "POST",
        ENDPOINT,
        "cache POST",
        False,
    )
    assert dict(request.headers) == {
        "Accept": "*/*",
        "Origin": "https://example.com",
        "Referer": URL,
    }
    assert [(k, _stable(v)) for k, v in request.form or ()] == snapshot


def test_the_stream_get_wire_format(snapshot: SnapshotAssertion) -> None:
    call = start()
    call.next_request()
    run_step(call, 200, cache_ok())
    request = call.next_request()
    assert request is not None
    parts = urlsplit(request.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == ENDPOINT
    assert (request.method, request.step, request.streamed) == ("GET", "stream", True)
    assert dict(request.headers)["Accept"] == "text/event-stream"
    query = parse_qsl(parts.query, keep_blank_values=True)
    assert [(k, _stable(v)) for k, v in query] == snapshot
    assert dict(query)["session_id"] == CHAT.visitor.session_id


def test_each_call_opens_a_fresh_conversation_with_a_stable_session() -> None:
    # The plugin keeps history per conversation_uuid: the whole conversation is sent each
    # time, so a fresh one per call keeps the server from doubling it (reference A.5).
    def query() -> dict[str, str]:
        call = start()
        call.next_request()
        run_step(call, 200, cache_ok())
        request = call.next_request()
        assert request is not None
        return dict(parse_qsl(urlsplit(request.url).query))

    first, second = query(), query()
    assert first["conversation_uuid"] != second["conversation_uuid"]
    assert first["session_id"] == second["session_id"] == CHAT.visitor.session_id


def test_the_message_is_the_flattened_conversation() -> None:
    request = start().next_request()
    assert request is not None and request.form is not None
    # The same text as on the legacy plugin: the preamble, then the conversation.
    assert dict(request.form)["message"] == flatten(CHAT)
    assert flatten(CHAT) == f"{SYSTEM_PROMPT} Hello there"


def test_post_id_is_left_out_of_the_stream_query_when_the_page_has_none() -> None:
    call = start(bot_of(inline_bot(postId=0)))
    call.next_request()
    run_step(call, 200, cache_ok())
    request = call.next_request()
    assert request is not None and "post_id=" not in request.url


def test_a_2_3_bot_without_streaming_posts_the_message_action(snapshot: SnapshotAssertion) -> None:
    call = start(bot_of(inline_bot(streamEnabled=False)))
    request = call.next_request()
    assert request is not None and request.step == "message"
    assert [(k, _stable(v)) for k, v in request.form or ()] == snapshot
    body = json.dumps({"success": True, "data": {"reply": "Hi!", "message_id": "m1"}}).encode()
    assert run_step(call, 200, body) == [TextDelta("Hi!"), End("stop")]
    assert call.next_request() is None


# --- the stream ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [0, 1, 7, 4096])
def test_a_stream_is_the_answer_whatever_its_chunking(chunk: int) -> None:
    events = streamed(sse(START, delta("Hello"), delta("! How can I help?"), DONE), chunk)
    assert text(events) == "Hello! How can I help?"
    assert events[-1] == End("stop")
    assert Metadata({"site_message_id": START[1]["message_id"]}) in events


def test_progress_events_are_not_text_and_extras_are_metadata() -> None:
    body = sse(
        START,
        ("status", {"type": "response.web_search_call.searching"}),
        delta("Paris."),
        ("citations", [{"url": "https://example.org"}]),
        ("warning", {"error": "The answer may be incomplete."}),
        ("done", {"finished": True, "citations": [{"url": "https://example.org"}]}),
    )
    events = streamed(body)
    assert text(events) == "Paris."
    metadata = [event.values for event in events if isinstance(event, Metadata)]
    assert {"site_warnings": ["The answer may be incomplete."]} in metadata
    assert {"site_citations": [{"url": "https://example.org"}]} in metadata


def test_nothing_after_done_is_read() -> None:
    events = streamed(sse(START, delta("one"), DONE, delta("two")))
    assert text(events) == "one"


def test_a_stream_without_done_is_an_incomplete_answer() -> None:
    with pytest.raises(IncompleteAnswerError, match="the answer is incomplete"):
        streamed(sse(START, delta("Half an ans")))


def test_a_provider_error_after_text_is_an_incomplete_answer() -> None:
    with pytest.raises(IncompleteAnswerError) as info:
        streamed(sse(START, delta("Half"), ("error", {"error": "API Error: overloaded"})))
    assert info.value.site_message == "API Error: overloaded"


def test_an_empty_answer_is_an_error_not_an_empty_message() -> None:
    with pytest.raises(ResponseFormatError, match="empty answer"):
        streamed(sse(START, delta("  "), DONE))


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Security check failed. Please refresh the page and try again.", NonceRejectedError),
        ("Security check failed (nonce).", NonceRejectedError),
        ("This domain is not permitted to access the chatbot.", SiteError),
        ("Access disabled for guests.", RateLimitError),
        ("You have reached your quota for this period.", RateLimitError),
        ("Invalid chatbot specified.", SiteError),
        ("Access from your IP address has been blocked.", SiteError),
        ("API Error: upstream down", SiteError),
    ],
)
def test_stream_errors_before_text_map_to_typed_errors(
    message: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        streamed(sse(("error", {"error": message}), DONE))
    assert not isinstance(info.value, IncompleteAnswerError)
    if message.startswith("This domain"):
        assert "not public" in str(info.value)


def test_a_quota_notice_in_any_wording_is_a_rate_limit() -> None:
    notice = {"type": "quota_notice", "message": "Come back tomorrow", "actions": []}
    with pytest.raises(RateLimitError, match="Come back tomorrow, friend"):
        streamed(sse(("error", {"error": "Come back tomorrow, friend", "quota_notice": notice})))


def test_a_form_trigger_is_an_error_naming_the_form() -> None:
    with pytest.raises(SiteError, match="fill in a form"):
        streamed(sse(START, ("display_form_event", {"form_definition": {}})))


@pytest.mark.parametrize(
    "message",
    ["Message cache key is missing.", "Message not found in cache.", "Cached message has expired."],
)
def test_a_gone_cache_key_sends_the_message_again_once(message: str) -> None:
    call = start()
    call.next_request()
    run_step(call, 200, cache_ok("aipkit_sse_first"))
    call.next_request()
    assert run_step(call, 200, sse(("error", {"error": message}), DONE)) == []
    again = call.next_request()
    assert again is not None and again.step == "cache POST"
    run_step(call, 200, cache_ok("aipkit_sse_second"))
    stream = call.next_request()
    assert stream is not None and "cache_key=aipkit_sse_second" in stream.url
    assert run_step(call, 200, sse(("error", {"error": message}), DONE)) == []
    with pytest.raises(SiteError, match=re.escape(message)):  # only once: no third POST
        call.next_request()


def test_json_where_the_stream_belongs_is_judged_as_json() -> None:
    call = start()
    call.next_request()
    run_step(call, 200, cache_ok())
    call.next_request()
    with pytest.raises(HTTPStatusError, match="no handler for the 'aipkit_frontend_chat_stream'"):
        run_step(call, 400, b"0")


# --- the cache POST's errors ------------------------------------------------------------------


def cache_error(status: int, message: str, code: str | None = None) -> tuple[int, bytes]:
    data = {"message": message, **({"code": code} if code else {})}
    return status, json.dumps({"success": False, "data": data}).encode()


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (
            cache_error(403, "Your session has expired…", aipkit.NONCE_FAILURE_CODE),
            NonceRejectedError,
            "rejected the nonce",
        ),
        (
            cache_error(403, "Embed feature is not available.", "embed_not_available"),
            SiteError,
            "not public",
        ),
        (cache_error(403, "Not permitted.", "cors_denied"), SiteError, "not public"),
        (
            cache_error(400, "Data to cache cannot be empty.", "empty_data_to_cache"),
            SiteError,
            "Data to cache",
        ),
        ((400, b"0"), HTTPStatusError, "AI Power 2.3 or later"),
        (cache_error(503, "SSE service not ready."), HTTPStatusError, "SSE service not ready"),
        ((502, b"<html>Bad gateway</html>"), HTTPStatusError, "502"),
        ((200, b"<html>maintenance</html>"), ResponseFormatError, "JSON"),
        ((200, b'{"success":true,"data":{}}'), ResponseFormatError, "no cache_key"),
    ],
)
def test_cache_post_errors_map_to_typed_errors(
    reply: tuple[int, bytes], error: type[Exception], words: str
) -> None:
    call = start()
    call.next_request()
    with pytest.raises(error, match=re.escape(words)):
        run_step(call, *reply)


# --- the fresh-nonce call ----------------------------------------------------------------------


def test_the_refresh_call_reads_a_fresh_nonce() -> None:
    bot = bot_of(inline_bot())
    refresh = aipkit.AipkitProtocol().refresh(bot, BotState(bot.nonce))
    assert refresh is not None
    request = refresh.next_request()
    assert request is not None and request.form is not None
    assert dict(request.form) == {"action": aipkit.NONCE_ACTION, "bot_id": "123"}
    run_step(refresh, 200, b'{"success":true,"data":{"nonce":"9e8d7c6b5a"}}')
    assert refresh.next_request() is None
    assert refresh.new_state() == BotState("9e8d7c6b5a")


@pytest.mark.parametrize(
    "reply",
    [(400, b"0"), (403, b'{"success":false,"data":{"code":"cors_denied"}}'), (200, b"<html>")],
)
def test_a_refresh_without_a_fresh_nonce_leaves_the_state_alone(reply: tuple[int, bytes]) -> None:
    # An older plugin (< 2.3.41) has no nonce endpoint: the policy then reads the page again.
    bot = bot_of(inline_bot())
    refresh = aipkit.AipkitProtocol().refresh(bot, BotState(bot.nonce))
    assert refresh is not None
    refresh.next_request()
    run_step(refresh, *reply)
    assert refresh.new_state() is None


# --- under the policy (scripted replies, no sockets) ----------------------------------------


class Site:
    """A scripted AIPKit site: its page, then what each step answers, in turn."""

    def __init__(
        self,
        *,
        pages: Sequence[str] = ("3f2a9c1b7e",),
        caches: Sequence[Scripted] = (),
        streams: Sequence[Scripted] = (),
        nonces: Sequence[Scripted] = (),
    ) -> None:
        self.pages, self.caches = list(pages), list(caches)
        self.streams, self.nonces = list(streams), list(nonces)
        self.adapter = ScriptedAdapter(self.handle)

    def handle(self, request: HttpRequest) -> Scripted:
        if request.step == "page":
            nonce = self.pages.pop(0) if len(self.pages) > 1 else self.pages[0]
            body = page(inline_bot().replace("3f2a9c1b7e", nonce))
            return Scripted(200, [body.encode()])
        queue = {"cache POST": self.caches, "stream": self.streams, "nonce": self.nonces}
        default = {
            "cache POST": Scripted(200, [cache_ok()]),
            "stream": Scripted(200, [sse(START, delta("default"), DONE)]),
            "nonce": Scripted(400, [b"0"]),
        }
        waiting = queue[request.step]
        return waiting.pop(0) if waiting else default[request.step]

    def steps(self) -> list[str]:
        return [request.step for request in self.adapter.requests]

    def nonces_sent(self) -> list[str]:
        return [
            dict(request.form or parse_qsl(urlsplit(request.url).query))["_ajax_nonce"]
            for request in self.adapter.requests
            if request.step in ("cache POST", "stream")
        ]


async def ask(site: Site, **settings: Any) -> str:
    pipe = Pipeline(Settings(URL, **settings), SiteCache(), site.adapter)
    events = [event async for batch in pipe.chat(CHAT) for event in batch]
    return text(events)


NONCE_403 = Scripted(
    403,
    [
        json.dumps(
            {"success": False, "data": {"message": "expired", "code": "nonce_failure_cache_sse"}}
        ).encode()
    ],
)
STREAM_NONCE = Scripted(200, [sse(("error", {"error": aipkit.STREAM_NONCE_ERRORS[0]}), DONE)])


async def test_a_call_is_one_cache_post_and_one_stream() -> None:
    site = Site()
    assert await ask(site) == "default"
    assert site.steps() == ["page", "cache POST", "stream"]


@pytest.mark.parametrize("refusal", [NONCE_403, STREAM_NONCE], ids=["cache", "stream"])
async def test_a_refused_nonce_is_replaced_from_the_nonce_endpoint(refusal: Scripted) -> None:
    fresh = Scripted(200, [b'{"success":true,"data":{"nonce":"9e8d7c6b5a"}}'])
    site = (
        Site(nonces=[fresh], caches=[refusal])
        if refusal is NONCE_403
        else Site(nonces=[fresh], streams=[refusal])
    )
    assert await ask(site, max_retries=0) == "default"
    first = ["cache POST"] if refusal is NONCE_403 else ["cache POST", "stream"]
    assert site.steps() == ["page", *first, "nonce", "cache POST", "stream"]
    assert site.nonces_sent()[-2:] == ["9e8d7c6b5a", "9e8d7c6b5a"]


async def test_without_a_nonce_endpoint_the_page_is_read_again() -> None:
    # Plugins before 2.3.41 answer the nonce action with 400 "0".
    site = Site(pages=["3f2a9c1b7e", "aaaabbbbcc"], caches=[NONCE_403])
    assert await ask(site, max_retries=0) == "default"
    assert site.steps() == ["page", "cache POST", "nonce", "page", "cache POST", "stream"]
    assert site.nonces_sent()[-2:] == ["aaaabbbbcc", "aaaabbbbcc"]


async def test_a_retried_failure_starts_again_at_the_cache_post() -> None:
    # A cache key is single use: a retry after a failed stream stores the message again.
    site = Site(streams=[Scripted(502, [b"Bad gateway"])])
    assert await ask(site, max_retries=1) == "default"
    assert site.steps() == ["page", "cache POST", "stream", "cache POST", "stream"]


async def test_nothing_is_retried_once_text_was_delivered() -> None:
    site = Site(streams=[Scripted(200, [sse(START, delta("Half"))])])
    with pytest.raises(IncompleteAnswerError):
        await ask(site, max_retries=2)
    assert site.steps() == ["page", "cache POST", "stream"]
