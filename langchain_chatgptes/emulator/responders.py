"""What the emulated site answers: :class:`Reply` values and the responders that choose them.

A responder stands in for the upstream model. It gets a :class:`ChatRequest` (the message as
the plugin sees it, plus the message list the plugin would send upstream) and returns a
:class:`Reply` or a plain ``str`` (shorthand for :meth:`Reply.text`). The server renders the
reply as JSON or as an event stream, whichever mode the emulated site is in.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

ReplyKind = Literal[
    "text",
    "site_error",
    "exception",
    "token_limit",
    "ipBanned",
    "messageFlagged",
    "checkbox",
    "error",
    "raw",
    "reset",
    "hang",
    "drip",
    "warning",
    "aipkit_event",
    "mwai_event",
    "sequence",
]


@dataclass(frozen=True)
class Reply:
    """One answer of the emulated site; build it with the class method factories.

    Attributes:
        kind: Which of the plugin's answers this is (``"error"`` is the plain
            ``{"status":"error","msg":...}`` object the plugin sends for an empty message).
        content: The answer text or the error message.
        status: HTTP status (only :meth:`raw` sets anything but 200).
        body: The verbatim body of a :meth:`raw` reply.
        content_type: Content-Type of a :meth:`raw` reply.
        headers: Extra headers of a :meth:`raw` reply.
        seconds: How long :meth:`hang` waits, or :meth:`drip` waits between pieces.
        data: The JSON payload of an :meth:`aipkit_event`; for an :meth:`mwai_event`, a
            mapping with the event's ``data``, ``visibility`` and ``metadata``.
        parts: The pieces of a :meth:`sequence`.

    The AIPKit plugin (``Emulator(plugin="aipkit")``) renders the same replies as stream
    events: :meth:`text` as ``{"delta":…}`` events after ``message_start`` and before ``done``
    (on the Responses API, ``AipkitOptions.responses_api``, between two ``status`` events
    and an ``openai_response_id`` one, as a real 2.4.71 site sends them);
    :meth:`site_error` as ``error`` "API Error: …" after ``message_start`` and without
    ``done``; :meth:`exception` likewise with "Connection Error: …"; :meth:`error` (e.g.
    "API key missing for OpenAI."), :meth:`flag` and :meth:`token_limit` (the quota error
    with ``quota_notice``) as ``error`` + ``done`` before ``message_start``; :meth:`raw`,
    :meth:`reset`, :meth:`hang` and :meth:`drip` replace the whole stream reply. The
    AIPKit-only :meth:`warning`, :meth:`aipkit_event` and :meth:`sequence` answer their
    text in legacy mode.

    AI Engine (``Emulator(plugin="mwai")``, reference Part B) renders :meth:`text` as
    ``{"type":"live","data":…}`` lines and a final ``end`` line (or, with ``stream:false``,
    the ``build_final_res`` JSON); :meth:`error` as a rejection raised before the stream
    headers (HTTP 200 ``data: {"type":"error",…}`` still under ``application/json``, or 500
    JSON); :meth:`site_error`, :meth:`exception`, :meth:`flag` and :meth:`token_limit` (the
    guests' over-limit message) as errors raised once the stream is open (an ``error`` line,
    or 500 JSON); :meth:`warning` and :meth:`mwai_event` as event objects (``subtype``);
    :meth:`raw`, :meth:`reset`, :meth:`hang` and :meth:`drip` replace the whole submit reply.
    """

    kind: ReplyKind
    content: str = ""
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    data: Any = None
    parts: tuple[Reply, ...] = ()

    @classmethod
    def text(cls, answer: str) -> Reply:
        """A successful answer (JSON ``data`` or ``chat.completion.chunk`` deltas)."""
        return cls("text", answer)

    @classmethod
    def site_error(cls, msg: str) -> Reply:
        """An upstream error (JSON ``status: error``, or word events ending in ``stop``).

        Streamed, the block is sent twice, as a real 2.2 site does (``real-plugins.md``).
        """
        return cls("site_error", msg)

    @classmethod
    def exception(cls, msg: str) -> Reply:
        """An upstream exception (like :meth:`site_error`, but streams end in ``[LIMITED]``)."""
        return cls("exception", msg)

    @classmethod
    def token_limit(cls) -> Reply:
        """The plugin's ``tokenLimitReached`` object."""
        return cls("token_limit")

    @classmethod
    def flag(cls, kind: Literal["ipBanned", "messageFlagged"], msg: str) -> Reply:
        """A ban: JSON ``status: error`` or the ``{"msg":...,"<kind>":true}`` stream event."""
        return cls(kind, msg)

    @classmethod
    def error(cls, msg: str) -> Reply:
        """A refusal before any answer.

        Legacy: ``{"status":"error","msg":…}``; AIPKit: an ``error`` event and ``done``
        before ``message_start`` (e.g. "API key missing for OpenAI.").
        """
        return cls("error", msg)

    @classmethod
    def warning(cls, msg: str) -> Reply:
        """AIPKit: a non-fatal ``warning`` event ``{"error": msg}`` with ``id: err-<unix>``.

        Its text is also appended to the reply the site stores in the history (A.3.4).
        AI Engine shows it as an event object of subtype ``warning`` (not answer text).
        """
        return cls("warning", msg)

    @classmethod
    def aipkit_event(cls, name: str, data: Any) -> Reply:
        """AIPKit: one named event ``event: <name>`` with ``data: <json>``, never text.

        E.g. ``status``, ``citations``, ``grounding_metadata``, ``openai_response_id``;
        ``citations`` and ``grounding_metadata`` are repeated in the final ``done`` event.
        """
        return cls("aipkit_event", name, data=data)

    @classmethod
    def status_event(cls, data: Mapping[str, Any]) -> Reply:
        """AIPKit: a ``status`` (tool or web-search progress) event."""
        return cls.aipkit_event("status", dict(data))

    @classmethod
    def citations(cls, items: Iterable[Mapping[str, Any]]) -> Reply:
        """AIPKit: a ``citations`` event (an array of citation objects)."""
        return cls.aipkit_event("citations", [dict(item) for item in items])

    @classmethod
    def mwai_event(
        cls,
        subtype: str,
        data: Any = "",
        *,
        visibility: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Reply:
        """AI Engine: one event object (a ``live`` line with a ``subtype``, reference B.3).

        E.g. ``thinking``, ``status``, ``tool_call``, ``web_search``, ``debug``. Only a
        ``content`` event's ``data`` is part of the answer (the official JS appends it); the
        others are progress. Other plugins ignore it.

        Args:
            subtype: The event's ``subtype``.
            data: Its ``data`` (usually a string).
            visibility: ``visible``, ``hidden`` or ``collapsed`` (default: the plugin's
                default for the subtype).
            metadata: Its ``metadata`` object (left out when empty, as the plugin does).
        """
        payload = {"data": data, "visibility": visibility, "metadata": dict(metadata or {})}
        return cls("mwai_event", subtype, data=payload)

    @classmethod
    def sequence(cls, *parts: Reply | str) -> Reply:
        """AIPKit: an answer in pieces, in order, all after ``message_start``.

        Parts: answer text (a ``str`` or :meth:`text`, cut into delta events),
        :meth:`warning` and :meth:`aipkit_event` events, and optionally one ending:
        :meth:`site_error` or :meth:`exception` (``error`` and no ``done``: a provider
        failing mid-answer), :meth:`reset` or :meth:`hang` (the connection drops, or stalls
        and drops, mid-stream). Without an ending the stream ends with ``done``. In legacy
        mode a sequence answers its text. AI Engine takes :meth:`mwai_event` parts too (the
        other plugins skip them) and renders the text as ``live`` lines; an ending there is
        the text, then an ``error`` line (or the dropped connection), and no ``end``.
        """
        items = tuple(Reply.text(part) if isinstance(part, str) else part for part in parts)
        endings = ("site_error", "exception", "reset", "hang")
        for index, item in enumerate(items):
            if item.kind not in ("text", "warning", "aipkit_event", "mwai_event", *endings):
                raise ValueError(f"a sequence cannot hold a {item.kind!r} reply")
            if item.kind in endings and index != len(items) - 1:
                raise ValueError(f"{item.kind!r} can only end a sequence")
        return cls("sequence", parts=items)

    def answer_text(self) -> str:
        """The text of a :meth:`text` reply or the text parts of a :meth:`sequence`."""
        if self.kind == "sequence":
            return "".join(part.content for part in self.parts if part.kind == "text")
        return self.content if self.kind == "text" else ""

    @classmethod
    def checkbox(cls) -> Reply:
        """chatgpt.es' consent-checkbox answer (a success JSON in both modes)."""
        return cls("checkbox")

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str,
        content_type: str = "text/html; charset=UTF-8",
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Anything at all, sent verbatim (proxies, broken pages, 5xx...)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        return cls("raw", "", status, data, content_type, tuple((headers or {}).items()))

    @classmethod
    def reset(
        cls, partial: bytes | str = b"", content_type: str = "application/json; charset=UTF-8"
    ) -> Reply:
        """The connection drops: at once, or after the headers and ``partial`` of a body."""
        data = partial.encode("utf-8") if isinstance(partial, str) else partial
        return cls("reset", body=data, content_type=content_type)

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Accept the request and say nothing for ``seconds``, then drop the connection."""
        return cls("hang", seconds=seconds)

    @classmethod
    def drip(
        cls, body: bytes | str, seconds: float, content_type: str = "text/event-stream"
    ) -> Reply:
        """Send ``body`` eight bytes at a time, ``seconds`` apart (a slow, live connection)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        return cls("drip", body=data, content_type=content_type, seconds=seconds)


@dataclass(frozen=True)
class ChatRequest:
    """What a responder sees of one chat request that passed the site's checks.

    Attributes:
        message: The ``message`` field after the plugin's sanitising (AIPKit: the message
            cached by ``aipkit_cache_sse_message``, or the non-stream POST's ``message``;
            AI Engine: the trimmed ``newMessage``).
        form: The fields the plugin read (body only, or ``$_REQUEST`` in legacy mode;
            AIPKit: the stream's query parameters, or the non-stream POST's fields; AI Engine:
            the JSON body's keys, non-string values JSON-encoded).
        client_id: ``wpaicg_chat_client_id`` (AIPKit: ``session_id``; AI Engine: the query's
            session: the body's ``session`` if set, else the ``mwai_session_id`` cookie, else
            the id the request was just given).
        upstream_messages: The message list the plugin would send upstream: the greeting,
            the parsed ``wpaicg_chat_history`` items and the current turn (AIPKit: the last
            ``max_messages`` stored turns of the conversation and the current message; no
            system message; AI Engine: the bot's instructions as a ``system`` message, the
            body's ``messages`` windowed as in B.4 with their ``role`` and ``content`` only,
            and ``newMessage`` as a ``user`` turn; a role or content that is not a string is
            given JSON-encoded, a missing one as ``""``).
        body: AI Engine: the decoded JSON body of the submit request (``form`` holds the
            same keys with non-string values JSON-encoded); None for the other plugins.
    """

    message: str
    form: Mapping[str, str]
    client_id: str
    upstream_messages: list[dict[str, str]]
    body: Mapping[str, Any] | None = None


Responder = Callable[[ChatRequest], Reply | str]
"""Chooses the site's answer; a plain ``str`` means :meth:`Reply.text`."""


_LAST_TURN = re.compile(r"User input:|^User(?: \([^)\n]*\))?:", re.M)


class EchoResponder:
    """The default fake model: quotes the user's last turn, clearly labelled as the emulator's.

    The last turn is the text after the last ``User input:`` or ``User:`` label of the
    message (the whole message when it has neither), without a trailing ``Assistant:``.
    """

    def __call__(self, request: ChatRequest) -> Reply | str:
        """Quote the last user turn, whitespace collapsed, at most 300 characters."""
        turn = _LAST_TURN.split(request.message)[-1].strip().removesuffix("Assistant:")
        quoted = " ".join(turn.split())[-300:]
        return f"This answer comes from the local chatgpt.es emulator. You wrote: {quoted}"


class ScriptedResponder:
    """Answers with queued replies in order, then with ``fallback``."""

    def __init__(
        self, replies: Iterable[Reply | str] = (), fallback: Responder | None = None
    ) -> None:
        """Queue the first replies.

        Args:
            replies: Replies (or answer strings) to give, one per chat request.
            fallback: Responder used once the queue is empty (default :class:`EchoResponder`).
        """
        self._queue: deque[Reply | str] = deque(replies)
        self._lock = threading.Lock()  # tests push from their thread while the server pops
        self.fallback: Responder = fallback or EchoResponder()

    @property
    def remaining(self) -> int:
        """How many queued replies are left."""
        with self._lock:
            return len(self._queue)

    def push(self, *replies: Reply | str) -> None:
        """Queue more replies after the current ones."""
        with self._lock:
            self._queue.extend(replies)

    def __call__(self, request: ChatRequest) -> Reply | str:
        """Give the next queued reply, or ask the fallback."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.fallback(request)
