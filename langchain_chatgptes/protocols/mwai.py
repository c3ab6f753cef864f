"""The AI Engine protocol (Meow Apps' "mwai" chatbot plugin, 2.0 to 3.6).

The page shows a bot as ``div.mwai-chatbot-container`` whose HTML-escaped ``data-system``
JSON holds ``botId`` (or ``customId``), ``restUrl`` and, for guests before 2.4.4, a
``restNonce``; ``data-params`` holds the input limit ``textInputMaxLength``. Guests of
later versions get their nonce (and a ``mwai_session_id`` cookie) from
``POST {restUrl}/mwai/v1/start_session``, once. A call is one
``POST {restUrl}/mwai-ui/v1/chats/submit`` with a JSON body and ``X-WP-Nonce``; the reply is
an event stream of ``data:`` lines (``live`` text, ``end`` with the final reply as a JSON
string, ``error``) or, for errors and non-streaming bots, one JSON object. The plugin keeps
no history: every call sends the conversation as ``messages`` plus ``newMessage``.
Every constant of the plugin lives here; ``shared/reference/wp-chat-plugins.md`` Part B
says where each fact comes from.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_chatgptes._conversation import SYSTEM_PROMPT, ChatInput, Turn
from langchain_chatgptes.errors import (
    HistoryTrimWarning,
    HTTPStatusError,
    IncompleteAnswerError,
    InvalidInputError,
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
    Notice,
    OneRequestCall,
    ReplyHead,
    SiteProtocol,
    TextDelta,
    Usage,
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
    json_object,
    missing,
    not_json,
    resolve,
    scan_bots,
    text_of,
)
from langchain_chatgptes.protocols._html import Tag, json_attribute
from langchain_chatgptes.protocols._sse import SSEEvent

# --- constants of the plugin (wp-chat-plugins.md, Part B) -----------------------------------

NAME = "mwai"

CONTAINER_CLASS = "mwai-chatbot-container"
"""The bot's ``div``, carrying ``data-system`` and ``data-params`` (B.1)."""

SUBMIT_ROUTE = "/mwai-ui/v1/chats/submit"
"""Appended to ``restUrl`` (``…/wp-json`` or ``…/index.php?rest_route=``) (B.3)."""

SESSION_ROUTE = "/mwai/v1/start_session"
"""A guest's nonce and session cookie (>= 2.4.4) (B.2)."""

SESSION_COOKIE = "mwai_session_id"
"""The cookie ``start_session`` sets; the plugin's session per visitor (B.2)."""

NONCE_CODES = ("rest_cookie_invalid_nonce", "rest_forbidden")
"""WordPress REST error codes for a refused or missing ``X-WP-Nonce`` (B.2); the message
text depends on the WordPress version and language, so only the code is matched."""

NO_ROUTE_CODE = "rest_no_route"
"""The REST API's 404 when the route does not exist (the plugin is off or too old)."""

REJECTED = "Sorry, your query has been rejected."
"""The submit route's refusal: no bot, an empty message, or one above the length limit."""

LIMIT_PREFIXES = ("You have reached the limit", "Our chatbot went to sleep.")
"""The starts of the plugin's default usage-limit messages: guests' and users' limits, and the
site-wide (system) limit (``MWAI_LIMITS`` in ``constants/init.php``; the wording is a
setting)."""

PHP_TRIM = " \t\n\r\0\x0b"
"""What PHP's ``trim()`` removes: the plugin trims ``newMessage`` before measuring it."""

DEFAULT_MAX_LENGTH = 512
"""``textInputMaxLength`` when the page does not say (B.1)."""

MAX_MESSAGES = 15
"""``maxMessages``: the plugin keeps ``messages[0]`` and the last 15 others (B.4); not on the
page, so the default is assumed."""

CONTINUE = "Continue."
"""``newMessage`` when the conversation ends with tool results or a re-ask: everything else
goes in ``messages`` (the plugin requires a non-empty ``newMessage``)."""

_CHAT_ID_CHARS = string.ascii_lowercase + string.digits


_text = text_of


def _number(value: Any) -> int | None:
    """An id or a count as the plugin writes it (PHP floats: ``512.0``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value == int(value) else None


def _id(value: Any) -> str:
    number = _number(value)
    return str(number) if number is not None else _text(value)


def _max_length(limit: float | None) -> int | None:
    """The page's ``textInputMaxLength``: absent means the default, 0 means no check."""
    if limit is None:
        return DEFAULT_MAX_LENGTH
    return int(limit) if limit > 0 else None


def describe_missing(missing: tuple[str, ...]) -> str:
    """What an AI Engine bot lacks, in words."""
    return " and ".join(f"its {item}" for item in missing) + " (in data-system)"


# --- the page -------------------------------------------------------------------------------


def _read_box(tag: Tag, page_url: str) -> Bot | tuple[str, ...] | None:
    """One tag as an AI Engine bot."""
    if CONTAINER_CLASS not in tag.classes or "data-system" not in tag.attrs:
        return None
    system = json_attribute(tag.attrs["data-system"])
    if not isinstance(system, dict):
        return ("configuration",)
    params = json_attribute(tag.attrs.get("data-params", "{}"))
    params = params if isinstance(params, dict) else {}
    bot_id, custom_id = _id(system.get("botId")), _id(system.get("customId"))
    # A page cache or CDN may print it relative (``/wp-json``): resolved like a browser.
    rest_url = _text(system.get("restUrl"))
    rest_url = resolve(page_url, rest_url) if rest_url else ""
    lacks = missing(("bot id", bot_id or custom_id), ("restUrl", rest_url))
    if lacks:
        return lacks
    limit = _number(params.get("textInputMaxLength"))
    return Bot(
        protocol=NAME,
        bot_id=bot_id or custom_id,
        page_url=page_url,
        endpoint=rest_url + SUBMIT_ROUTE,
        nonce=_text(system.get("restNonce")),  # "" for guests of 2.4.4+
        inline=params.get("window") is not True,
        facts={
            "id_field": "botId" if bot_id else "customId",
            "rest_url": rest_url,
            # customId bots resolve to server params without the limit (B.3); a limit of 0
            # turns the plugin's check off.
            "max_length": _max_length(limit) if bot_id else None,
            "context_id": _number(system.get("contextId")),
            "session": _text(system.get("sessionId")),
            "streams": system.get("stream") is not False,
            "name": _text(params.get("aiName")).strip().rstrip(":"),
        },
        position=tag.start,
    )


def find_bots(html: str, page_url: str) -> Findings:
    """Every AI Engine bot on the page, in document order (each id once)."""
    return scan_bots(html, lambda tag: _read_box(tag, page_url))


# --- the conversation -----------------------------------------------------------------------


def _content(turn: Turn) -> str:
    """A turn as a ``messages`` entry's content: plain for User/Assistant, else labelled."""
    return turn.text if turn.label in ("User", "Assistant") else f"{turn.label}: {turn.text}"


def conversation(chat: ChatInput) -> tuple[list[dict[str, str]], str, bool]:
    """``(messages, newMessage, typed)``: the call as the submit route takes it.

    ``messages[0]`` is one ``system`` turn (the fixed preamble, the conversation's system
    messages, then the tool and format instructions); the plugin always keeps it. Earlier
    turns follow as ``user`` / ``assistant`` (tool results and other roles are ``user`` turns
    labelled as in the one-text form). ``newMessage`` is the text of the last human turn,
    as the person typed it (``typed``: the site's length rule applies to it; a name given
    to that message is not sent, as the site's own chat box has none), or
    :data:`CONTINUE` when the conversation ends with anything else or is a re-ask.
    """
    system = [SYSTEM_PROMPT]
    system += [turn.text for turn in chat.turns if turn.role == "system"]
    if chat.instructions:
        system.append(chat.instructions)
    turns = [turn for turn in chat.turns if turn.role != "system"]
    messages = [{"role": "system", "content": "\n\n".join(system)}]
    typed = bool(turns) and turns[-1].role == "user" and not chat.follow_up
    if typed:
        *turns, last = turns
        new_message = last.text
    else:
        new_message = CONTINUE
    messages += [
        {"role": "assistant" if turn.role == "assistant" else "user", "content": _content(turn)}
        for turn in turns
    ]
    return messages, new_message, typed


def check_length(bot: Bot, new_message: str) -> None:
    """Refuse a ``newMessage`` longer than the site takes, as the plugin measures it.

    Raises:
        InvalidInputError: Longer than the bot's ``textInputMaxLength`` once trimmed (the
            plugin would refuse it; it is never cut here).
    """
    limit = bot.facts.get("max_length")
    length = len(new_message.strip(PHP_TRIM))  # code points, as PHP's mb_strlen counts
    if limit is not None and length > limit:
        raise InvalidInputError(
            f"The last human message is {length} characters long; this AI Engine "
            f"site takes at most {limit} (its textInputMaxLength). Shorten it, or move "
            "context into a system message or earlier turns.",
            setting="messages",
            site_specific=True,  # another site (with several) may take it
        )


def trim_notice(messages: list[dict[str, str]]) -> Notice | None:
    """A :class:`HistoryTrimWarning` when the site will drop the oldest turns, else None.

    The plugin keeps ``messages[0]`` and the last :data:`MAX_MESSAGES` others (B.4).
    """
    earlier = len(messages) - 1
    if earlier <= MAX_MESSAGES:
        return None
    return Notice(
        HistoryTrimWarning(
            f"This conversation has {earlier} turns before the last message; AI Engine keeps "
            f"the first message and the last {MAX_MESSAGES} others, so the oldest "
            f"{earlier - MAX_MESSAGES} will not reach the model."
        )
    )


def submit_body(bot: Bot, chat: ChatInput, session: str) -> tuple[str, str, Notice | None]:
    """The submit route's JSON body, its text, and a notice if turns will be dropped.

    The text is every turn (for the usage estimate); the notice, see :func:`trim_notice`.
    Only the fields the plugin's script sends (B.3): a fresh ``chatId`` every call, never
    ``previousResponseId``.

    Raises:
        InvalidInputError: The last human message is longer than the site's
            ``textInputMaxLength`` (the plugin would refuse it; it is never cut here).
    """
    messages, new_message, typed = conversation(chat)
    check_length(bot, new_message if typed else "")
    body: dict[str, Any] = {
        bot.facts["id_field"]: bot.bot_id,
        "messages": messages,
        "newMessage": new_message,
        "stream": True,  # always: the answer is read as it comes
        "chatId": "".join(secrets.choice(_CHAT_ID_CHARS) for _ in range(11)),
    }
    if session:
        body["session"] = session
    if bot.facts.get("context_id") is not None:
        body["contextId"] = bot.facts["context_id"]
    text = "\n".join([*(message["content"] for message in messages), new_message])
    return json.dumps(body, ensure_ascii=False), text, trim_notice(messages)


# --- the requests ---------------------------------------------------------------------------


def _session_of(state: BotState) -> str:
    return dict(state.cookies).get(SESSION_COOKIE, "")


def _headers(bot: Bot, accept: str, nonce: str = "") -> tuple[tuple[str, str], ...]:
    # (Content-Type: application/json comes with the JSON body)
    return browser_headers(bot.page_url, accept, *((("X-WP-Nonce", nonce),) if nonce else ()))


# --- what replies teach a call --------------------------------------------------------------


@dataclass(frozen=True)
class SessionStarted(Fact):
    """``start_session`` gave a guest nonce and session: the bot's new ``state``."""

    state: BotState


@dataclass(frozen=True)
class NewNonce(Fact):
    """The site handed out the next nonce (``new_token``) with its reply."""

    nonce: str


class _SessionCall(OneRequestCall):
    """``start_session``: a guest's nonce and session cookie (no ``X-WP-Nonce`` sent)."""

    def __init__(self, bot: Bot, state: BotState) -> None:
        self.bot, self.state = bot, state
        self.fresh: BotState | None = None

    def request(self) -> HttpRequest:
        return HttpRequest(
            "POST",
            self.bot.facts["rest_url"] + SESSION_ROUTE,
            _headers(self.bot, "application/json"),
            json="",  # the plugin's script posts no body
            cookies=self.state.cookies,
            step="session",
        )

    def reader(self) -> BodyReader:
        return _SessionReader(self.state)

    def apply(self, fact: Fact) -> None:
        if isinstance(fact, SessionStarted):
            self.fresh = fact.state
        else:
            super().apply(fact)

    def new_state(self) -> BotState | None:
        return self.fresh


class _SubmitCall(OneRequestCall):
    """One ``chats/submit`` POST, read as a stream or as one JSON object."""

    def __init__(self, bot: Bot, state: BotState, chat: ChatInput) -> None:
        self.bot, self.state = bot, state
        session = _session_of(state) or bot.facts.get("session", "")
        self.body, self.sent_text, notice = submit_body(bot, chat, session)
        self.notices = (notice,) if notice else ()
        self.new_nonce = ""

    def request(self) -> HttpRequest:
        return HttpRequest(
            "POST",
            self.bot.endpoint,
            _headers(self.bot, "text/event-stream", self.state.nonce),
            json=self.body,
            cookies=self.state.cookies,
            streamed=True,
            step="submit",
        )

    def reader(self) -> BodyReader:
        return _SubmitReader()

    def apply(self, fact: Fact) -> None:
        if isinstance(fact, NewNonce):
            self.new_nonce = fact.nonce
        else:
            super().apply(fact)

    def new_state(self) -> BotState | None:
        # A nonce the site handed out with its answer replaces the one sent (B.2).
        if self.new_nonce and self.new_nonce != self.state.nonce:
            return BotState(self.new_nonce, self.state.cookies)
        return None


class MwaiProtocol(SiteProtocol):
    """AI Engine (Meow Apps): a REST session once, then one JSON POST per call."""

    name = NAME
    label = "AI Engine bot"
    looked_for = "an AI Engine bot (div.mwai-chatbot-container with data-system)"
    hints = (
        ("[mwai_chatbot", "an AI Engine shortcode left as text (the plugin is off)"),
        ("data-mwai-chatbot", "an AI Engine bot embedded from another site (not supported)"),
        ("ai-engine/app/chatbot.js", "AI Engine's script but no bot on this page"),
    )
    step_labels = (("submit", "send prompt"),)
    refresh_step = "session"

    def find_bots(self, html: str, page_url: str) -> Findings:
        """See :func:`find_bots`."""
        return find_bots(html, page_url)

    def check_input(self, bot: Bot, chat: ChatInput) -> None:
        """The site's length rule (see :func:`check_length`)."""
        _, new_message, typed = conversation(chat)
        check_length(bot, new_message if typed else "")

    def prepare(self, bot: Bot, state: BotState) -> Call | None:
        """``start_session`` when the page gave no nonce (guests of 2.4.4+)."""
        return None if state.nonce else _SessionCall(bot, state)

    def start(self, bot: Bot, state: BotState, chat: ChatInput) -> Call:
        """The submit POST (the length rule is checked first: nothing is sent if it fails)."""
        return _SubmitCall(bot, state, chat)

    def refresh(self, bot: Bot, state: BotState) -> Call | None:
        """A new session nonce; a site before 2.4.4 has none (then the page is read again)."""
        return _SessionCall(bot, state)

    def describe_missing(self, missing: tuple[str, ...]) -> str:
        """See :func:`describe_missing`."""
        return describe_missing(missing)

    def describe(self, bot: Bot) -> str:
        """The bot's name, layout, nonce, endpoint, stream mode and length limit."""
        name = f" ({bot.facts['name']!r})" if bot.facts.get("name") else ""
        kind = "inline" if bot.inline else "popup"
        nonce = bot.nonce or "none in the page (a guest session gives one)"
        streaming = "on" if bot.facts.get("streams") else "off"
        limit = bot.facts.get("max_length")
        rule = f", longest message {limit} characters" if limit else ""
        return (
            f"{NAME} bot {bot.bot_id}{name}, {kind}: nonce {nonce}, endpoint "
            f"{bot.endpoint}, streaming: {streaming}{rule}"
        )

    def refresh_verdict(
        self, bot: Bot, state: BotState, fresh: BotState | None
    ) -> tuple[bool, str]:
        """A session started (its nonce and cookie), or why the page's nonce is used."""
        if fresh is not None:
            cookie = dict(fresh.cookies).get(SESSION_COOKIE, "none")
            return True, f"session started: REST nonce {fresh.nonce}, session cookie {cookie}"
        if not state.nonce:
            return False, "no nonce: the page gives none and the site has no start_session route"
        return True, "no start_session route (AI Engine before 2.4.4): the page's nonce is used"


# --- the replies ----------------------------------------------------------------------------


def _site_error(message: str, status: int | None = None) -> Exception:
    """The error for a message the plugin sent in place of an answer."""
    if message.startswith(LIMIT_PREFIXES):
        return RateLimitError(f"The site's usage limit was reached: {message}", status_code=status)
    return SiteError(message or "unknown error (no message)", status_code=status)


def _check_json(head: ReplyHead, obj: dict[str, Any] | None, body: bytes | bytearray) -> None:
    """Raise what a JSON reply's status and body mean, for a refusal; return for success."""
    code = _text(obj.get("code")) if obj else ""
    if code in NONCE_CODES:
        raise NonceRejectedError(
            f"The site refused the REST nonce ({code}, HTTP {head.status}).",
            status_code=head.status,
        )
    if code == NO_ROUTE_CODE:
        raise HTTPStatusError(
            f"{head.url or 'The site'} answered HTTP {head.status} {code}: this site does not "
            "run AI Engine's chat API (the plugin is off, or older than 2.0).",
            status_code=head.status,
        )
    if obj is not None and obj.get("success") is False:  # the plugin's refusals and errors
        raise _site_error(_text(obj.get("message")), head.status)
    check_status(head, body)
    if obj is None:
        raise not_json(body, head.status, "AI Engine's JSON reply")


class _SessionReader(WholeBodyReader):
    def __init__(self, state: BotState) -> None:
        super().__init__()
        self._state = state
        self._fresh: BotState | None = None

    def read(self, head: ReplyHead, body: bytearray) -> list[Event]:
        obj = json_object(body)
        if head.status == 404 and obj is not None and obj.get("code") == NO_ROUTE_CODE:
            return []  # before 2.4.4: no sessions (the page's nonce is all there is)
        _check_json(head, obj, body)
        assert obj is not None  # noqa: S101 (_check_json raised otherwise)
        nonce = _text(obj.get("restNonce"))
        if obj.get("success") is not True or not nonce:
            raise ResponseFormatError(
                f"start_session gave no nonce: {excerpt(json.dumps(obj))!r}",
                status_code=head.status,
            )
        # Every cookie the site set goes back with the calls, as a browser sends it (the
        # plugin's session, and PHP's own: without it each session would open another).
        cookies = {**dict(self._state.cookies), **head.cookies}
        session = head.cookies.get(SESSION_COOKIE) or _text(obj.get("sessionId"))
        if session:
            cookies[SESSION_COOKIE] = session
        self._fresh = BotState(nonce, tuple(cookies.items()))
        return []

    def learned(self) -> Sequence[Fact]:
        return (SessionStarted(self._fresh),) if self._fresh is not None else ()


def _is_stream(prefix: bytes) -> bool | None:
    """``data:`` lines (the stream) or a whole body (JSON, or HTML); None: too short to tell."""
    head = prefix.lstrip()
    if len(head) < len(b"data:") and not head.startswith((b"{", b"[", b"<")):
        return None
    return head.startswith(b"data:")


def _decode_end(data: Any, line: str) -> Any:
    """The ``end`` line's ``data``: a JSON string holding the final reply (B.3)."""
    if not isinstance(data, str):
        return data
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ResponseFormatError(f"Unreadable 'end' line: {line[:200]!r}") from exc


class _SubmitReader(BodyReader):
    """Event-stream lines or one JSON object, told apart by the body itself (B.3)."""

    def __init__(self) -> None:
        self._body = SniffedBody(_is_stream)
        self._text_seen = False
        self._ended = False
        self._new_nonce = ""

    def feed(self, data: bytes) -> list[Event]:
        parsed = self._body.feed(data)
        return events_until(parsed, self._line, lambda: self._ended) if parsed else []

    def finish(self, head: ReplyHead) -> list[Event]:
        if not self._body.is_stream:
            return self._json_reply(head, self._body.whole())
        events = events_until(self._body.finish(), self._line, lambda: self._ended)
        if not self._ended:
            check_status(head, b"")
            raise ended_early("its 'end' line", text_seen=self._text_seen)
        return events

    def learned(self) -> Sequence[Fact]:
        return (NewNonce(self._new_nonce),) if self._new_nonce else ()

    def _json_reply(self, head: ReplyHead, body: bytes | bytearray) -> list[Event]:
        obj = json_object(body)
        if obj is not None:  # error replies carry a new_token too (B.2)
            self._new_nonce = _text(obj.get("new_token")) or self._new_nonce
        _check_json(head, obj, body)
        assert obj is not None  # noqa: S101 (_check_json raised otherwise)
        return self._final(obj, streamed=False)

    def _line(self, item: SSEEvent) -> list[Event]:
        if item.name is None:
            raise ResponseFormatError(f"Unexpected line in the event stream: {item.data[:200]!r}")
        try:
            line = json.loads(item.data)
        except (ValueError, RecursionError) as exc:
            raise ResponseFormatError(
                f"Unreadable line in the stream: {item.data[:200]!r}"
            ) from exc
        if not isinstance(line, dict):
            raise ResponseFormatError(f"Unexpected line in the stream: {item.data[:200]!r}")
        kind, data = line.get("type"), line.get("data")
        if kind == "live":
            return self._live(line, data)
        if kind == "error":
            return self._error(data)
        if kind == "end":
            return self._end(data, item.data)
        return []  # unknown line types: never part of the answer

    def _live(self, line: Mapping[str, Any], data: Any) -> list[Event]:
        # Only plain tokens and "content" events are the answer; thinking, status, tool and
        # debug events are progress (B.3).
        if line.get("subtype") in (None, "content") and isinstance(data, str) and data:
            self._text_seen = self._text_seen or not data.isspace()
            return [TextDelta(data)]
        return []

    def _error(self, data: Any) -> list[Event]:
        message = _text(data) or json.dumps(data)
        if self._text_seen:
            raise IncompleteAnswerError(
                f"The site stopped the answer with an error: {message}", site_message=message
            )
        raise _site_error(message)

    def _end(self, data: Any, line: str) -> list[Event]:
        final = _decode_end(data, line)
        if not isinstance(final, dict):
            raise ResponseFormatError(f"Unreadable 'end' line: {line[:200]!r}")
        self._new_nonce = _text(final.get("new_token")) or self._new_nonce
        if final.get("success") is False:
            raise _site_error(_text(final.get("message")))
        return self._final(final, streamed=True)

    def _final(self, final: Mapping[str, Any], *, streamed: bool) -> list[Event]:
        """The end of an answer: the reply (when no text streamed), usage, a new nonce."""
        self._ended = True
        self._new_nonce = _text(final.get("new_token")) or self._new_nonce
        events: list[Event] = []
        reply = _text(final.get("reply"))
        if not (self._text_seen and streamed):
            if not reply.strip():
                raise empty_answer()
            events.append(TextDelta(reply))
            self._text_seen = True
        usage = _usage(final.get("usage"))
        if usage is not None:
            events.append(usage)
        extras = {key: final[key] for key in _EXTRAS if final.get(key)}
        if extras:
            events.append(Metadata({_EXTRAS[key]: value for key, value in extras.items()}))
        return [*events, End("stop")]


_EXTRAS = {"images": "site_images", "actions": "site_actions", "responseId": "site_response_id"}
"""Final-reply keys that go into response_metadata, and their keys there."""


def _usage(usage: Any) -> Usage | None:
    """The site's own token counts, when it measured them.

    ``accuracy`` ``none`` (the plugin's default, zero counts) and ``estimated`` are not the
    model's counts: the package's estimate stands then (``usage_is_estimate``).
    """
    if not isinstance(usage, Mapping) or usage.get("accuracy") in ("none", "estimated"):
        return None
    prompt, completion = (
        _number(usage.get("prompt_tokens")),
        _number(usage.get("completion_tokens")),
    )
    return Usage(prompt, completion) if prompt is not None and completion is not None else None
