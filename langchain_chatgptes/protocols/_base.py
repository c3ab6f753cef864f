"""The interface every site protocol implements: plain data in, plain data out (no I/O).

A protocol (one :class:`SiteProtocol` object per chat-plugin generation) reads a chat page
into the bots it shows (:meth:`SiteProtocol.find_bots`) and runs one chat call as a small
state machine (:class:`Call`): it says which HTTP request to make next
(:class:`HttpRequest`); a reader turns that reply's bytes into :data:`Event` s or a typed
error (:class:`BodyReader`) and reports what the reply taught the call (:class:`Fact` s:
a cache key, a fresh nonce); only the call applies them, through its stage and transition
table (:class:`StagedCall`), and hands back updated per-bot state (:class:`BotState`)
instead of writing into a cache. The policy layer (``_policy``) owns the sockets, the
cache, retries and time limits; nothing here imports an HTTP client.

Everything else the package knows about a plugin lives on its protocol object too: the
words for its chat box, hints for pages that show none, which protocol it supersedes, and
its doctor steps. ``langchain_chatgptes.protocols.register_protocol`` adds one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
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
    "Fact",
    "Findings",
    "HttpRequest",
    "Metadata",
    "Notice",
    "ReplyHead",
    "SiteProtocol",
    "StagedCall",
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


class Fact:
    """What a reply taught its call (a cache key, a fresh nonce): never the caller's.

    Readers report facts (:meth:`BodyReader.learned`); only the call applies them
    (:meth:`Call.learn`). Protocols define their own as frozen dataclasses.
    """


class BodyReader(ABC):
    """Turns one reply's bytes into events as they arrive.

    The status and headers are only known at :meth:`finish`: a reader decides how to
    read the body from the body itself (an event stream, JSON, an error page), which is
    also what some plugins require (errors with HTTP 200 under a JSON content type).
    What the reply taught the call is read from :meth:`learned` after :meth:`finish`: a
    reader never writes into its call.
    """

    @abstractmethod
    def feed(self, data: bytes) -> list[Event]:
        """Consume the next bytes of the body; return the events they complete."""

    @abstractmethod
    def finish(self, head: ReplyHead) -> list[Event]:
        """The body is complete: return the last events or raise what the reply means."""

    def learned(self) -> Sequence[Fact]:
        """What the finished reply taught the call (default: nothing)."""
        return ()


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
    :meth:`reader`, hands what the reader learned to :meth:`learn`, and asks again until
    ``None``.

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

    def learn(self, facts: Sequence[Fact]) -> None:
        """Apply what the last reply taught (default: keep each with :meth:`apply`).

        Called however the reply ended (an error, or a caller that stopped reading): it
        must not raise for what a site sent; a failure it implies is raised by the next
        :meth:`next_request`.
        """
        for fact in facts:
            self.apply(fact)

    def apply(self, fact: Fact) -> None:
        """Keep what ``fact`` carries (default: nothing; a call that learns overrides it)."""
        raise TypeError(f"{type(self).__name__} does not expect {fact!r}")

    def new_state(self) -> BotState | None:
        """Bot state the replies changed (e.g. a nonce the site handed out), if any."""
        return None


class StagedCall(Call):
    """A call that moves through stages; a fact moves it along its transition table.

    Subclasses define a stage type (an :class:`~enum.Enum`), :attr:`TRANSITIONS`
    (``(stage, fact type) -> next stage``) and, per stage, the request to make
    (:meth:`request_for`) and its reader (:meth:`reader_for`). A fact the table does not
    allow at the current stage is a bug in the protocol (``RuntimeError``).
    """

    TRANSITIONS: ClassVar[Mapping[tuple[Enum, type[Fact]], Enum]]
    DONE: ClassVar[Enum]
    stage: Enum

    def next_request(self) -> HttpRequest | None:
        """The current stage's request, or ``None`` once the call is done."""
        return None if self.stage is self.DONE else self.request_for(self.stage)

    def reader(self) -> BodyReader:
        """The reader for the current stage's reply."""
        return self.reader_for(self.stage)

    def learn(self, facts: Sequence[Fact]) -> None:
        """Move along the transition table, keeping what each fact carries."""
        for fact in facts:
            after = self.TRANSITIONS.get((self.stage, type(fact)))
            if after is None:
                raise RuntimeError(f"{type(fact).__name__} is not expected at {self.stage}")
            self.apply(fact)
            self.stage = after

    def apply(self, fact: Fact) -> None:
        """Keep what ``fact`` carries (default: nothing: the stage says it all)."""

    @abstractmethod
    def request_for(self, stage: Any) -> HttpRequest:
        """The request of ``stage``."""

    @abstractmethod
    def reader_for(self, stage: Any) -> BodyReader:
        """The reader of ``stage``'s reply."""


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

    Everything the rest of the package knows about the plugin lives here: detection and
    calls, the words messages use for it, and the doctor's steps.

    Attributes:
        name: Short name, also the value of the model's ``plugin`` setting.
        label: What the plugin's chat box is called in messages (``"AIPKit bot"``).
        looked_for: What :meth:`find_bots` looks for, in words (for "not found" errors).
        hints: ``(marker, meaning)`` pairs: what a page that shows no usable bot may show
            of this plugin (a shortcode left as text, its script alone...).
        supersedes: Names of protocols whose bots are stale markup when a bot of this one
            is on the same page (with ``plugin="auto"``).
        step_labels: How the doctor names this protocol's requests: ``(step, label)``
            pairs (``HttpRequest.step`` to label; a step not listed is shown as it is).
        refresh_step: The doctor's name for the :meth:`refresh` call (``"nonce"``), or
            ``None`` when the protocol has none (the nonce comes with the page).
    """

    name: ClassVar[str]
    label: ClassVar[str] = "chat box"
    looked_for: ClassVar[str]
    hints: ClassVar[tuple[tuple[str, str], ...]] = ()
    supersedes: ClassVar[tuple[str, ...]] = ()
    step_labels: ClassVar[tuple[tuple[str, str], ...]] = ()
    refresh_step: ClassVar[str | None] = None

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

    # --- what messages and the doctor say -------------------------------------------------

    def describe_missing(self, missing: tuple[str, ...]) -> str:
        """What a chat box that lacks ``missing`` (from :class:`Findings`) lacks, in words."""
        return " and ".join(missing)

    def describe(self, bot: Bot) -> str:
        """One line on ``bot`` for the doctor."""
        return f"{self.name} bot {bot.bot_id}: endpoint {bot.endpoint}"

    def planned_steps(self, bot: Bot) -> tuple[str, ...]:
        """The doctor's names of the requests one call to ``bot`` makes, in order."""
        return ("send prompt",)

    def refresh_verdict(
        self, bot: Bot, state: BotState, fresh: BotState | None
    ) -> tuple[bool, str]:
        """The doctor's verdict on the :meth:`refresh` call: ``(passed, detail)``.

        Args:
            bot: The bot.
            state: Its state before the call.
            fresh: The state the call handed back, or ``None`` when it gave none.
        """
        if fresh is None:
            return True, (
                "no fresh-nonce endpoint (an older plugin): "
                "a rejected nonce means reading the page again"
            )
        return True, f"the plugin hands out fresh nonces ({fresh.nonce})"
