"""The AIPKit plugin (AI Power / "AI Puffer" >= 2.3) on admin-ajax, check by check.

An independent writing of ``shared/reference/wp-chat-plugins.md`` Part A and checklist C.2
(sections cited on each step), and of what a real 2.4.71 site sent
(``shared/reference/real-plugins.md``); nothing here comes from the client package. Handlers:

* ``aipkit_get_frontend_chat_nonce`` (A.2, C.2 item 4): a fresh nonce;
* ``aipkit_cache_sse_message`` (A.3.2, C.2 item 5): store the user message, answer a key;
* ``aipkit_frontend_chat_stream`` (A.3.3, A.3.4, C.2 items 6-8): the SSE reply;
* ``aipkit_frontend_chat_message`` (A.3.5, C.2 item 10): the JSON reply of 2.3 -> 2.4.0.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import string
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

from langchain_chatgptes.emulator import _aipkit_plugin as aip
from langchain_chatgptes.emulator import _wordpress as wp
from langchain_chatgptes.emulator._aipkit_pages import (
    AipkitBot,
    AipkitLayout,
    AipkitPageFacts,
    render_aipkit_page,
)
from langchain_chatgptes.emulator._faults import (
    FAULT_KINDS,
    abort,
    pop_fault,
    raw_response,
    send_fault,
)
from langchain_chatgptes.emulator._pages import PageFacts
from langchain_chatgptes.emulator._plugin import AJAX_PATH, CHECKBOX_MESSAGE
from langchain_chatgptes.emulator._plugin import NONCE_ACTION as LEGACY_NONCE_ACTION
from langchain_chatgptes.emulator._site import JSON, Incoming, PluginSite, SitePage
from langchain_chatgptes.emulator._stream import StreamWriter
from langchain_chatgptes.emulator._wire import split_answer
from langchain_chatgptes.emulator.responders import ChatRequest, Reply

if TYPE_CHECKING:
    from langchain_chatgptes.emulator._records import RecordedRequest
    from langchain_chatgptes.emulator._server import Emulator

_KEY_CHARS = string.ascii_letters + string.digits  # wp_generate_password(32, false, false)
_DONE_EXTRAS = ("citations", "grounding_metadata")  # repeated in done / the JSON reply
_ENDINGS = ("site_error", "exception", "reset", "hang")
OriginState = Literal["same", "allowed", "no_pro", "denied"]
HistoryKey = tuple[int, str, str]
Handler = Callable[[Incoming, dict[str, str]], Awaitable[web.StreamResponse]]


@dataclass(kw_only=True)
class AipkitOptions:
    """An AIPKit site's settings: ``Emulator(plugin="aipkit", aipkit=AipkitOptions(...))``.

    Mutable: tests may change them while the server runs (``emu.aipkit.bots = (1, 2)``).

    Attributes:
        version: The AIPKit version: ``"2.4.71"`` (latest), or e.g. ``"2.4.0"`` for
            ``data-config.streamEnabled`` and ``aipkit_frontend_chat_message``; below
            2.3.93 no preamble, below 2.3.88 ``userIp``, below 2.3.41 no refresh endpoint,
            below 2.3.31 no CORS checks, below 2.3.20 the old stream nonce text, below 2.4.5
            no ``quota_notice``.
        bots: The bot ids on the page, in order (a repeated id renders once).
        layout: ``inline`` or ``popup`` for every bot, or a mapping bot id -> layout
            (missing ids are inline).
        unpublished: Bots that are drafts: on the page, but the stream says
            "Invalid chatbot specified.".
        stream_off: Bots whose ``stream_enabled`` is off (``streamEnabled: false``; only
            shown before 2.4.1).
        nonce_refresh: Whether ``aipkit_get_frontend_chat_nonce`` exists (False: a site
            before 2.3.41; it then answers 400 ``0``).
        pro: The site has the Pro plan (cross-origin embedding allowed).
        allowed_origins: The bots' ``embed_allowed_domains`` (empty: any origin, with Pro).
        max_messages: History turns given to the model (the bot's ``max_messages``).
        header_name: The bot's title (``data-config.headerName``).
        provider: ``data-config.provider``.
        responses_api: The OpenAI provider on the Responses API, the default of 2.4.71: a
            streamed answer carries ``status`` events (``response.created``,
            ``response.in_progress``) before its first delta and ``openai_response_id``
            before ``done`` (``real-plugins.md``); False: neither (another provider).
        cache_faults: Replies (:meth:`Reply.raw`, ``reset``, ``hang``, ``drip``) given,
            first in first out, to the next ``aipkit_cache_sse_message`` POSTs instead of
            the plugin's answer.
        refresh_faults: The same for ``aipkit_get_frontend_chat_nonce``.
    """

    version: str = aip.LATEST_VERSION
    bots: Sequence[int] = (123,)
    layout: AipkitLayout | Mapping[int, AipkitLayout] = "inline"
    unpublished: Collection[int] = ()
    stream_off: Collection[int] = ()
    nonce_refresh: bool = True
    pro: bool = False
    allowed_origins: Sequence[str] = ()
    max_messages: int = aip.MAX_MESSAGES
    header_name: str = "Support Bot"
    provider: str = "OpenAI"
    responses_api: bool = True
    cache_faults: list[Reply] = field(default_factory=list)
    refresh_faults: list[Reply] = field(default_factory=list)


def parse_version(text: str) -> tuple[int, int, int]:
    """``"2.4.71"`` -> ``(2, 4, 71)``; ``"2.3"`` -> ``(2, 3, 0)``."""
    numbers = [int(part) for part in text.split(".")] + [0, 0, 0]
    return numbers[0], numbers[1], numbers[2]


@dataclass(frozen=True)
class _Cached:
    """A row of ``{prefix}aipkit_sse_message_cache`` (A.3.2)."""

    message: str
    image_inputs: str
    client_message_id: str
    stored_at: float


@dataclass(frozen=True)
class _Refusal:
    """A check that failed: the message, extra ``error`` payload, JSON status and code."""

    message: str
    extra: Mapping[str, Any] | None = None
    status: int = 400
    code: str | None = None


@dataclass(frozen=True)
class _Turn:
    """A chat turn that passed the checks: whose history it joins, and the user's message."""

    key: HistoryKey
    message: str


@dataclass
class _Relay:
    """A streamed answer under way (A.3.4): what was sent, and what will be stored."""

    text: str = ""
    sent: bool = False
    response_id: str | None = None  # the upstream response, once it began (Responses API)
    done_extra: dict[str, Any] = field(default_factory=dict)


class AipkitSite(PluginSite):
    """The plugin's state (message cache, history, guest usage) and its handlers."""

    name: ClassVar[str] = "aipkit"

    def __init__(self, emulator: Emulator) -> None:
        """Belong to ``emulator``, with an empty cache, history and usage."""
        super().__init__(emulator)
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}  # by lower-cased key
        self._history: dict[HistoryKey, list[dict[str, str]]] = {}
        self._usage: dict[str, int] = {}  # guest tokens by session_id
        self._uniq = itertools.count()

    def clear(self) -> None:
        """Forget cached messages, histories and usage."""
        with self._lock:
            self._cache.clear()
            self._history.clear()
            self._usage.clear()

    def history(self, bot_id: int, conversation_uuid: str, session_id: str) -> list[dict[str, str]]:
        """A copy of one stored conversation (roles ``user`` / ``assistant``)."""
        key = (bot_id, wp.sanitize_key(conversation_uuid), session_id)
        with self._lock:
            return [dict(turn) for turn in self._history.get(key, [])]

    # --- facts derived from the settings ------------------------------------------------------

    @property
    def options(self) -> AipkitOptions:
        """The site's settings (``emulator.aipkit``)."""
        return self.emu.aipkit

    @property
    def version(self) -> tuple[int, int, int]:
        """``options.version`` as numbers."""
        return parse_version(self.options.version)

    def nonce(self) -> str:
        """``wp_create_nonce('aipkit_frontend_chat_nonce')`` for a guest (A.2, C.2 item 1)."""
        return self.create_nonce(aip.NONCE_ACTION)

    def _nonce_ok(self, nonce: str) -> bool:
        return self.verify_nonce(nonce, aip.NONCE_ACTION)

    def nonce_valid(self, incoming: Incoming) -> bool | None:
        """Whether a chat request's ``_ajax_nonce`` verifies, read where its handler reads it."""
        if incoming.path != AJAX_PATH:
            return None
        action = wp.request_action(incoming.query, incoming.form)
        if action == aip.CACHE_ACTION:  # wp_verify_nonce(sanitize_key($_POST[…])) (A.2)
            return self._nonce_ok(wp.sanitize_key(incoming.form.get(aip.NONCE_FIELD, "")))
        if action in (aip.STREAM_ACTION, aip.MESSAGE_ACTION):  # check_ajax_referer: $_REQUEST
            return self._nonce_ok(incoming.fields.get(aip.NONCE_FIELD, ""))
        return None

    def is_chat(self, record: RecordedRequest) -> bool:
        """Cache POSTs, stream GETs and non-stream message POSTs (not refreshes, not OPTIONS)."""
        return record.method != "OPTIONS" and record.action in aip.CHAT_ACTIONS

    def serves(self, path: str, query: Mapping[str, str]) -> bool:
        """admin-ajax.php."""
        return path == AJAX_PATH

    def _published(self, bot_id: int) -> bool:
        options = self.options
        return bot_id in options.bots and bot_id not in options.unpublished

    def _refresh_registered(self) -> bool:
        return self.options.nonce_refresh and self.version >= aip.V_NONCE_REFRESH

    def _origin(self, request: web.Request) -> OriginState:
        """``AIPKit_CORS_Manager::check_and_set_cors_headers`` (A.3.3 step 2, C.2 item 9).

        Same origin means same host and scheme (the port is not compared: ``wp_parse_url``).
        """
        origin = request.headers.get("Origin", "")
        if not origin or self.version < aip.V_CORS:
            return "same"
        theirs, ours = urlsplit(origin), urlsplit(self.emu.base_url)
        same_host = (theirs.hostname or "") == (ours.hostname or "")
        if same_host and (theirs.scheme or "http") == (ours.scheme or "http"):
            return "same"
        if not self.options.pro:
            return "no_pro"
        allowed = {item.rstrip("/") for item in self.options.allowed_origins}
        if allowed and origin.rstrip("/") not in allowed:
            return "denied"
        return "allowed"

    @staticmethod
    def _cors_headers(request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin", "")
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def _cross_origin(
        self, request: web.Request, bot_id: int, *, embed: bool
    ) -> _Refusal | dict[str, str]:
        """The CORS step of a request naming a bot: a refusal, or the CORS headers to add.

        ``embed``: a cross-origin request without Pro is told the embed feature is missing
        (cache POST, non-stream message); otherwise it is a plain ``cors_denied``.
        """
        if bot_id <= 0:
            return {}
        state = self._origin(request)
        if state == "no_pro" and embed:
            return _Refusal(
                aip.EMBED_NOT_AVAILABLE_MSG, status=403, code=aip.EMBED_NOT_AVAILABLE_CODE
            )
        if state in ("no_pro", "denied"):
            return _Refusal(aip.CORS_DENIED_MSG, status=403, code=aip.CORS_DENIED_CODE)
        return self._cors_headers(request) if state == "allowed" else {}

    # --- page (A.1, C.2 item 2) -----------------------------------------------------------------

    def page(self, path: str, request: web.Request) -> SitePage:
        """The page with the bot(s)."""
        emu = self.emu
        html = render_aipkit_page(self.page_facts(path, request), emu.page_variant)
        return SitePage(html, {"Link": wp.api_link(f"{emu.base_url}/wp-json/")})

    def page_facts(self, path: str, request: web.Request) -> AipkitPageFacts:
        """What the page shows of the bots now (also used for a mixed AI Engine page)."""
        emu, options = self.emu, self.options
        version = self.version
        legacy = None
        if emu.page_variant in ("both", "mixed"):  # a stale legacy box (C.1 step 5)
            legacy = PageFacts(
                base_url=emu.base_url,
                path=path,
                post_id=emu.post_id,
                nonce=self.create_nonce(LEGACY_NONCE_ACTION),
                img_nonce="",
                rest_nonce="",
                stream=False,
                ajax_url=emu.page_endpoint or "",
            )
        return AipkitPageFacts(
            base_url=emu.base_url,
            path=path,
            post_id=int(emu.post_id) if emu.post_id.isdigit() else 0,
            nonce=self.nonce(),
            version=options.version,
            bots=self._bots(),
            header_name=options.header_name,
            provider=options.provider,
            user_ip=(request.remote or "") if version < aip.V_NO_USER_IP else None,
            nonce_refresh=self._refresh_registered(),
            legacy_box=legacy,
            ajax_url=emu.page_endpoint or "",
        )

    def _bots(self) -> tuple[AipkitBot, ...]:
        options = self.options
        stream_only = self.version >= aip.V_STREAM_ONLY
        bots: list[AipkitBot] = []
        for bot_id in dict.fromkeys(options.bots):  # the same bot id renders once (A.1)
            layout = options.layout
            if not isinstance(layout, str):
                layout = layout.get(bot_id, "inline")
            streaming = None if stream_only else bot_id not in options.stream_off
            bots.append(AipkitBot(bot_id, layout, streaming))
        return tuple(bots)

    # --- admin-ajax router (C.2 item 3) -------------------------------------------------------

    async def handle(self, incoming: Incoming) -> web.StreamResponse:
        """admin-ajax.php with the plugin's actions registered (``wp_ajax_nopriv_*``)."""
        if incoming.method != "OPTIONS":  # the latency of a PHP worker for every answer
            await self.wait_latency()
        return await self.ajax(incoming, self.ajax_headers(incoming))

    async def ajax(self, incoming: Incoming, headers: dict[str, str]) -> web.StreamResponse:
        """Route by ``action``; ``headers`` are admin-ajax.php's (also for a mixed page)."""
        action = wp.request_action(incoming.query, incoming.form)
        if not action:  # wp_die('0', 400) before nocache_headers()
            return web.Response(status=400, text="0", headers=headers)
        headers = {**headers, "X-Content-Type-Options": "nosniff", **wp.NOCACHE_HEADERS}
        handler = self._handlers().get(action)
        if handler is None:  # not registered: the legacy actions too (A.4, C.1 step 5)
            return web.Response(status=400, text="0", headers=headers)
        if incoming.method == "OPTIONS":  # handle_preflight_request(): CORS headers, 200, exit
            request = incoming.request
            cors = self._cors_headers(request) if self._origin(request) == "allowed" else {}
            return web.Response(status=200, headers={**headers, **cors})
        return await handler(incoming, headers)

    def _handlers(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {
            aip.CACHE_ACTION: self._cache_post,
            aip.STREAM_ACTION: self._stream,
        }
        if self._refresh_registered():
            handlers[aip.REFRESH_ACTION] = self._refresh
        if self.version < aip.V_STREAM_ONLY:
            handlers[aip.MESSAGE_ACTION] = self._message
        return handlers

    @staticmethod
    def _json(status: int, obj: Any, headers: Mapping[str, str]) -> web.Response:
        body = wp.php_json(obj).encode()  # wp_send_json: wp_json_encode with default flags
        return web.Response(status=status, body=body, headers={**headers, "Content-Type": JSON})

    def _json_error(
        self, status: int, message: str, code: str | None, headers: Mapping[str, str]
    ) -> web.Response:
        data = {"message": message} if code is None else {"message": message, "code": code}
        return self._json(status, {"success": False, "data": data}, headers)

    async def _fault(self, request: web.Request, queue: list[Reply]) -> web.StreamResponse | None:
        """The next staged fault of a step (a proxy or host in front of WordPress), if any."""
        fault = pop_fault(self._lock, queue)
        if fault is None:
            return None
        return raw_response(fault) if fault.kind == "raw" else await send_fault(request, fault)

    # --- aipkit_get_frontend_chat_nonce (A.2, C.2 item 4) -----------------------------------

    async def _refresh(self, incoming: Incoming, headers: dict[str, str]) -> web.StreamResponse:
        fault = await self._fault(incoming.request, self.options.refresh_faults)
        if fault is not None:
            return fault
        # bot_id only scopes the CORS check; always cors_denied here (A.2 :55-58).
        bot_id = wp.absint(incoming.form.get("bot_id", ""))
        cors = self._cross_origin(incoming.request, bot_id, embed=False)
        if isinstance(cors, _Refusal):
            return self._json_error(cors.status, cors.message, cors.code, headers)
        # nocache_headers() (already sent by admin-ajax.php), then wp_send_json_success.
        data = {"success": True, "data": {"nonce": self.nonce()}}
        return self._json(200, data, {**headers, **cors})

    # --- aipkit_cache_sse_message (A.3.2, C.2 item 5) ---------------------------------------

    async def _cache_post(self, incoming: Incoming, headers: dict[str, str]) -> web.StreamResponse:
        fault = await self._fault(incoming.request, self.options.cache_faults)
        if fault is not None:
            return fault
        # Order (A.3.2): CORS (bot_id > 0, cross-origin) -> nonce -> images -> empty -> store.
        form = incoming.form
        cors = self._cross_origin(incoming.request, wp.absint(form.get("bot_id", "")), embed=True)
        if isinstance(cors, _Refusal):
            return self._json_error(cors.status, cors.message, cors.code, headers)
        headers = {**headers, **cors}
        if not self._nonce_ok(wp.sanitize_key(form.get(aip.NONCE_FIELD, ""))):
            return self._json_error(403, aip.CACHE_NONCE_MSG, aip.CACHE_NONCE_CODE, headers)
        message = form.get("message", "").replace("\0", "")  # no other cleaning, no limit
        images = form.get("image_inputs", "")
        if not message and not images:
            return self._json_error(400, aip.EMPTY_CACHE_MSG, aip.EMPTY_CACHE_CODE, headers)
        key = aip.CACHE_KEY_PREFIX + "".join(
            secrets.choice(_KEY_CHARS) for _ in range(aip.CACHE_KEY_LENGTH)
        )
        entry = _Cached(
            message=message,
            image_inputs=images,
            client_message_id=wp.sanitize_key(form.get("user_client_message_id", "")),
            stored_at=self.emu.now(),
        )
        with self._lock:
            self._cache[key.lower()] = entry
        return self._json(200, {"success": True, "data": {"cache_key": key}}, headers)

    def cached_message(self, cache_key: str) -> str | _Refusal:
        """The lookup of A.3.3 step 4: the message, or why not; a hit is deleted (single use)."""
        key = wp.sanitize_key(cache_key)  # lower-cases: the lookup is case-insensitive
        if not key:
            return _Refusal(aip.KEY_MISSING_MSG)
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return _Refusal(aip.KEY_NOT_FOUND_MSG)
            if self.emu.now() >= entry.stored_at + aip.CACHE_TTL:  # valid while expires_at > now
                return _Refusal(aip.KEY_EXPIRED_MSG)  # the expired row is kept
            del self._cache[key]
        return entry.message

    # --- the checks shared by both chat endpoints (A.3.3 steps 5-7) -------------------------

    def _guest_checks(
        self, request: web.Request, turn: _Turn, required: Sequence[tuple[bool, str]]
    ) -> _Refusal | None:
        """The first missing field (``(present, message)`` in order), then quota, moderation."""
        for present, message in required:
            if not present:
                return _Refusal(message)
        return self._quota(turn.key[2]) or self._moderation(request, turn.message)

    def _quota(self, session_id: str) -> _Refusal | None:
        limit = self.emu.token_limit
        if limit is None:
            return None
        if limit == 0:
            return _Refusal(aip.GUESTS_DISABLED_MSG, status=429)
        with self._lock:
            used = self._usage.get(session_id, 0)
        return self._quota_error() if used >= limit else None

    def _quota_error(self) -> _Refusal:
        extra = None
        if self.version >= aip.V_QUOTA_NOTICE:  # quota_notice (A.3.4 error row, A.6 2.4.5)
            notice = {"type": "quota_notice", "message": aip.QUOTA_MSG, "actions": []}
            extra = {"quota_notice": notice}
        return _Refusal(aip.QUOTA_MSG, extra, status=429)

    def _moderation(self, request: web.Request, message: str) -> _Refusal | None:
        emu = self.emu
        if request.remote in emu.banned_ips:  # exact REMOTE_ADDR
            return _Refusal(aip.IP_BANNED_MSG, status=403)
        for word in (word.strip() for word in emu.banned_words):
            # preg_match('/\bword\b/i') without /u: ASCII word characters and case folding.
            if word and re.search(rf"\b{re.escape(word)}\b", message, re.I | re.A):
                return _Refusal(aip.WORD_BANNED_MSG, status=403)
        return None

    def _refusal_for(self, reply: Reply) -> _Refusal | None:
        """The responder's refusals (before ``message_start``)."""
        if reply.kind == "token_limit":
            return self._quota_error()
        if reply.kind in ("ipBanned", "messageFlagged"):
            return _Refusal(reply.content, status=403)
        if reply.kind == "error":
            return _Refusal(reply.content)
        return None

    def _ask(self, turn: _Turn, form: Mapping[str, str]) -> Reply:
        """Log the user turn, load the history (A.5, C.2 item 8), ask the responder.

        The plugin logs the message first and then drops a trailing user turn from the
        loaded thread: that is the message just logged, so the model sees the stored turns
        before it (last ``max_messages``) plus the message.
        """
        user_turn = {"role": "user", "content": turn.message}
        with self._lock:
            thread = self._history.setdefault(turn.key, [])
            turns = list(thread)
            thread.append(user_turn)
        keep = self.options.max_messages
        upstream = [*(turns[-keep:] if keep > 0 else []), user_turn]
        chat = ChatRequest(
            message=turn.message, form=dict(form), client_id=turn.key[2], upstream_messages=upstream
        )
        reply = self.ask(chat)
        if reply.kind in ("token_limit", "ipBanned", "messageFlagged"):
            with self._lock:  # the plugin refuses these before logging the message
                if thread and thread[-1] == user_turn:
                    thread.pop()
        if reply.kind == "checkbox":  # chatgpt.es' own answer, here just text
            reply = Reply.text(CHECKBOX_MESSAGE)
        return reply

    def _store_reply(self, turn: _Turn, text: str) -> None:
        cost = int((len(turn.message) + len(text)) / 100 * 21)  # the estimate, as legacy
        session = turn.key[2]
        with self._lock:
            self._history.setdefault(turn.key, []).append({"role": "assistant", "content": text})
            self._usage[session] = self._usage.get(session, 0) + cost

    def message_id(self) -> str:
        """``'aipkit-msg-' . uniqid('', true)``: 8 + 5 hex digits, then ``%.8F`` of 0-10."""
        now = self.emu.now()
        seconds = int(now)
        micros = (int((now - seconds) * 1_000_000) + next(self._uniq)) % 1_000_000
        digits = secrets.randbelow(10**9)
        entropy = f"{digits // 10**8}.{digits % 10**8:08d}"
        return f"{aip.MESSAGE_ID_PREFIX}{seconds:08x}{micros:05x}{entropy}"

    # --- aipkit_frontend_chat_stream (A.3.3, A.3.4, C.2 items 6-8) --------------------------

    async def _stream(self, incoming: Incoming, headers: dict[str, str]) -> web.StreamResponse:
        sse = _Sse(self, incoming.request, headers)
        turn = self._stream_gate(incoming, sse) or self._stream_turn(incoming)
        if isinstance(turn, _Refusal):
            return await sse.fail(turn)
        reply = self._ask(turn, incoming.query)  # step 8
        if reply.kind == "raw":
            return raw_response(reply)
        if reply.kind in FAULT_KINDS:
            return await send_fault(incoming.request, reply)
        refusal = self._refusal_for(reply)
        if refusal is not None:
            return await sse.fail(refusal)
        return await self._answer(sse, reply, turn)

    def _stream_gate(self, incoming: Incoming, sse: _Sse) -> _Refusal | None:
        """Steps 2-3: CORS (its headers join the stream's), then the nonce."""
        bot_id = wp.absint(incoming.query.get("bot_id", ""))
        cors = self._cross_origin(incoming.request, bot_id, embed=False)
        if isinstance(cors, _Refusal):
            return cors
        sse.headers.update(cors)
        if not self._nonce_ok(incoming.fields.get(aip.NONCE_FIELD, "")):  # check_ajax_referer
            old = self.version < aip.V_STREAM_NONCE_TEXT
            return _Refusal(aip.OLD_STREAM_NONCE_MSG if old else aip.STREAM_NONCE_MSG)
        return None

    def _stream_turn(self, incoming: Incoming) -> _Turn | _Refusal:
        """Steps 4-7, from ``$_GET``: the cached message, the ids, quota and moderation."""
        params = incoming.query
        message = self.cached_message(params.get("cache_key", ""))
        if isinstance(message, _Refusal):
            return message
        bot_id = wp.absint(params.get("bot_id", ""))
        conversation = wp.sanitize_key(params.get("conversation_uuid", ""))
        session = wp.sanitize_text_field(params.get("session_id", ""))
        turn = _Turn((bot_id, conversation, session), message)
        required = (
            (self._published(bot_id), aip.INVALID_BOT_MSG),
            (bool(conversation), aip.CONVERSATION_MISSING_MSG),
            (bool(session), aip.SESSION_MISSING_MSG),
        )
        return self._guest_checks(incoming.request, turn, required) or turn

    async def _answer(self, sse: _Sse, reply: Reply, turn: _Turn) -> web.StreamResponse:
        """Step 9 and the relay of A.3.4: ``message_start``, the parts, ``done`` or not."""
        await sse.event("message_start", {"message_id": self.message_id()})
        relay = _Relay()
        for part in reply.parts if reply.kind == "sequence" else (reply,):
            if part.kind in _ENDINGS:
                return await self._end_early(sse, part, turn, relay)
            await self._relay(sse, part, relay)
        if not relay.sent:
            await sse.error(aip.NO_DATA_MSG, done=False)
            return await sse.finish()
        self._store_reply(turn, relay.text)
        if relay.response_id is not None:
            await sse.event(aip.RESPONSE_ID_EVENT, {"id": relay.response_id})
        await sse.event("done", {"finished": True, **relay.done_extra})
        return await sse.finish()

    async def _relay(self, sse: _Sse, part: Reply, relay: _Relay) -> None:
        """One part of the answer: text as ``{"delta":…}`` events, or a named event."""
        if part.kind == "text":
            pieces = split_answer(part.content)
            if pieces:
                await self._begin(sse, relay)
            for piece in pieces:
                await sse.data({"delta": piece})
            relay.text, relay.sent = relay.text + part.content, relay.sent or bool(pieces)
        elif part.kind == "warning":  # non-fatal; its text joins the stored reply
            await self._begin(sse, relay)
            await sse.error(part.content, name="warning", done=False)
            relay.text, relay.sent = relay.text + part.content, True
        elif part.kind == "aipkit_event":
            await self._begin(sse, relay)
            await sse.event(part.content, part.data)
            relay.sent = True
            if part.content in _DONE_EXTRAS:
                relay.done_extra[part.content] = part.data

    async def _begin(self, sse: _Sse, relay: _Relay) -> None:
        """The upstream response began: on the Responses API, its two ``status`` events."""
        if relay.response_id is not None or not self.options.responses_api:
            return
        relay.response_id = aip.RESPONSE_ID_PREFIX + secrets.token_hex(16)
        for status in aip.RESPONSE_STATUSES:
            data = {"type": status, "status": "in_progress", "response_id": relay.response_id}
            await sse.event("status", data)

    async def _end_early(
        self, sse: _Sse, part: Reply, turn: _Turn, relay: _Relay
    ) -> web.StreamResponse:
        """A provider or transport failure after ``message_start``: no ``done``."""
        if part.kind == "site_error":  # provider HTTP error: nothing logged
            await sse.error(aip.API_ERROR_PREFIX + part.content, done=False)
            return await sse.finish()
        if relay.text:  # a transport error: the partial reply is logged
            self._store_reply(turn, relay.text)
        if part.kind == "exception":
            await sse.error(aip.CONNECTION_ERROR_PREFIX + part.content, done=False)
            return await sse.finish()
        await asyncio.sleep(part.seconds)  # reset or hang: the connection drops mid-stream
        abort(sse.request)

    # --- aipkit_frontend_chat_message, 2.3 -> 2.4.0 (A.3.5, C.2 item 10) --------------------

    async def _message(self, incoming: Incoming, headers: dict[str, str]) -> web.StreamResponse:
        """The JSON chat endpoint.

        Statuses, and the texts the reference lacks, from 2.4.0's
        ``ajax_frontend_chat_message.php`` and ``class-chat-message-validator.php`` (source).
        Its errors carry no ``code``.
        """
        bot_id = wp.absint(incoming.form.get("bot_id", ""))
        cors = self._cross_origin(incoming.request, bot_id, embed=True)
        if isinstance(cors, _Refusal):
            return self._json_error(cors.status, cors.message, None, headers)
        headers = {**headers, **cors}
        turn = self._message_turn(incoming, bot_id)
        if isinstance(turn, _Refusal):
            return self._json_error(turn.status, turn.message, None, headers)
        reply = self._ask(turn, incoming.form)
        if reply.kind == "raw":
            return raw_response(reply)
        if reply.kind in FAULT_KINDS:
            return await send_fault(incoming.request, reply)
        refusal = self._refusal_for(reply)
        if refusal is not None:
            return self._json_error(refusal.status, refusal.message, None, headers)
        return await self._message_reply(incoming.request, reply, turn, headers)

    def _message_turn(self, incoming: Incoming, bot_id: int) -> _Turn | _Refusal:
        """The non-stream checks, from ``$_POST``: nonce, bot, ids, message, quota, moderation."""
        form = incoming.form
        nonce = incoming.fields.get(aip.NONCE_FIELD, "")
        if self.version >= aip.V_STREAM_NONCE_TEXT and not self._nonce_ok(nonce):
            return _Refusal(aip.STREAM_NONCE_MSG, status=403)
        if not self._published(bot_id):
            return _Refusal(aip.BOT_CONFIG_MSG, status=500)
        conversation = wp.sanitize_key(form.get("conversation_uuid", ""))
        session = wp.sanitize_text_field(form.get("session_id", ""))
        turn = _Turn((bot_id, conversation, session), form.get("message", "").replace("\0", ""))
        required = (
            (bool(conversation), aip.CONVERSATION_REQUIRED_MSG),
            (bool(session), aip.SESSION_MISSING_MSG),
            (bool(turn.message or form.get("image_inputs")), aip.EMPTY_MESSAGE_MSG),
        )
        return self._guest_checks(incoming.request, turn, required) or turn

    async def _message_reply(
        self, request: web.Request, reply: Reply, turn: _Turn, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        """The answer as one JSON object, or the provider's failure as a 400."""
        text, extra = "", {}
        for part in reply.parts if reply.kind == "sequence" else (reply,):
            if part.kind in ("site_error", "exception"):
                site = part.kind == "site_error"
                prefix = aip.API_ERROR_PREFIX if site else aip.CONNECTION_ERROR_PREFIX
                return self._json_error(400, prefix + part.content, None, headers)
            if part.kind in ("reset", "hang"):
                await asyncio.sleep(part.seconds)
                abort(request)
            if part.kind in ("text", "warning"):
                text += part.content
            elif part.kind == "aipkit_event" and part.content in _DONE_EXTRAS:
                extra[part.content] = part.data
        self._store_reply(turn, text)
        data = {"reply": text, "message_id": self.message_id(), **extra}
        return self._json(200, {"success": True, "data": data}, headers)


class _Sse:
    """The stream reply (A.3.4): headers and preamble on first use, one write per event."""

    def __init__(self, site: AipkitSite, request: web.Request, headers: Mapping[str, str]) -> None:
        self._site, self.request = site, request
        old = site.version < aip.V_PREAMBLE
        stream_headers = {**headers, **aip.SSE_HEADERS}
        if old:
            stream_headers["Cache-Control"] = aip.OLD_CACHE_CONTROL
        preamble = b"" if old else aip.PREAMBLE
        self._writer = StreamWriter(site.emu, request, stream_headers, preamble=preamble)

    @property
    def headers(self) -> CIMultiDict[str]:
        """The stream's headers (changes count until the first event)."""
        return self._writer.headers

    async def event(self, name: str, data: Any, event_id: str | None = None) -> None:
        """``event: <name>``, maybe ``id: <id>``, ``data: <json>``, then a blank line."""
        head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id is not None else "")
        await self._writer.write(f"{head}data: {wp.php_json_unicode(data)}\n\n".encode())

    async def data(self, data: Any) -> None:
        """An unnamed ``data: <json>`` event."""
        await self._writer.write(f"data: {wp.php_json_unicode(data)}\n\n".encode())

    async def error(
        self,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        name: str = "error",
        done: bool = True,
    ) -> None:
        """``send_sse_error``: ``{"error": …}`` with ``id: err-<unix>``, then maybe ``done``."""
        event_id = f"{aip.ERROR_ID_PREFIX}{int(self._site.emu.now())}"
        await self.event(name, {"error": message, **(extra or {})}, event_id)
        if done:
            await self.event("done", {"finished": True})

    async def fail(self, refusal: _Refusal) -> web.StreamResponse:
        """An error before ``message_start``: ``error`` + ``done`` (A.3.4 termination rules)."""
        await self.error(refusal.message, extra=refusal.extra)
        return await self.finish()

    async def finish(self) -> web.StreamResponse:
        """End the response (PHP exits)."""
        return await self._writer.finish()
