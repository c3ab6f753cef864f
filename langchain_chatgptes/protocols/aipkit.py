"""The current AI Power protocol ("AIPKit", the plugin's 2.3 rewrite, now "AI Puffer").

The page shows a bot as ``div.aipkit_chat_container`` (inline) or ``div.aipkit_popup_wrapper``
(popup) whose ``data-config`` JSON holds ``botId``, ``ajaxUrl``, ``nonce`` and ``postId``.
One call is two requests: ``POST ajaxUrl action=aipkit_cache_sse_message`` stores the
message and returns a ``cache_key``; ``GET ajaxUrl?action=aipkit_frontend_chat_stream&...``
streams the answer as named server-sent events (``message_start``, unnamed ``{"delta"}``
text, ``status``, ``citations``, ``warning``, ``error``, ``done``). Bots of plugin 2.3-2.4.0
with streaming off answer ``action=aipkit_frontend_chat_message`` with JSON instead.
Every constant of the plugin lives here; ``shared/reference/wp-chat-plugins.md`` Part A
says where each fact comes from.
"""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar
from urllib.parse import urlencode

from langchain_chatgptes._conversation import ChatInput, flatten
from langchain_chatgptes.errors import (
    IncompleteAnswerError,
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
    Fact,
    Findings,
    HttpRequest,
    Metadata,
    OneRequestCall,
    ReplyHead,
    SiteProtocol,
    StagedCall,
    TextDelta,
)
from langchain_chatgptes.protocols._common import (
    SniffedBody,
    WholeBodyReader,
    browser_headers,
    check_status,
    empty_answer,
    ended_early,
    events_until,
    excerpt,
    is_no_handler,
    json_object,
    missing,
    no_handler,
    not_json,
    resolve,
    scan_bots,
    text_of,
)
from langchain_chatgptes.protocols._html import Tag, json_attribute
from langchain_chatgptes.protocols._sse import SSEEvent, looks_like_sse

# --- constants of the plugin (wp-chat-plugins.md, Part A) -----------------------------------

NAME = "aipkit"

CONTAINER_CLASS = "aipkit_chat_container"
"""The inline bot's ``div`` (A.1); inside a popup it carries no ``data-config``."""

POPUP_CLASS = "aipkit_popup_wrapper"
"""The popup bot's wrapper, which carries ``data-config`` (A.1)."""

CACHE_ACTION = "aipkit_cache_sse_message"
"""Step 1: store the message, get a ``cache_key`` (A.3.2)."""

STREAM_ACTION = "aipkit_frontend_chat_stream"
"""Step 2: the answer as server-sent events (A.3.3)."""

MESSAGE_ACTION = "aipkit_frontend_chat_message"
"""Plugin 2.3-2.4.0, streaming off: one JSON answer (A.3.5)."""

NONCE_ACTION = "aipkit_get_frontend_chat_nonce"
"""A fresh nonce without a page (>= 2.3.41, A.2)."""

NONCE_FAILURE_CODE = "nonce_failure_cache_sse"
"""``data.code`` of the cache POST's HTTP 403 when the nonce is refused (A.4)."""

NOT_PUBLIC_CODES = ("embed_not_available", "cors_denied")
"""Cross-origin refusals of the cache and nonce endpoints (A.4)."""

STREAM_NONCE_ERRORS = (
    "Security check failed. Please refresh the page and try again.",
    "Security check failed (nonce).",
)
"""The stream's ``error`` for a refused nonce (2.3.20+, and 2.3.0-2.3.19) (A.3.3, A.6)."""

CACHE_GONE_ERRORS = (
    "Message cache key is missing.",
    "Message not found in cache.",
    "Cached message has expired.",
)
"""The stream's ``error`` for a missing, used or expired ``cache_key`` (A.3.3)."""

NOT_PUBLIC_ERROR = "This domain is not permitted to access the chatbot."
QUOTA_ERRORS = ("Access disabled for guests.", "You have reached your quota for this period.")
"""Quota errors (the second is the default of an overridable message; ``quota_notice``
marks it in any wording, >= 2.4.5) (A.3.3)."""

_ID_CHARS = string.ascii_lowercase + string.digits
_PLUGIN = "the AIPKit chat plugin (AI Power 2.3 or later)"


def describe_missing(missing: tuple[str, ...]) -> str:
    """What an AIPKit bot lacks, in words."""
    return " and ".join(f"its {item}" for item in missing) + " (in data-config)"


# --- the page -------------------------------------------------------------------------------


def _read_box(tag: Tag, page_url: str) -> Bot | tuple[str, ...] | None:
    """One tag as an AIPKit bot (a popup's config is on its wrapper)."""
    if "data-config" not in tag.attrs or not tag.classes & {CONTAINER_CLASS, POPUP_CLASS}:
        return None
    config = json_attribute(tag.attrs["data-config"])
    if not isinstance(config, dict):
        return ("configuration",)
    bot_id = config.get("botId")
    bot_id = str(bot_id) if isinstance(bot_id, int | str) and str(bot_id).isdigit() else ""
    ajax_url, nonce = text_of(config.get("ajaxUrl")), text_of(config.get("nonce"))
    lacks = missing(("bot id", bot_id), ("ajaxUrl", ajax_url), ("nonce", nonce))
    if lacks:
        return lacks
    post_id = config.get("postId")
    return Bot(
        protocol=NAME,
        bot_id=bot_id,
        page_url=page_url,
        endpoint=resolve(page_url, ajax_url),
        nonce=nonce,
        inline=POPUP_CLASS not in tag.classes,
        facts={
            "post_id": str(post_id) if isinstance(post_id, int) and post_id > 0 else "",
            "streams": config.get("streamEnabled", True) is not False,
            "name": text_of(config.get("headerName")),
        },
        position=tag.start,
    )


def find_bots(html: str, page_url: str) -> Findings:
    """Every AIPKit bot on the page, in document order (each id once)."""
    return scan_bots(html, lambda tag: _read_box(tag, page_url))


# --- the requests ---------------------------------------------------------------------------


def _headers(bot: Bot, accept: str) -> tuple[tuple[str, str], ...]:
    return browser_headers(bot.page_url, accept)


def cache_form(bot: Bot, nonce: str, message: str) -> tuple[tuple[str, str], ...]:
    """The fields of the cache POST, as the plugin's script sends them (A.3.2)."""
    client_message_id = f"aipkit-client-msg-{bot.bot_id}-{int(time.time() * 1000)}-" + "".join(
        secrets.choice(_ID_CHARS) for _ in range(5)
    )
    return (
        ("action", CACHE_ACTION),
        ("_ajax_nonce", nonce),
        ("message", message),
        ("bot_id", bot.bot_id),
        ("user_client_message_id", client_message_id),
    )


def stream_query(
    bot: Bot, nonce: str, cache_key: str, session_id: str, conversation: str
) -> tuple[tuple[str, str], ...]:
    """The stream GET's query, in the order of the plugin's script (A.3.3)."""
    query = [
        ("action", STREAM_ACTION),
        ("cache_key", cache_key),
        ("bot_id", bot.bot_id),
        ("session_id", session_id),
        ("conversation_uuid", conversation),
    ]
    if bot.facts["post_id"]:
        query.append(("post_id", bot.facts["post_id"]))
    query += [("_ts", str(int(time.time() * 1000))), ("_ajax_nonce", nonce)]
    return tuple(query)


# --- what replies teach a call --------------------------------------------------------------


@dataclass(frozen=True)
class CacheKey(Fact):
    """The cache POST stored the message under ``key``."""

    key: str


@dataclass(frozen=True)
class KeyGone(Fact):
    """The stream no longer found the cached message (used up, expired): ``message``."""

    message: str


@dataclass(frozen=True)
class Answered(Fact):
    """The answer is complete (``done``, or the JSON answer)."""


@dataclass(frozen=True)
class FreshNonce(Fact):
    """The plugin's nonce action handed out ``nonce``."""

    nonce: str


class Stage(Enum):
    """Where a call stands."""

    CACHE = "cache POST"
    STREAM = "stream GET"
    MESSAGE = "message POST (2.3-2.4.0, streaming off)"
    DONE = "done"


class _Call(StagedCall):
    """A cache POST, then the stream GET (once more from the POST if the key was gone)."""

    TRANSITIONS: ClassVar[Mapping[tuple[Enum, type[Fact]], Enum]] = {
        (Stage.CACHE, CacheKey): Stage.STREAM,
        (Stage.STREAM, KeyGone): Stage.CACHE,
        (Stage.STREAM, Answered): Stage.DONE,
        (Stage.MESSAGE, Answered): Stage.DONE,
    }
    DONE = Stage.DONE

    def __init__(self, bot: Bot, state: BotState, chat: ChatInput) -> None:
        # The same one text as the legacy box: chatgpt.es's preamble, then the conversation.
        self.sent_text = flatten(chat)
        self.bot, self.nonce, self.chat = bot, state.nonce, chat
        # The plugin keeps history per conversation, and every call sends the whole
        # conversation: a fresh conversation each time, so nothing is doubled (A.5).
        self.conversation = str(uuid.uuid4())
        self.stage = Stage.CACHE if bot.facts["streams"] else Stage.MESSAGE
        self.cache_key = ""
        self.key_retries = 1
        self.failure: SiteError | None = None  # raised when the next request is asked for

    def apply(self, fact: Fact) -> None:
        if isinstance(fact, CacheKey):
            self.cache_key = fact.key
        elif isinstance(fact, KeyGone):
            if self.key_retries == 0:  # gone again: the site's message is the error
                self.failure = SiteError(fact.message)
            self.key_retries -= 1  # (else a new cache POST, then the stream again)

    def next_request(self) -> HttpRequest | None:
        if self.failure is not None:
            raise self.failure
        return super().next_request()

    def request_for(self, stage: Stage) -> HttpRequest:
        bot = self.bot
        if stage is Stage.CACHE:
            form = cache_form(bot, self.nonce, self.sent_text)
            return HttpRequest(
                "POST", bot.endpoint, _headers(bot, "*/*"), form=form, step="cache POST"
            )
        if stage is Stage.STREAM:
            query = stream_query(
                bot, self.nonce, self.cache_key, self.chat.visitor.session_id, self.conversation
            )
            url = f"{bot.endpoint}{'&' if '?' in bot.endpoint else '?'}{urlencode(query)}"
            return HttpRequest(
                "GET", url, _headers(bot, "text/event-stream"), streamed=True, step="stream"
            )
        form = (
            ("action", MESSAGE_ACTION),
            ("_ajax_nonce", self.nonce),
            ("bot_id", bot.bot_id),
            ("session_id", self.chat.visitor.session_id),
            ("conversation_uuid", self.conversation),
            ("post_id", bot.facts["post_id"] or "0"),
            ("message", self.sent_text),
        )
        return HttpRequest("POST", bot.endpoint, _headers(bot, "*/*"), form=form, step="message")

    def reader_for(self, stage: Stage) -> BodyReader:
        if stage is Stage.CACHE:
            return _CacheReader()
        if stage is Stage.STREAM:
            return _StreamReader()
        return _MessageReader()


class _RefreshCall(OneRequestCall):
    """``aipkit_get_frontend_chat_nonce``: a fresh nonce, or none (then the page is read)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.fresh: str | None = None

    def request(self) -> HttpRequest:
        form = (("action", NONCE_ACTION), ("bot_id", self.bot.bot_id))
        return HttpRequest(
            "POST", self.bot.endpoint, _headers(self.bot, "*/*"), form=form, step="nonce"
        )

    def reader(self) -> BodyReader:
        return _NonceReader()

    def apply(self, fact: Fact) -> None:
        if isinstance(fact, FreshNonce):
            self.fresh = fact.nonce
        else:
            super().apply(fact)

    def new_state(self) -> BotState | None:
        return BotState(nonce=self.fresh) if self.fresh else None


class AipkitProtocol(SiteProtocol):
    """AIPKit (AI Power / AI Puffer >= 2.3): cache POST, then an event stream."""

    name = NAME
    label = "AIPKit bot"
    looked_for = (
        "an AIPKit bot (div.aipkit_chat_container or div.aipkit_popup_wrapper with data-config)"
    )
    hints = (
        ("[aipkit_chatbot", "an AIPKit shortcode left as text (the plugin is off or updating)"),
        ("embed-bootstrap.bundle.js", "an AIPKit bot embedded from another site (not supported)"),
        ("public-main.bundle.js", "AIPKit's script but no bot on this page"),
    )
    # A 2.3+ site no longer answers the legacy action: a legacy box beside an AIPKit bot is
    # stale markup (wp-chat-plugins.md C.1 step 5).
    supersedes = ("wpaicg",)
    step_labels = (("message", "send prompt"),)
    refresh_step = "nonce"

    def find_bots(self, html: str, page_url: str) -> Findings:
        """See :func:`find_bots`."""
        return find_bots(html, page_url)

    def start(self, bot: Bot, state: BotState, chat: ChatInput) -> Call:
        """The cache POST and the stream GET (or the 2.3-2.4.0 JSON call)."""
        return _Call(bot, state, chat)

    def refresh(self, bot: Bot, state: BotState) -> Call | None:
        """Ask the plugin's nonce endpoint; without it, the page is read again."""
        return _RefreshCall(bot)

    def describe_missing(self, missing: tuple[str, ...]) -> str:
        """See :func:`describe_missing`."""
        return describe_missing(missing)

    def describe(self, bot: Bot) -> str:
        """The bot's name, layout, nonce, endpoint and stream mode."""
        name = f" ({bot.facts['name']!r})" if bot.facts.get("name") else ""
        kind = "inline" if bot.inline else "popup"
        streaming = "on" if bot.facts.get("streams") else "off"
        return (
            f"{NAME} bot {bot.bot_id}{name}, {kind}: nonce {bot.nonce}, endpoint "
            f"{bot.endpoint}, streaming: {streaming}"
        )

    def planned_steps(self, bot: Bot) -> tuple[str, ...]:
        """The cache POST and the stream, or one message POST."""
        return ("cache POST", "stream") if bot.facts["streams"] else ("send prompt",)


# --- the replies ----------------------------------------------------------------------------


def _error_data(obj: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(message, code)`` of a ``wp_send_json_error`` body."""
    data = obj.get("data") if obj else None
    if not isinstance(data, Mapping):
        return "", ""
    return text_of(data.get("message")), text_of(data.get("code"))


def _not_public(message: str) -> SiteError:
    return SiteError(
        f"{message or 'Refused'} (the bot is not public: its site does not let other "
        "origins use it)"
    )


def _check_json_status(head: ReplyHead, body: bytes | bytearray, action: str) -> dict[str, Any]:
    """The JSON of a cache/message/nonce reply, or the error its status and body mean."""
    obj = json_object(body)
    message, code = _error_data(obj)
    if code == NONCE_FAILURE_CODE or (head.status == 403 and message in STREAM_NONCE_ERRORS):
        raise NonceRejectedError(f"The site rejected the nonce ({message!r}).", status_code=403)
    if code in NOT_PUBLIC_CODES:
        raise _not_public(message)
    if is_no_handler(head, body):
        raise no_handler(action, _PLUGIN)
    if not 200 <= head.status < 300 and not (400 <= head.status < 500 and message):
        check_status(head, body)
    if obj is None:
        raise not_json(body, head.status, "the plugin's JSON reply")
    if obj.get("success") is not True:
        raise SiteError(message or "unknown error (no message)", status_code=head.status)
    return obj


class _CacheReader(WholeBodyReader):
    def __init__(self) -> None:
        super().__init__()
        self._key = ""

    def read(self, head: ReplyHead, body: bytearray) -> list[Event]:
        obj = _check_json_status(head, body, CACHE_ACTION)
        data = obj.get("data")
        key = text_of(data.get("cache_key")) if isinstance(data, Mapping) else ""
        if not key:
            raise ResponseFormatError(
                f"The cache POST returned no cache_key: {excerpt(json.dumps(obj))!r}"
            )
        self._key = key
        return []

    def learned(self) -> Sequence[Fact]:
        return (CacheKey(self._key),) if self._key else ()


class _MessageReader(WholeBodyReader):
    def read(self, head: ReplyHead, body: bytearray) -> list[Event]:
        obj = _check_json_status(head, body, MESSAGE_ACTION)
        data = obj.get("data")
        data = data if isinstance(data, Mapping) else {}
        reply = data.get("reply")
        if not isinstance(reply, str) or not reply.strip():
            raise empty_answer()
        events: list[Event] = [TextDelta(reply)]
        extras = {_KEYS[k]: data[k] for k in _EXTRAS if k in data}
        if extras:
            events.append(Metadata(extras))
        return [*events, End("stop")]

    def learned(self) -> Sequence[Fact]:
        return (Answered(),)


class _NonceReader(WholeBodyReader):
    def __init__(self) -> None:
        super().__init__()
        self._nonce = ""

    def read(self, head: ReplyHead, body: bytearray) -> list[Event]:
        # Anything but a fresh nonce (an older plugin without the endpoint, a refusal)
        # leaves the state alone: the page is then read again.
        obj = json_object(body) if 200 <= head.status < 300 else None
        data = obj.get("data") if obj and obj.get("success") is True else None
        self._nonce = text_of(data.get("nonce")) if isinstance(data, Mapping) else ""
        return []

    def learned(self) -> Sequence[Fact]:
        return (FreshNonce(self._nonce),) if self._nonce else ()


# Named events and reply keys that carry metadata, and their response_metadata keys (every
# site fact under "site_": site_citations, site_response_id...).
_ID_EVENTS = ("openai_response_id", "google_interaction_id")
_EXTRAS = ("citations", "grounding_metadata")
_KEYS = {
    "citations": "site_citations",
    "grounding_metadata": "site_grounding_metadata",
    "openai_response_id": "site_response_id",
    "google_interaction_id": "site_interaction_id",
}


class _StreamReader(BodyReader):
    """The plugin's event stream; a JSON or HTML body is judged at the end."""

    def __init__(self) -> None:
        self._body = SniffedBody(lambda prefix: looks_like_sse(prefix))
        self._text_seen = False
        self._ended = False  # `done`, or the cache key gone (the call starts again)
        self._learned: tuple[Fact, ...] = ()
        self._warnings: list[str] = []

    def feed(self, data: bytes) -> list[Event]:
        parsed = self._body.feed(data)
        return events_until(parsed, self._event, lambda: self._ended) if parsed else []

    def finish(self, head: ReplyHead) -> list[Event]:
        if not self._body.is_stream:
            body = self._body.whole()
            obj = _check_json_status(head, body, STREAM_ACTION)  # raises for what it means
            raise ResponseFormatError(
                f"Expected the plugin's event stream but got JSON: {excerpt(json.dumps(obj))!r}"
            )
        check_status(head, b"")
        events = events_until(self._body.finish(), self._event, lambda: self._ended)
        if not self._ended:
            raise ended_early("no 'done' event", text_seen=self._text_seen)
        return events

    def learned(self) -> Sequence[Fact]:
        return self._learned

    def _event(self, item: SSEEvent) -> list[Event]:
        name = item.name
        if name is None:
            raise ResponseFormatError(f"Unexpected line in the event stream: {item.data[:200]!r}")
        try:
            data = json.loads(item.data)
        except (ValueError, RecursionError) as exc:
            raise ResponseFormatError(
                f"Unreadable event {name or 'message'!r} in the stream: {item.data[:200]!r}"
            ) from exc
        if name == "":
            return self._delta(data)
        if name == "done":
            return self._done(data)
        if name == "error":
            return self._error(data)
        return self._named(name, data)

    def _delta(self, data: Any) -> list[Event]:
        delta = data.get("delta") if isinstance(data, Mapping) else None
        if isinstance(delta, str) and delta:
            self._text_seen = self._text_seen or not delta.isspace()
            return [TextDelta(delta)]
        return []

    def _done(self, data: Any) -> list[Event]:
        self._ended, self._learned = True, (Answered(),)
        if not self._text_seen:
            raise empty_answer(stream=True)
        extras = {_KEYS[k]: data[k] for k in _EXTRAS if isinstance(data, Mapping) and k in data}
        return [Metadata(extras), End("stop")] if extras else [End("stop")]

    def _named(self, name: str, data: Any) -> list[Event]:
        """Events that are never part of the answer: metadata, warnings, progress."""
        if name == "message_start" and isinstance(data, Mapping):
            return [Metadata({"site_message_id": data.get("message_id")})]
        if name in _EXTRAS:
            return [Metadata({_KEYS[name]: data})]
        if name in _ID_EVENTS and isinstance(data, Mapping):
            return [Metadata({_KEYS[name]: data.get("id")})]
        if name == "warning":
            message = data.get("error") if isinstance(data, Mapping) else None
            self._warnings.append(message if isinstance(message, str) else json.dumps(data))
            return [Metadata({"site_warnings": list(self._warnings)})]
        if name == "display_form_event":
            raise SiteError(
                "The bot asks the visitor to fill in a form (a plugin trigger); this package "
                "cannot answer forms."
            )
        return []  # status and other progress events

    def _error(self, data: Any) -> list[Event]:
        message = data.get("error") if isinstance(data, Mapping) else None
        message = message if isinstance(message, str) else json.dumps(data)
        if self._text_seen:  # part of the answer already reached the caller
            raise IncompleteAnswerError(
                f"The site stopped the answer with an error: {message}", site_message=message
            )
        if message in CACHE_GONE_ERRORS:  # the call decides whether to cache it again
            self._ended, self._learned = True, (KeyGone(message),)
            return []
        if message in STREAM_NONCE_ERRORS:
            raise NonceRejectedError(f"The site rejected the nonce ({message!r}).")
        if message == NOT_PUBLIC_ERROR:
            raise _not_public(message)
        if message in QUOTA_ERRORS or (isinstance(data, Mapping) and "quota_notice" in data):
            raise RateLimitError(f"The site's quota was reached: {message}")
        raise SiteError(message)
