"""The AI Engine protocol (Meow Apps, ``mwai``) without sockets: pages, requests, replies.

Page markup, routes, bodies and reply shapes follow ``shared/reference/wp-chat-plugins.md``
Part B (the plugin's own source, 3.6.2, with version differences).
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import Sequence
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from langchain_chatgptes import (
    HistoryTrimWarning,
    HTTPStatusError,
    IncompleteAnswerError,
    InvalidInputError,
    NonceNotFoundError,
    NonceRejectedError,
    RateLimitError,
    ResponseFormatError,
    SiteError,
)
from langchain_chatgptes._conversation import SYSTEM_PROMPT, ChatInput, Turn, Visitor
from langchain_chatgptes._policy import Pipeline, Settings
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes.protocols import choose_bot, mwai, read_page
from langchain_chatgptes.protocols._base import (
    Bot,
    BotState,
    Call,
    End,
    Event,
    HttpRequest,
    ReplyHead,
    TextDelta,
    Usage,
)

from .scripted import Scripted, ScriptedAdapter

URL = "https://example.com/chat/"
REST = "https://example.com/wp-json"
VISITOR = Visitor("a1b2c3d4e5", "0f6c7a3e-3d1b-4b8e-9a51-6e1c2f0d9b77")


def chat(*turns: tuple[str, str], instructions: str = "", follow_up: bool = False) -> ChatInput:
    labels = {"user": "User", "assistant": "Assistant", "system": "System"}
    return ChatInput(
        tuple(Turn(role, labels.get(role, role), text) for role, text in turns),  # type: ignore[arg-type]
        instructions,
        VISITOR,
        follow_up,
    )


HELLO = chat(("user", "Hello there"))


def php_attr(value: Any) -> str:
    """``htmlspecialchars(json_encode($value), ENT_QUOTES)`` as the plugin writes it."""
    encoded = json.dumps(value, separators=(",", ":")).replace("/", "\\/")
    for char, entity in (("&", "&amp;"), ('"', "&quot;"), ("'", "&#039;"), ("<", "&lt;")):
        encoded = encoded.replace(char, entity)
    return encoded.replace(">", "&gt;")


def container(
    bot_id: str | None = "default",
    *,
    custom_id: str | None = None,
    nonce: str | None = None,
    max_length: float | None = 512.0,
    rest_url: str = REST,
    window: bool = False,
) -> str:
    system = {
        "botId": bot_id,
        "customId": custom_id,
        "userData": None,
        "sessionId": None,
        "restNonce": nonce,
        "contextId": 42.0,
        "pluginUrl": "https://example.com/wp-content/plugins/ai-engine",
        "restUrl": rest_url,
        "stream": True,
        "crossSite": False,
    }
    params: dict[str, Any] = {"aiName": "AI: ", "userName": "User: ", "window": window}
    if max_length is not None:
        params["textInputMaxLength"] = max_length
    theme = {"type": "internal", "name": "ChatGPT", "themeId": "chatgpt"}
    return (
        f"<div class='mwai-chatbot-container' data-params='{php_attr(params)}' "
        f"data-system='{php_attr(system)}' data-theme='{php_attr(theme)}'></div>"
    )


SCRIPT = (
    '<script src="https://example.com/wp-content/plugins/ai-engine/app/chatbot.js?ver=1" '
    'id="mwai_chatbot-js"></script>'
)


def page(*bodies: str) -> str:
    return f"<html><body>{''.join(bodies)}{SCRIPT}</body></html>"


def bot_of(*bodies: str, plugin: str = "auto", bot_id: str | None = None) -> Bot:
    return choose_bot(read_page(page(*bodies), URL), plugin, bot_id)


def run_step(call: Call, status: int, body: bytes, chunk: int = 0, **head: Any) -> list[Event]:
    reader = call.reader()
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    events: list[Event] = []
    try:
        for piece in pieces:
            events += reader.feed(piece)
        events += reader.finish(
            ReplyHead(status, head.get("headers", {}), REST, head.get("cookies", {}))
        )
    finally:  # as the policy does: only the call applies what the reply taught
        call.learn(reader.learned())
    return events


def submit(bot: Bot | None = None, conversation: ChatInput = HELLO, nonce: str = "n0nce") -> Call:
    bot = bot or bot_of(container())
    return mwai.MwaiProtocol().start(
        bot, BotState(nonce, (("mwai_session_id", "66f1a2b3c4d5e"),)), conversation
    )


def lines(*items: dict[str, Any]) -> bytes:
    return b"".join(f"data: {json.dumps(item)}\n\n".encode() for item in items)


def live(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "live", "data": text, **extra}


def end(reply: str = "", **extra: Any) -> dict[str, Any]:
    final = {"success": True, "reply": reply, "images": None, "actions": [], **extra}
    return {"type": "end", "data": json.dumps(final)}


USAGE = {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34, "price": 4e-05}


def text(events: Sequence[Event]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def replied(body: bytes, status: int = 200, chunk: int = 0) -> list[Event]:
    call = submit()
    call.next_request()
    return run_step(call, status, body, chunk)


# --- the page -------------------------------------------------------------------------------


def test_a_bot_is_read_from_its_escaped_data_system() -> None:
    bot = bot_of(container())
    assert (bot.protocol, bot.bot_id, bot.endpoint, bot.nonce, bot.inline) == (
        "mwai",
        "default",
        f"{REST}/mwai-ui/v1/chats/submit",
        "",  # guests of 2.4.4+: no nonce in the page
        True,
    )
    assert bot.facts["max_length"] == 512
    assert bot.facts["context_id"] == 42
    assert bot.facts["id_field"] == "botId"


def test_the_plain_rest_url_style_is_kept() -> None:
    bot = bot_of(container(rest_url="https://example.com/index.php?rest_route="))
    assert bot.endpoint == "https://example.com/index.php?rest_route=/mwai-ui/v1/chats/submit"


def test_a_custom_id_bot_has_no_length_rule() -> None:
    bot = bot_of(container(None, custom_id="9f2c"))
    assert (bot.bot_id, bot.facts["id_field"], bot.facts["max_length"]) == (
        "9f2c",
        "customId",
        None,
    )


def test_a_page_without_the_limit_takes_the_plugin_default() -> None:
    assert bot_of(container(max_length=None)).facts["max_length"] == mwai.DEFAULT_MAX_LENGTH


def test_a_limit_of_zero_is_no_limit() -> None:
    # The plugin checks only `if ( $textInputMaxLength && ... )`.
    bot = bot_of(container(max_length=0.0))
    assert bot.facts["max_length"] is None
    assert submit(bot, chat(("user", "x" * 5000))).next_request() is not None


def test_a_window_bot_is_a_popup_and_inline_bots_come_first() -> None:
    assert bot_of(container("win", window=True), container("inline")).bot_id == "inline"


def test_bot_id_matches_bot_or_custom_id() -> None:
    assert bot_of(container("a"), container(None, custom_id="c1"), bot_id="c1").bot_id == "c1"
    with pytest.raises(NonceNotFoundError, match=r"no bot with the id 'x'.*'a' \(mwai\)"):
        bot_of(container("a"), bot_id="x")


def test_all_three_families_on_one_page() -> None:
    legacy = (
        '<div class="wpaicg-chat-shortcode" data-nonce="5f1e2d3c4b" data-post-id="7" '
        'data-url="https://example.com/chat/" data-bot-id="0"></div>'
    )
    config = (
        "{&quot;botId&quot;:5,&quot;ajaxUrl&quot;:&quot;https:\\/\\/example.com\\/wp-admin\\/"
        "admin-ajax.php&quot;,&quot;nonce&quot;:&quot;3f2a9c1b7e&quot;}"
    )
    aipkit_bot = f"<div class=\"aipkit_chat_container\" data-config='{config}'></div>"
    found = read_page(page(legacy, container("default"), aipkit_bot), URL)
    assert [bot.protocol for bot in found.bots] == ["wpaicg", "mwai", "aipkit"]
    # auto: the stale legacy box is passed over (an AIPKit bot is there), then page order.
    assert choose_bot(found).protocol == "mwai"
    assert choose_bot(found, "aipkit").protocol == "aipkit"
    assert choose_bot(found, "wpaicg").protocol == "wpaicg"


def test_a_container_without_rest_url_names_what_is_missing() -> None:
    with pytest.raises(NonceNotFoundError, match="AI Engine bot, but it is missing its restUrl"):
        read_page(page(container(rest_url="")), URL)


def test_the_shortcode_as_text_is_named() -> None:
    with pytest.raises(NonceNotFoundError, match="AI Engine shortcode left as text"):
        read_page('<p>[mwai_chatbot id="default"]</p>', URL)


# --- the conversation mapping ---------------------------------------------------------------


def test_a_lone_message_is_new_message_after_the_system_turn() -> None:
    messages, new_message, typed = mwai.conversation(HELLO)
    assert messages == [{"role": "system", "content": SYSTEM_PROMPT}]
    assert (new_message, typed) == ("Hello there", True)


def test_multi_turn_with_system_messages_and_instructions() -> None:
    conversation = chat(
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "Capital of Spain?"),
        instructions="<tools>[]</tools>",
    )
    messages, new_message, typed = mwai.conversation(conversation)
    assert messages == [
        {"role": "system", "content": f"{SYSTEM_PROMPT}\n\nBe brief.\n\n<tools>[]</tools>"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert (new_message, typed) == ("Capital of Spain?", True)


def test_a_conversation_ending_with_tool_results_asks_to_continue() -> None:
    conversation = ChatInput(
        (
            Turn("user", "User", "Weather in Paris?"),
            Turn("assistant", "Assistant", '<tool_call>{"name":"w"}</tool_call>'),
            Turn("tool", "Tool result (call_1)", "18 C"),
        ),
        "",
        VISITOR,
    )
    messages, new_message, typed = mwai.conversation(conversation)
    assert messages[1:] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": '<tool_call>{"name":"w"}</tool_call>'},
        {"role": "user", "content": "Tool result (call_1): 18 C"},
    ]
    assert (new_message, typed) == (mwai.CONTINUE, False)


def test_a_re_ask_keeps_the_correction_in_messages() -> None:
    conversation = chat(("user", "Add 2 and 3"), ("assistant", "5"), ("user", "Call a tool."))
    messages, new_message, typed = mwai.conversation(
        ChatInput(conversation.turns, "", VISITOR, follow_up=True)
    )
    assert messages[-1] == {"role": "user", "content": "Call a tool."}
    assert (new_message, typed) == (mwai.CONTINUE, False)


def test_a_named_user_message_is_sent_as_typed() -> None:
    # newMessage is what the person typed (the site's own box sends no name), and only
    # that counts toward textInputMaxLength; earlier named turns keep their label.
    conversation = ChatInput(
        (Turn("user", "User (ann)", "hello"), Turn("user", "User (bob)", "hi")), "", VISITOR
    )
    messages, new_message, typed = mwai.conversation(conversation)
    assert (new_message, typed) == ("hi", True)
    assert messages[-1] == {"role": "user", "content": "User (ann): hello"}
    bot = bot_of(container(max_length=5.0))
    assert submit(bot, ChatInput((Turn("user", "User (bob)", "x" * 5),), "", VISITOR))


# --- the length rule and the history window ---------------------------------------------


def test_a_message_longer_than_the_site_allows_is_refused_before_sending() -> None:
    bot = bot_of(container(max_length=20.0))
    with pytest.raises(InvalidInputError, match=r"21 characters long.*at most 20") as info:
        submit(bot, chat(("user", "x" * 21)))
    assert info.value.setting == "messages"
    assert submit(bot, chat(("user", "é" * 20))).next_request() is not None  # code points
    # The plugin trims the message before it measures it.
    assert submit(bot, chat(("user", " \n" + "x" * 20 + "\t "))).next_request() is not None


def test_only_the_typed_message_counts_toward_the_limit() -> None:
    bot = bot_of(container(max_length=20.0))
    long_history = chat(
        ("system", "s" * 500), ("user", "u" * 500), ("assistant", "a"), ("user", "ok")
    )
    assert submit(bot, long_history).next_request() is not None
    custom = bot_of(container(None, custom_id="c", max_length=20.0))  # no rule for customId
    assert submit(custom, chat(("user", "x" * 600))).next_request() is not None


def test_a_history_longer_than_the_plugin_keeps_brings_a_notice() -> None:
    # The protocol never warns itself (it may run on the I/O thread): the call carries the
    # warning, and the chat model raises it in the caller's thread.
    turns = [("user" if n % 2 == 0 else "assistant", f"turn {n}") for n in range(18)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (notice,) = submit(conversation=chat(*turns, ("user", "last"))).notices
        assert submit(conversation=chat(*turns[:15], ("user", "last"))).notices == ()
    assert isinstance(notice.warning, HistoryTrimWarning)
    assert "the oldest 3 will not reach" in str(notice.warning)


# --- the requests (wire formats) ------------------------------------------------------------


def test_the_submit_wire_format(snapshot: SnapshotAssertion) -> None:
    request = submit(conversation=chat(("system", "Be brief."), ("user", "Hi"))).next_request()
    assert request is not None and request.json is not None
    assert (request.method, request.url, request.step, request.streamed) == (
        "POST",
        f"{REST}/mwai-ui/v1/chats/submit",
        "submit",
        True,
    )
    assert dict(request.headers) == {
        "Accept": "text/event-stream",
        "Origin": "https://example.com",
        "Referer": URL,
        "X-WP-Nonce": "n0nce",
    }
    assert request.cookies == (("mwai_session_id", "66f1a2b3c4d5e"),)
    body = json.loads(request.json)
    assert re.fullmatch(r"[a-z0-9]{11}", body.pop("chatId"))
    assert body == snapshot


def test_a_fresh_chat_id_per_call() -> None:
    ids = set()
    for _ in range(3):
        request = submit().next_request()
        assert request is not None and request.json is not None
        ids.add(json.loads(request.json)["chatId"])
    assert len(ids) == 3


def test_the_session_request_sends_no_nonce() -> None:
    bot = bot_of(container())
    session = mwai.MwaiProtocol().prepare(bot, BotState(""))
    assert session is not None
    request = session.next_request()
    assert request is not None
    assert (request.method, request.url, request.json) == (
        "POST",
        f"{REST}/mwai/v1/start_session",
        "",
    )
    assert "X-WP-Nonce" not in dict(request.headers)
    body = b'{"success":true,"sessionId":"66f1a2b3c4d5e","restNonce":"a1b2c3d4e5"}'
    run_step(session, 200, body, cookies={"mwai_session_id": "66f1a2b3c4d5e"})
    assert session.new_state() == BotState("a1b2c3d4e5", (("mwai_session_id", "66f1a2b3c4d5e"),))
    assert mwai.MwaiProtocol().prepare(bot, BotState("a1b2c3d4e5")) is None


def test_no_session_route_leaves_the_state_alone() -> None:
    bot = bot_of(container(nonce="pagenonce1"))
    session = mwai.MwaiProtocol().refresh(bot, BotState("pagenonce1"))
    assert session is not None
    session.next_request()
    run_step(session, 404, b'{"code":"rest_no_route","message":"No route","data":{"status":404}}')
    assert session.new_state() is None


# --- the replies -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [0, 1, 5, 64])
def test_a_stream_is_the_answer_with_real_usage(chunk: int) -> None:
    events = replied(lines(live("Hel"), live("lo!"), end("Hello!", usage=USAGE)), chunk=chunk)
    assert text(events) == "Hello!"
    assert Usage(25, 9) in events and events[-1] == End("stop")


def test_progress_subtypes_are_not_text_but_content_is() -> None:
    body = lines(
        live("thinking…", subtype="thinking", visibility="collapsed"),
        live("searching", subtype="status"),
        live("Par", subtype="content"),
        live("is"),
        end("Paris"),
    )
    assert text(replied(body)) == "Paris"


def test_the_end_reply_is_the_answer_only_when_nothing_streamed() -> None:
    assert text(replied(lines(end("Whole answer")))) == "Whole answer"
    assert text(replied(lines(live("streamed"), end("different")))) == "streamed"


def test_a_json_reply_is_read_too() -> None:
    body = json.dumps({"success": True, "reply": "Hi!", "usage": USAGE}).encode()
    events = replied(body)
    assert text(events) == "Hi!" and Usage(25, 9) in events


@pytest.mark.parametrize("accuracy", ["none", "estimated"])
def test_usage_the_plugin_did_not_count_is_not_reported_as_real(accuracy: str) -> None:
    usage = {**USAGE, "accuracy": accuracy}
    assert not any(isinstance(e, Usage) for e in replied(lines(live("Hi"), end("Hi", usage=usage))))
    counted = {**USAGE, "accuracy": "tokens"}
    assert Usage(25, 9) in replied(lines(live("Hi"), end("Hi", usage=counted)))


def test_an_unreadable_end_line_is_a_format_error() -> None:
    with pytest.raises(ResponseFormatError, match="Unreadable 'end' line"):
        replied(lines(live("Hi"), {"type": "end", "data": '{"success": tru'}))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            403,
            lines(
                {
                    "type": "end",
                    "data": json.dumps(
                        {"success": False, "message": "no", "new_token": "fresh12345"}
                    ),
                }
            ),
        ),
        (403, json.dumps({"success": False, "message": "no", "new_token": "fresh12345"}).encode()),
    ],
    ids=["end-line", "json"],
)
def test_new_token_of_an_error_reply_becomes_the_nonce(status: int, body: bytes) -> None:
    call = submit()
    call.next_request()
    with pytest.raises(SiteError):
        run_step(call, status, body)
    assert call.new_state() == BotState("fresh12345", (("mwai_session_id", "66f1a2b3c4d5e"),))


def test_new_token_becomes_the_nonce() -> None:
    call = submit()
    call.next_request()
    run_step(call, 200, lines(live("ok"), end("ok", new_token="fresh12345")))
    assert call.new_state() == BotState("fresh12345", (("mwai_session_id", "66f1a2b3c4d5e"),))
    plain = submit()
    plain.next_request()
    run_step(plain, 200, lines(live("ok"), end("ok")))
    assert plain.new_state() is None


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (
            403,
            {"code": "rest_cookie_invalid_nonce", "message": "Cookie check failed"},
            NonceRejectedError,
            "rest_cookie_invalid_nonce",
        ),
        (
            401,
            {"code": "rest_forbidden", "message": "Sorry, you are not allowed"},
            NonceRejectedError,
            "rest_forbidden",
        ),
        (
            403,
            {"code": "rest_cookie_invalid_nonce", "message": "Nonce de cookie inválido"},
            NonceRejectedError,
            "HTTP 403",
        ),
        (
            404,
            {"code": "rest_no_route", "message": "No route"},
            HTTPStatusError,
            "does not run AI Engine",
        ),
        (403, {"success": False, "message": mwai.REJECTED}, SiteError, "rejected"),
        (
            500,
            {"success": False, "message": "Your query has been rejected."},
            SiteError,
            "rejected",
        ),
        (
            500,
            {
                "success": False,
                "message": "You have reached the limit (check the Insights Tab > Limits > Guests).",
            },
            RateLimitError,
            "limit",
        ),
        (
            500,
            {"success": False, "message": "Our chatbot went to sleep. Please try again later."},
            RateLimitError,
            "went to sleep",
        ),
        (400, {"success": False, "message": "Invalid or expired shortcut."}, SiteError, "shortcut"),
        (200, {"success": True, "reply": "  "}, ResponseFormatError, "empty answer"),
    ],
)
def test_json_bodies_map_to_typed_errors(
    status: int, body: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        replied(json.dumps(body).encode(), status)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (mwai.REJECTED, SiteError),
        ("Sorry, your message has been rejected by moderation.", SiteError),
        ("You have reached the limit (check the Insights Tab > Limits > Guests).", RateLimitError),
        ("Our chatbot went to sleep. Please try again later.", RateLimitError),  # site-wide limit
        ("Oops! Something went wrong on the server.", SiteError),
    ],
)
def test_error_lines_before_text_map_to_typed_errors(message: str, error: type[Exception]) -> None:
    # (Sent with HTTP 200, even under a JSON content type: read by content.)
    with pytest.raises(error) as info:
        replied(lines({"type": "error", "data": message}), 200)
    assert not isinstance(info.value, IncompleteAnswerError)


def test_an_error_after_text_is_an_incomplete_answer() -> None:
    with pytest.raises(IncompleteAnswerError, match="upstream died"):
        replied(lines(live("Half"), {"type": "error", "data": "upstream died"}))


def test_a_stream_cut_before_end_is_an_incomplete_answer() -> None:
    with pytest.raises(IncompleteAnswerError, match="incomplete"):
        replied(lines(live("Half an")))


def test_html_where_json_belongs_is_a_format_error() -> None:
    with pytest.raises(ResponseFormatError, match="Expected AI Engine's JSON"):
        replied(b"<html>maintenance</html>")


# --- under the policy (scripted replies, no sockets) ----------------------------------------

SESSION_OK = b'{"success":true,"sessionId":"66f1a2b3c4d5e","restNonce":"sess000001"}'
REFUSED = Scripted(
    403, [b'{"code":"rest_cookie_invalid_nonce","message":"x","data":{"status":403}}']
)


class Site:
    """A scripted AI Engine site: its page, then what each route answers, in turn."""

    def __init__(
        self,
        *,
        page_nonce: str | None = None,
        sessions: Sequence[Scripted] = (),
        submits: Sequence[Scripted] = (),
        session_delay: float = 0.0,
    ) -> None:
        self.page_nonce = page_nonce
        self.sessions, self.submits = list(sessions), list(submits)
        self.session_delay = session_delay
        self.adapter = ScriptedAdapter(self.handle)
        self.count = 0

    def handle(self, request: HttpRequest) -> Scripted:
        if request.step == "page":
            return Scripted(200, [page(container(nonce=self.page_nonce)).encode()])
        if request.step == "session":
            self.count += 1
            if self.sessions:
                return self.sessions.pop(0)
            body = SESSION_OK.replace(b"sess000001", f"sess{self.count:06d}".encode())
            return Scripted(200, [body], delay=self.session_delay)
        if self.submits:
            return self.submits.pop(0)
        return Scripted(200, [lines(live("default"), end("default"))])

    def steps(self) -> list[str]:
        return [request.step for request in self.adapter.requests]

    def nonces(self) -> list[str]:
        return [
            dict(request.headers).get("X-WP-Nonce", "")
            for request in self.adapter.requests
            if request.step == "submit"
        ]


def pipeline(site: Site, **settings: Any) -> Pipeline:
    return Pipeline(Settings(URL, **settings), SiteCache(), site.adapter)


async def ask(pipe: Pipeline, conversation: ChatInput = HELLO) -> str:
    return text([event async for batch in pipe.chat(conversation) for event in batch])


async def test_one_session_for_many_calls_even_at_once() -> None:
    site = Site(session_delay=0.05)
    pipe = pipeline(site)
    assert await asyncio.gather(*(ask(pipe) for _ in range(5))) == ["default"] * 5
    assert await ask(pipe) == "default"
    assert site.steps().count("session") == 1
    assert site.steps().count("submit") == 6
    assert set(site.nonces()) == {"sess000001"}


async def test_a_page_nonce_needs_no_session() -> None:
    site = Site(page_nonce="pagenonce1")
    assert await ask(pipeline(site)) == "default"
    assert site.steps() == ["page", "submit"]
    assert site.nonces() == ["pagenonce1"]


@pytest.mark.parametrize(
    "refusal",
    [REFUSED, Scripted(401, [b'{"code":"rest_forbidden","message":"x","data":{"status":401}}'])],
    ids=["403", "401"],
)
async def test_a_refused_nonce_starts_a_new_session_once(refusal: Scripted) -> None:
    site = Site(submits=[refusal])
    assert await ask(pipeline(site, max_retries=0)) == "default"
    assert site.steps() == ["page", "session", "submit", "session", "submit"]
    assert site.nonces() == ["sess000001", "sess000002"]


async def test_callers_refused_together_share_one_refresh() -> None:
    site = Site(session_delay=0.05)
    pipe = pipeline(site, max_retries=0)
    await ask(pipe)  # the session exists
    site.submits = [REFUSED, REFUSED, REFUSED]
    assert await asyncio.gather(*(ask(pipe) for _ in range(3))) == ["default"] * 3
    assert site.steps().count("session") == 2  # the first, then one for the three refusals
    assert site.nonces()[-3:] == ["sess000002"] * 3


async def test_a_waiter_takes_over_a_cancelled_refresh() -> None:
    # Two calls refused the same nonce share one refresh; the caller running it is
    # cancelled: the other runs it itself and answers (it neither resends the refused
    # nonce nor gives up as if a fresh nonce had been refused).
    site = Site()
    pipe = pipeline(site, max_retries=0)
    await ask(pipe)  # the session exists
    site.submits = [REFUSED, REFUSED]
    site.session_delay = 0.5
    first = asyncio.create_task(ask(pipe))
    second = asyncio.create_task(ask(pipe))
    for _ in range(1000):  # until the refresh's session request is on its way
        if site.steps().count("session") == 2:
            break
        await asyncio.sleep(0.005)
    first.cancel()  # the first refused call leads the refresh
    with pytest.raises(asyncio.CancelledError):
        await first
    site.session_delay = 0.0
    assert await asyncio.wait_for(second, 5) == "default"
    assert site.nonces()[-1] == "sess000003"  # the session the waiter started itself
    assert site.nonces().count("sess000001") == 3  # warm-up + the two refused, no resend


async def test_new_token_is_used_by_the_next_call() -> None:
    site = Site(submits=[Scripted(200, [lines(live("a"), end("a", new_token="rotated001"))])])
    pipe = pipeline(site)
    await ask(pipe)
    await ask(pipe)
    assert site.nonces() == ["sess000001", "rotated001"]
    assert site.steps().count("session") == 1


async def test_no_page_nonce_and_no_session_route_says_so() -> None:
    gone = Scripted(404, [b'{"code":"rest_no_route","message":"No route","data":{"status":404}}'])
    site = Site(sessions=[gone])
    with pytest.raises(NonceNotFoundError, match="no session endpoint"):
        await ask(pipeline(site, max_retries=0))


async def test_a_too_long_message_sends_nothing_but_the_page() -> None:
    site = Site()
    with pytest.raises(InvalidInputError, match="at most 512"):
        await ask(pipeline(site), chat(("user", "x" * 513)))
    assert "submit" not in site.steps()
    assert "session" not in site.steps()  # a guest's session is not started for it either


@pytest.mark.parametrize(
    ("rest_url", "endpoint"),
    [
        ("/wp-json", "https://example.com/wp-json/mwai-ui/v1/chats/submit"),
        (
            "/index.php?rest_route=",
            "https://example.com/index.php?rest_route=/mwai-ui/v1/chats/submit",
        ),
        ("//cdn.example/wp-json", "https://cdn.example/wp-json/mwai-ui/v1/chats/submit"),
    ],
)
def test_a_relative_rest_url_is_resolved_against_the_page(rest_url: str, endpoint: str) -> None:
    # A page cache or CDN may print restUrl relative; a browser resolves it against the
    # page (whether the result is on the page's site is the trust rule's to say).
    bot = bot_of(container(rest_url=rest_url))
    assert bot.endpoint == endpoint
    assert bot.facts["rest_url"] + mwai.SESSION_ROUTE == endpoint.replace(
        mwai.SUBMIT_ROUTE, mwai.SESSION_ROUTE
    )
