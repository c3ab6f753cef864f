"""The interface every site protocol implements: plain data in, plain data out (no I/O).

A protocol module reads a chat page into the bots it shows (:meth:`SiteProtocol.find_bots`)
and runs one chat call as a small state machine (:class:`Call`): it says which HTTP request
to make next (:class:`HttpRequest`), turns that reply's bytes into :data:`Event` s or a typed
error (:class:`BodyReader`), and hands back updated per-bot state (:class:`BotState`, e.g.
a fresh nonce) instead of writing into a cache. The policy layer (``_policy``) owns the
sockets, the cache, retries and time limits; nothing here imports an HTTP client.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from langchain_chatgptes._conversation import ChatInput, Turn, Visitor
from langchain_chatgptes._events import End, Event, Metadata, Notice, TextDelta, Usage

__all__ = [
    "BodyReader",
    "Bot",
    "BotState",
    "Call",
    "ChatInput",
    "End",
    "Event",
    "Findings",
    "HttpRequest",
    "Metadata",
    "Notice",
    "ReplyHead",
    "SiteProtocol",
    "TextDelta",
    "Turn",
    "Usage",
    "Visitor",
]

# --- HTTP, as plain data ------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request a protocol wants made.

    Attributes:
        method: ``GET`` or ``POST``.
        url: Absolute URL, query string included.
        headers: Extra headers (the browser target adds its own, User-Agent included).
        form: Fields of an ``application/x-www-form-urlencoded`` body, in order.
        json: A JSON body, as text (sent as ``application/json``).
        cookies: Cookies to send with it (session state a protocol keeps, e.g. a REST
            session cookie); curl's own cookie jar is not relied on.
        streamed: Read as a stream: the time limit then applies to the wait for the
            first bytes and to each silence, not to the whole reply.
        step: What this request is (``page``, ``chat``, ``nonce``...), for messages.
    """

    method: Literal["GET", "POST"]
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] | None = None
    json: str | None = None
    cookies: tuple[tuple[str, str], ...] = ()
    streamed: bool = False
    step: str = "chat"


@dataclass(frozen=True)
class ReplyHead:
    """Status line and headers of a reply, known once its body has been read.

    Attributes:
        status: HTTP status.
        headers: Headers with lower-case names (repeated headers joined by ``, ``).
        url: The final URL, after redirects.
        cookies: Cookies the reply set (name to value).
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    cookies: Mapping[str, str] = field(default_factory=dict)


class BodyReader(ABC):
    """Turns one reply's bytes into events as they arrive.

    The status and headers are only known at :meth:`finish`: a reader decides how to
    read the body from the body itself (an event stream, JSON, an error page), which is
    also what some plugins require (errors with HTTP 200 under a JSON content type).
    """

    @abstractmethod
    def feed(self, data: bytes) -> list[Event]:
        """Consume the next bytes of the body; return the events they complete."""

    @abstractmethod
    def finish(self, head: ReplyHead) -> list[Event]:
        """The body is complete: return the last events or raise what the reply means."""


# --- bots and their state --------------------------------------------------------------------


@dataclass(frozen=True)
class Bot:
    """A chat bot a page shows, with what a protocol needs to talk to it.

    Attributes:
        protocol: The protocol's :attr:`SiteProtocol.name`.
        bot_id: The bot's id on the page.
        page_url: The page's final URL (after redirects).
        endpoint: Where the chat requests go, resolved against ``page_url``.
        nonce: The nonce the page carries.
        inline: False for a popup bot (a page's inline bots are preferred).
        facts: Whatever else the protocol read from the page.
        position: Where on the page it stands (for "the first bot" across protocols); not
            part of a bot's identity, so equal bots on two page versions compare equal.
    """

    protocol: str
    bot_id: str
    page_url: str
    endpoint: str
    nonce: str
    inline: bool = True
    facts: Mapping[str, Any] = field(default_factory=dict)
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class BotState:
    """What changes for a bot without a new page: its nonce and session cookies."""

    nonce: str
    cookies: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Findings:
    """What one protocol found on a page.

    Attributes:
        bots: Usable bots, in document order.
        incomplete: For each chat box that lacks what a call needs, what it lacks.
    """

    bots: tuple[Bot, ...] = ()
    incomplete: tuple[tuple[str, ...], ...] = ()


class Call(ABC):
    """One attempt at one chat call: a small state machine over HTTP requests.

    The policy layer asks :meth:`next_request`, makes that request, feeds the reply to
    :meth:`reader`, and asks again until ``None``. A reader may store what the next
    request needs (e.g. a cache key) on the call.

    Attributes:
        sent_text: The text the site receives for this call (for the usage estimate).
        notices: Warnings for the caller about this call (e.g. turns the site will drop),
            handed on as events: a protocol never warns itself, as it may run on another
            thread than the caller's.
    """

    sent_text: str = ""
    notices: tuple[Notice, ...] = ()

    @abstractmethod
    def next_request(self) -> HttpRequest | None:
        """The next request to make, or ``None`` when the call is complete."""

    @abstractmethod
    def reader(self) -> BodyReader:
        """A reader for the reply to the request :meth:`next_request` returned last."""

    def new_state(self) -> BotState | None:
        """Bot state the replies changed (e.g. a nonce the site handed out), if any."""
        return None


class OneRequestCall(Call):
    """A call of one request: :meth:`request` is made once, then the call is complete."""

    _sent = False

    @abstractmethod
    def request(self) -> HttpRequest:
        """The call's one request."""

    def next_request(self) -> HttpRequest | None:
        """:meth:`request` the first time, then ``None``."""
        if self._sent:
            return None
        self._sent = True
        return self.request()


class SiteProtocol(ABC):
    """A WordPress chat plugin's protocol (one per plugin generation).

    Attributes:
        name: Short name, also the value of the model's ``plugin`` setting.
        looked_for: What :meth:`find_bots` looks for, in words (for "not found" errors).
    """

    name: ClassVar[str]
    looked_for: ClassVar[str]

    @abstractmethod
    def find_bots(self, html: str, page_url: str) -> Findings:
        """Every chat bot of this plugin the page shows (none if it runs another one)."""

    def prepare(self, bot: Bot, state: BotState) -> Call | None:
        """A call that sets up what chat calls need and the page did not give (a session).

        Run once for all callers (single flight), before the first chat call that needs
        it; its :meth:`Call.new_state` holds the new state. ``None`` (the default): the
        state is ready.
        """
        return None

    def check_input(self, bot: Bot, chat: ChatInput) -> None:
        """Raise ``InvalidInputError`` for a call the site would refuse (default: none).

        :meth:`start` checks too; this lets the pipeline refuse before a set-up request.
        """
        return None

    @abstractmethod
    def start(self, bot: Bot, state: BotState, chat: ChatInput) -> Call:
        """A fresh call to ``bot`` with the current ``state``."""

    def refresh(self, bot: Bot, state: BotState) -> Call | None:
        """A call that fetches a fresh nonce without re-reading the page.

        Its reader returns no events; its :meth:`Call.new_state` holds the new state.
        ``None`` (the default) means: re-read the page.
        """
        return None
