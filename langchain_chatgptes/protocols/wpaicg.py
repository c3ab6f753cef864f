"""The legacy AI Power (wpaicg) chat protocol, plugin versions up to 2.2.

The page shows a ``div.wpaicg-chat-shortcode`` chat box (``data-nonce``, ``data-post-id``,
``data-url``, ``data-bot-id``, ``data-openai_stream_nav``) and a ``wpaicgParams`` script
(``ajax_url``, ``search_nonce``). One call is one form POST of
``action=wpaicg_chat_shortcode_message`` to ``ajax_url``; the reply is the plugin's JSON or
OpenAI-style server-sent events. Every constant of the plugin lives here; see
``shared/reference/chatgptes-protocol.md`` for where each fact comes from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from langchain_chatgptes._conversation import ChatInput, flatten
from langchain_chatgptes.errors import (
    ConsentRequiredError,
    NonceRejectedError,
    RateLimitError,
    ResponseFormatError,
    SiteError,
)
from langchain_chatgptes.protocols._base import (
    BodyReader,
    Bot,
    BotState,
    Call,
    End,
    Event,
    Findings,
    HttpRequest,
    OneRequestCall,
    ReplyHead,
    SiteProtocol,
    TextDelta,
)
from langchain_chatgptes.protocols._common import (
    SniffedBody,
    browser_headers,
    check_status,
    empty_answer,
    ended_early,
    events_until,
    excerpt,
    is_no_handler,
    missing,
    no_handler,
    not_json,
    resolve,
    scan_bots,
    text_of,
)
from langchain_chatgptes.protocols._html import Tag, script_object
from langchain_chatgptes.protocols._sse import EXCERPT, SSEEvent, SSEParser, looks_like_sse

# --- constants of the plugin ---------------------------------------------------------------

NAME = "wpaicg"

AJAX_PATH = "/wp-admin/admin-ajax.php"
"""The WordPress Ajax endpoint, from the site root (used when the page does not say)."""

ACTION = "wpaicg_chat_shortcode_message"
"""The plugin action of the shortcode chat box."""

CHAT_BOX_CLASS = "wpaicg-chat-shortcode"
"""The class of the shortcode chat box's ``div``."""

PARAMS_VARIABLE = "wpaicgParams"
"""The script object (``wp_localize_script``) holding ``ajax_url`` and ``search_nonce``."""

CHATBOT_IDENTITY = "shortcode"

EMPTY_HISTORY = "[]"
"""``wpaicg_chat_history``: the plugin strips every backslash before ``json_decode``, so only
JSON without escapes survives; the whole conversation travels in ``message`` instead."""

NONCE_EXPIRED_TEXT = "The link you followed has expired."
"""Body of the HTTP 403 that WordPress' ``check_admin_referer`` sends (plugin >= 1.8.91)."""

NONCE_FAILED_MSG = "Nonce verification failed"
"""``msg`` of the HTTP 200 error JSON of plugin versions <= 1.8.90."""

CHECKBOX_MESSAGE = "Du musst das Kästchen anklicken!"
"""chatgpt.es' own consent-checkbox message, returned as the answer text."""

TOKEN_LIMIT_KEY = "tokenLimitReached"  # noqa: S105 (a JSON key, not a password)
FLAG_KEYS = ("ipBanned", "messageFlagged", TOKEN_LIMIT_KEY)
"""Keys of the plugin's flag objects (JSON reply or ``data:`` event)."""

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")

MISSING_NONCE = "nonce"
MISSING_POST_ID = "post id"
_MISSING_WHERE = {
    MISSING_NONCE: "the nonce (data-nonce or wpaicgParams.search_nonce)",
    MISSING_POST_ID: "the post id (data-post-id)",
}


def describe_missing(missing: tuple[str, ...]) -> str:
    """``("nonce", "post id")`` in words, naming where each was looked for."""
    return " and ".join(_MISSING_WHERE.get(item, item) for item in missing)


# --- the page -------------------------------------------------------------------------------


def _token(value: Any) -> str:
    return value.strip() if isinstance(value, str) and _TOKEN.fullmatch(value.strip()) else ""


def _is_chat_box(attrs: Mapping[str, str], classes: frozenset[str]) -> bool:
    # The plugin's class; or, where a theme renamed it, a tag carrying its data attributes.
    return CHAT_BOX_CLASS in classes or ("data-nonce" in attrs and "data-post-id" in attrs)


def find_bots(html: str, page_url: str) -> Findings:
    """Every legacy chat box on the page, in document order.

    A box is found by its class (or its data attributes), whatever its attribute order,
    quoting or minification; ``wpaicgParams.search_nonce`` stands in for a missing or
    stripped ``data-nonce`` and ``wpaicgParams.ajax_url`` says where to post.
    """
    params = script_object(html, PARAMS_VARIABLE) or {}
    search_nonce = _token(params.get("search_nonce"))
    ajax_url = text_of(params.get("ajax_url")) or AJAX_PATH
    endpoint = resolve(page_url, ajax_url)
    headers = post_headers(page_url)

    def read(tag: Tag) -> Bot | tuple[str, ...] | None:
        if not _is_chat_box(tag.attrs, tag.classes):
            return None
        attrs = tag.attrs
        nonce = _token(attrs.get("data-nonce")) or search_nonce
        post_id = attrs.get("data-post-id", "").strip()
        lacks = missing((MISSING_NONCE, nonce), (MISSING_POST_ID, post_id.isdigit()))
        if lacks:
            return lacks
        bot_id = attrs.get("data-bot-id", "").strip()
        return Bot(
            protocol=NAME,
            bot_id=bot_id if bot_id.isdigit() else "0",
            page_url=page_url,
            endpoint=endpoint,
            nonce=nonce,
            facts={
                "post_id": post_id,
                "url": attrs.get("data-url", "").strip() or page_url.rstrip("/"),
                "streams": attrs.get("data-openai_stream_nav", "").strip() == "1",
                "headers": headers,
            },
            position=tag.start,
        )

    return scan_bots(html, read, unique=False)


# --- the request ----------------------------------------------------------------------------


def post_headers(page_url: str) -> tuple[tuple[str, str], ...]:
    """The headers the chat box's script adds to its POST (see ``browser_headers``)."""
    return browser_headers(page_url, "*/*", ("X-Requested-With", "XMLHttpRequest"))


def build_form(bot: Bot, nonce: str, message: str, client_id: str) -> tuple[tuple[str, str], ...]:
    """The form fields of one chat POST, in the order a browser sends them.

    Args:
        bot: The chat box read from the page.
        nonce: The nonce to send.
        message: The whole prompt text (see ``_conversation.flatten``).
        client_id: ``wpaicg_chat_client_id``, stable per model instance like one browser.
    """
    return (
        ("_wpnonce", nonce),
        ("post_id", bot.facts["post_id"]),
        ("url", bot.facts["url"]),
        ("action", ACTION),
        ("message", message),
        ("bot_id", bot.bot_id),
        ("chatbot_identity", CHATBOT_IDENTITY),
        ("wpaicg_chat_client_id", client_id),
        ("wpaicg_chat_history", EMPTY_HISTORY),
    )


class _Call(OneRequestCall):
    """One POST; its reply is the answer."""

    def __init__(self, bot: Bot, state: BotState, chat: ChatInput) -> None:
        self.sent_text = flatten(chat)
        self._request = HttpRequest(
            "POST",
            bot.endpoint,
            headers=bot.facts["headers"],
            form=build_form(bot, state.nonce, self.sent_text, chat.visitor.client_id),
            streamed=bool(bot.facts["streams"]),
            step="chat",
        )

    def request(self) -> HttpRequest:
        return self._request

    def reader(self) -> BodyReader:
        return ReplyReader()


class WpaicgProtocol(SiteProtocol):
    """The legacy AI Power protocol (``wpaicg_chat_shortcode_message``, plugin <= 2.2)."""

    name = NAME
    label = "AI Power chat box"
    looked_for = "the AI Power chat box (div.wpaicg-chat-shortcode with data-post-id and a nonce)"
    hints = (
        (
            "[wpaicg_chatgpt",
            "a legacy AI Power shortcode left as text (since 2.3 it is not rendered)",
        ),
    )
    step_labels = (("chat", "send prompt"),)

    def find_bots(self, html: str, page_url: str) -> Findings:
        """See :func:`find_bots`."""
        return find_bots(html, page_url)

    def start(self, bot: Bot, state: BotState, chat: ChatInput) -> Call:
        """One POST with the conversation flattened into ``message``."""
        return _Call(bot, state, chat)

    def describe_missing(self, missing: tuple[str, ...]) -> str:
        """See :func:`describe_missing`."""
        return describe_missing(missing)

    def describe(self, bot: Bot) -> str:
        """The box's nonce, post id, ``data-url`` and stream mode."""
        streaming = "on" if bot.facts.get("streams") else "off"
        return (
            f"{NAME} bot {bot.bot_id}: nonce {bot.nonce}, post id {bot.facts.get('post_id')}, "
            f"url {bot.facts.get('url')}, stream mode: {streaming}"
        )


# --- the reply ------------------------------------------------------------------------------


def _raise_for_flags(obj: Mapping[str, Any], status: int | None) -> None:
    """Raise for the plugin's error, flag and token-limit objects; return otherwise."""
    msg = obj.get("msg")
    msg_text = msg if isinstance(msg, str) and msg else None
    if obj.get(TOKEN_LIMIT_KEY):
        raise RateLimitError(
            f"The site's token limit was reached: {msg_text or 'tokenLimitReached'}",
            status_code=status,
        )
    for key in FLAG_KEYS:
        if obj.get(key):
            raise SiteError(msg_text or key, status_code=status)
    error = obj.get("error")
    if isinstance(error, Mapping):
        message = error.get("message")
        raise SiteError(str(message or error), status_code=status)
    if obj.get("status") == "error":
        if msg_text == NONCE_FAILED_MSG:
            raise NonceRejectedError(
                f"The site rejected the nonce ({NONCE_FAILED_MSG!r}).", status_code=status
            )
        raise SiteError(msg_text or "unknown error (no message)", status_code=status)


def _check_answer(text: str, status: int | None) -> str:
    # The consent error is the site's reply being that sentence, not an answer quoting it.
    if text.strip() == CHECKBOX_MESSAGE:
        raise ConsentRequiredError(text, status_code=status)
    if not text.strip():
        raise empty_answer(status)
    return text


def check_chat_status(head: ReplyHead, body: bytes | bytearray) -> None:
    """Raise the error a non-2xx chat reply stands for; return for 2xx.

    Raises:
        NonceRejectedError: WordPress refused the nonce (HTTP 403 "link expired" or ``-1``).
        BlockedError: An anti-bot challenge answered.
        RateLimitError: HTTP 429.
        HTTPStatusError: Any other non-2xx status.
    """
    if not 200 <= head.status < 300:
        text = bytes(body[:2000]).decode("utf-8", "replace")
        if head.status == 403 and (NONCE_EXPIRED_TEXT in text or text.strip() == "-1"):
            raise NonceRejectedError(
                f"The site rejected the nonce (HTTP 403: {excerpt(text)!r}).",
                status_code=head.status,
            )
        if is_no_handler(head, body):
            raise no_handler(ACTION, "the AI Power chat plugin (2.2 or earlier)")
    check_status(head, body)


def decode_json_reply(body: bytes | bytearray, *, status: int = 200) -> str:
    """Read the plugin's JSON reply and return the answer text.

    Raises:
        SiteError: The site's error JSON (``{"status": "error", "msg": ...}``) or a flag.
        ConsentRequiredError: The checkbox message came back as the answer.
        NonceRejectedError: The legacy "Nonce verification failed" error.
        RateLimitError: The token-limit object.
        ResponseFormatError: Not JSON, not the plugin's shape, or an empty answer.
    """
    try:
        # Text first and the bytes dropped (the caller's are emptied too), so a large answer
        # is held at most twice while it is parsed.
        text = body.decode("utf-8")
        if isinstance(body, bytearray):
            body.clear()
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        sample = bytes(body[:2000]) if body else text[:2000].encode()
        raise not_json(sample, status, "the plugin's JSON reply") from exc
    if not isinstance(obj, dict):
        raise ResponseFormatError(
            f"Expected a JSON object but got {type(obj).__name__}: {excerpt(str(obj))!r}",
            status_code=status,
        )
    _raise_for_flags(obj, status)
    data = obj.get("data")
    if obj.get("status") != "success" or not isinstance(data, str):
        raise ResponseFormatError(
            f"Unexpected reply format (keys: {sorted(obj)}): {excerpt(json.dumps(obj))!r}",
            status_code=status,
        )
    return _check_answer(data, status)


class ReplyReader(BodyReader):
    """Reads one chat reply: an event stream as it arrives, anything else whole.

    The first bytes tell which (``SniffedBody``): a body that opens with an SSE field is
    decoded event by event; the plugin's JSON or an error page is collected and judged
    with its status.
    """

    def __init__(self) -> None:
        """Start reading a reply."""
        self._body = SniffedBody(lambda prefix: looks_like_sse(prefix))
        self._stream = StreamDecoder()

    def feed(self, data: bytes) -> list[Event]:
        """Consume the next bytes; return the events they complete."""
        parsed = self._body.feed(data)
        return self._stream.events(parsed) if parsed else []

    def finish(self, head: ReplyHead) -> list[Event]:
        """The body is complete: return the remaining events or raise what it means."""
        if self._body.is_stream:
            check_chat_status(head, b"")
            return self._stream.end(self._body.finish())
        body = self._body.whole()
        check_chat_status(head, body)
        return [TextDelta(decode_json_reply(body, status=head.status)), End("stop")]


class StreamDecoder:
    """The plugin's event stream, as :data:`Event` s.

    Understands OpenAI ``chat.completion.chunk`` deltas, ``[DONE]``, the legacy JSON object
    that plugin 1.8.79-1.8.85 appends after ``[DONE]``, error messages sent as word events
    (``event: message``) ending in a ``finish_reason`` or ``[LIMITED]``, and the plugin's flag
    objects (``ipBanned``, ``messageFlagged``, ``tokenLimitReached``). Errors are raised as the
    package's exceptions, at the event that reveals them.
    """

    def __init__(self) -> None:
        """Start decoding a stream.

        :meth:`feed` / :meth:`finish` parse bytes themselves; :meth:`events` / :meth:`end`
        take events parsed elsewhere.
        """
        self._parser = SSEParser()
        self._error_words: list[str] = []
        self._finish_reason: str | None = None
        self._done = False
        self._text_seen = False
        # Text held while the answer so far could still be the consent sentence, which the
        # site may stream like an answer: only the whole reply being it is the error.
        self._held: str | None = ""

    def feed(self, chunk: bytes) -> list[Event]:
        """Consume bytes and return the events completed by them."""
        return self.events(self._parser.feed(chunk))

    def finish(self) -> list[Event]:
        """Signal the end of the body; return the last events or raise what it means."""
        return self.end(self._parser.finish())

    def events(self, parsed: list[SSEEvent]) -> list[Event]:
        """The events of parsed stream items (none once the answer is complete)."""
        # (after [DONE]: e.g. the legacy JSON object that follows it; the answer is complete)
        return events_until(parsed, self._event, lambda: self._done)

    def end(self, parsed: list[SSEEvent]) -> list[Event]:
        """The stream's last items are ``parsed``: the last events, or what the end means."""
        events: list[Event] = []
        if not self._done:
            events = self.events(parsed)
            if not self._done and self._finish_reason and not self._error_words:
                events.extend(self._end(self._finish_reason))
        if self._error_words:
            raise SiteError("".join(self._error_words).strip() or "unknown error (empty message)")
        if not self._done:
            raise ended_early("[DONE] or finish_reason", text_seen=self._text_seen)
        if not self._text_seen:
            raise empty_answer(stream=True)
        return events

    def _event(self, item: SSEEvent) -> list[Event]:
        payload = item.data.strip()
        if item.name is None and not payload.startswith("{"):
            # A bare JSON object outside SSE framing is what PHP prints after a stream.
            raise ResponseFormatError(f"Unexpected line in the event stream: {payload[:EXCERPT]!r}")
        if payload == "[DONE]":
            return self._end(self._finish_reason or "stop")
        if payload == "[LIMITED]":
            self._done = True
            raise SiteError(
                "".join(self._error_words).strip() or "the site stopped the answer ([LIMITED])"
            )
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise ResponseFormatError(
                f"Unreadable event in the stream: {payload[:EXCERPT]!r}"
            ) from exc
        if not isinstance(obj, dict):
            raise ResponseFormatError(f"Unexpected event in the stream: {payload[:EXCERPT]!r}")
        _raise_for_flags(obj, None)
        if "status" in obj and "data" in obj:
            return self._legacy_object(obj)
        return self._chunk(obj, is_error_word=(item.name == "message" and "object" not in obj))

    def _legacy_object(self, obj: Mapping[str, Any]) -> list[Event]:
        # The whole answer as one JSON object; only used when no delta came before it.
        data = obj.get("data")
        if self._text_seen or not isinstance(data, str):
            return self._end(self._finish_reason or "stop")
        text = _check_answer(data, None)
        self._text_seen = True
        return [TextDelta(text), *self._end("stop")]

    def _chunk(self, obj: Mapping[str, Any], *, is_error_word: bool) -> list[Event]:
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise ResponseFormatError(f"Unexpected event in the stream: {json.dumps(obj)[:200]!r}")
        events: list[Event] = []
        for choice in choices[:1]:
            if not isinstance(choice, Mapping):
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, Mapping) else None
            if isinstance(content, str) and content:
                if is_error_word:
                    self._error_words.append(content)
                else:
                    self._text_seen = self._text_seen or not content.isspace()
                    events.extend(self._text(content))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish_reason = reason
                if self._error_words:
                    self._done = True
                    raise SiteError("".join(self._error_words).strip())
        return events

    def _text(self, content: str) -> list[Event]:
        if self._held is None:
            return [TextDelta(content)]
        held = self._held + content
        if CHECKBOX_MESSAGE.startswith(held.strip()):
            self._held = held
            return []
        self._held = None
        return [TextDelta(held)]

    def _end(self, reason: str) -> list[Event]:
        self._done = True
        if self._error_words:
            raise SiteError("".join(self._error_words).strip())
        if not self._text_seen:
            raise empty_answer(stream=True)
        held, self._held = self._held, None
        if held and held.strip() == CHECKBOX_MESSAGE:
            raise ConsentRequiredError(held)
        return [TextDelta(held), End(reason)] if held else [End(reason)]
