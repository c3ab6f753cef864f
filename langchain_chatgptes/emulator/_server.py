"""The emulated chatgpt.es: an aiohttp server in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

from langchain_chatgptes.emulator import _aipkit_plugin as aip
from langchain_chatgptes.emulator import _mwai_plugin as mw
from langchain_chatgptes.emulator import _plugin as plugin
from langchain_chatgptes.emulator import _wordpress as wp
from langchain_chatgptes.emulator._aipkit import AipkitSite, request_action
from langchain_chatgptes.emulator._aipkit_pages import AipkitLayout
from langchain_chatgptes.emulator._faults import FAULT_KINDS, raw_response, send_fault
from langchain_chatgptes.emulator._mwai import MwaiSite, rest_route
from langchain_chatgptes.emulator._pages import (
    CHALLENGE_HEADERS,
    CHALLENGE_PAGE,
    NOT_FOUND_PAGE,
    PageFacts,
    PageVariant,
    render_page,
    with_decoys,
)
from langchain_chatgptes.emulator._wire import json_body, sse_events
from langchain_chatgptes.emulator.responders import ChatRequest, EchoResponder, Reply, Responder

_ACTIONS = (plugin.ACTION, plugin.WIDGET_ACTION)  # the shortcode and the widget share a handler
_PAGES = {"/": "", "/chat/": "chat"}
_HTML = "text/html; charset=UTF-8"
_JSON = "application/json; charset=UTF-8"
_NOCACHE = wp.NOCACHE_HEADERS
_USED_PORTS: set[int] = set()
"""Ports earlier emulators of this process listened on: a new one never reuses them, so
a client's page cache (keyed by URL) cannot mistake one emulated site for another."""


def _peer(request: web.Request) -> tuple[str, int]:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return (str(peer[0]), int(peer[1])) if peer else ("", 0)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received.

    Attributes:
        method: HTTP method.
        path: URL path.
        query: Query parameters (a later duplicate wins, as in PHP).
        headers: Request headers, names lower-cased.
        form: Parsed body fields (urlencoded or multipart); ``{}`` for GET.
        body: The raw body.
        time: When it arrived, on the emulator's clock.
        nonce_valid: For admin-ajax POSTs, whether ``_wpnonce`` verified; in AIPKit mode,
            for the chat actions (cache, stream, non-stream message), whether ``_ajax_nonce``
            verified where the plugin reads it; in AI Engine mode, for REST requests, whether
            the nonce ``rest_cookie_check_errors`` reads (``_wpnonce``, else the
            ``X-WP-Nonce`` header) verified (None when there is none); None otherwise.
        peer: The client's address and port (one per connection: kept-alive connections
            show the same port).
        json: The decoded body when it is JSON-typed (``WP_REST_Request`` rules: e.g.
            ``application/json``) and decodes; None otherwise. The AI Engine submit's
            ``botId``, ``newMessage``, ``messages``, ``stream``, … are read from here.
        cookies: The request's cookies (``$_COOKIE``: url-decoded, the first of a name wins).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    body: bytes
    time: float
    nonce_valid: bool | None
    peer: tuple[str, int] = ("", 0)
    json: Any = None
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        """The admin-ajax ``action`` (``$_REQUEST``: the body's over the query's), or ``""``."""
        return request_action(self.query, self.form) if self.path == plugin.AJAX_PATH else ""

    @property
    def route(self) -> str:
        """The WordPress REST route addressed (``/wp-json/<route>`` or ``?rest_route=``), or ``""``.

        E.g. ``/mwai-ui/v1/chats/submit``; ``/`` for the index.
        """
        return rest_route(self.path, self.query) or ""


@dataclass(kw_only=True, eq=False)
class Emulator:
    r"""A local chatgpt.es: WordPress page with the AI Power chat box, and its admin-ajax endpoint.

    Every constructor argument is also a plain attribute that tests may change while the
    server runs (``emu.stream = True``, ``emu.responder = ScriptedResponder([...])``).

    ``plugin="aipkit"`` turns the site into one running AIPKit (AI Power / "AI Puffer"
    >= 2.3, ``shared/reference/wp-chat-plugins.md`` Part A): the page carries
    ``data-config`` bots, admin-ajax answers ``aipkit_cache_sse_message``,
    ``aipkit_frontend_chat_stream`` (SSE), ``aipkit_get_frontend_chat_nonce`` and, before
    2.4.1, ``aipkit_frontend_chat_message``, and the legacy actions get HTTP 400 ``0``.
    ``stream``, ``nonce_failure``, ``sanitize``, ``checkbox_field`` and
    ``legacy_trailing_json`` are legacy-only; ``banned_words`` (``/\bword\b/i``),
    ``banned_ips`` and ``token_limit`` (guest tokens per ``session_id``; ``0`` disables
    guests; refused once the usage reaches it) apply to both.

    ``plugin="mwai"`` turns it into a site running AI Engine (Meow Apps) 3.6.2
    (``shared/reference/wp-chat-plugins.md`` Part B): the page carries
    ``div.mwai-chatbot-container`` bots (``data-params``/``data-system``/``data-theme``), the
    WordPress REST API (``/wp-json/…`` or ``?rest_route=…``) answers
    ``POST /mwai/v1/start_session`` and ``POST /mwai-ui/v1/chats/submit`` (JSON, or
    ``data:`` lines when the body says ``"stream": true``), every REST request passes
    ``rest_cookie_check_errors`` first, and admin-ajax registers nothing (HTTP 400 ``0``)
    unless ``page_variant="mixed"``, where AIPKit runs too. ``stream``, ``nonce_failure``,
    ``sanitize``, ``checkbox_field`` and ``legacy_trailing_json`` do nothing there;
    ``banned_words`` (``/\bword\b/iu`` on ``newMessage``), ``banned_ips`` (addresses or CIDR
    ranges) and ``token_limit`` (guest *queries* per session, the plugin's default limit
    type; ``0`` refuses every one) apply; ``latency`` delays every REST request but OPTIONS.

    Attributes:
        plugin: ``wpaicg`` (the legacy AI Power plugin <= 2.2), ``aipkit`` or ``mwai``.
        host: Interface to listen on.
        port: Port (0 picks a free one; read it back after :meth:`start`).
        stream: The plugin's ``wpaicg_shortcode_stream`` option: answer with an event stream.
        nonce_failure: ``modern`` (plugin >= 1.8.91: HTTP 403 "link expired") or ``legacy``
            (200 JSON "Nonce verification failed"; all fields read from ``$_REQUEST``).
        nonce_life: WordPress ``nonce_life`` in seconds (a nonce lives half to all of it).
        clock: Time source, in seconds; :meth:`advance` adds an offset to it.
        secret: The site's nonce salt.
        post_id: The page's post id.
        latency: Seconds to wait before answering an admin-ajax POST (AIPKit: every
            admin-ajax request but an OPTIONS preflight).
        page_latency: Seconds to wait before answering a page GET.
        chunk_delay: Seconds between two stream events.
        legacy_trailing_json: Append the success JSON after ``data: [DONE]`` (1.8.79-1.8.85).
        cloudflare: Which requests get a Cloudflare challenge instead of the site.
        checkbox_field: chatgpt.es' consent field; a POST without it set to ``"1"`` gets
            :meth:`Reply.checkbox`.
        sanitize: ``raw`` (plugin >= 1.8.96) or ``text_field`` (``sanitize_text_field``).
        banned_words: The plugin's banned words (matched per space-separated word).
        banned_ips: The plugin's banned client addresses.
        token_limit: Guest token limit per ``wpaicg_chat_client_id`` (None: unlimited).
        page_variant: ``standard``, ``minified``, ``noisy``, ``no_chat_box``,
            ``no_data_nonce`` or ``no_nonce`` HTML (see ``render_page``); in AIPKit mode
            ``standard``, ``both`` (a stale legacy chat box before the bots) or
            ``no_chat_box`` (the shortcode printed verbatim), see ``render_aipkit_page``; in
            AI Engine mode ``standard``, ``no_chat_box`` (the plugin off: shortcodes printed
            verbatim, its REST routes gone) or ``mixed`` (a stale legacy box and the
            ``aipkit_bots`` before the AI Engine bots, AIPKit's admin-ajax actions live).
            On every plugin ``decoys``: copies of the chat box pointing elsewhere where a
            browser shows nothing (a comment, a template, script text...; ``with_decoys``).
        page_endpoint: The chat endpoint the page names instead of the site's own: legacy
            ``wpaicgParams.ajax_url``, AIPKit ``data-config.ajaxUrl``, AI Engine
            ``data-system.restUrl`` (a hostile or misconfigured page pointing elsewhere).
        redirect_to: Answer every request with HTTP 301 to this base URL plus the path
            (a site that moved, or http -> https, www -> bare host).
        responder: Chooses the answers (None: :class:`EchoResponder`).
        on_flush: An opt-in observer (None: nothing is called), for benchmarks and tests
            that time a client's reading: called with the bytes of each event of an
            event-stream reply right after they were written to the socket, on the
            emulator's thread; it should return quickly and must not raise. Replies sent
            whole (JSON, :meth:`Reply.raw`) and faults (:meth:`Reply.drip`, ...) are not
            reported. AIPKit streams report the 4096-space preamble first, then each event.
        aipkit_version: The AIPKit version: ``"2.4.71"`` (latest), or e.g. ``"2.4.0"`` for
            ``data-config.streamEnabled`` and ``aipkit_frontend_chat_message``; below
            2.3.93 no preamble, below 2.3.88 ``userIp``, below 2.3.41 no refresh endpoint,
            below 2.3.31 no CORS checks, below 2.3.20 the old stream nonce text, below 2.4.5
            no ``quota_notice``.
        aipkit_bots: The bot ids on the page, in order (a repeated id renders once).
        aipkit_layout: ``inline`` or ``popup`` for every bot, or a mapping bot id -> layout
            (missing ids are inline).
        aipkit_unpublished: Bots that are drafts: on the page, but the stream says
            "Invalid chatbot specified.".
        aipkit_stream_off: Bots whose ``stream_enabled`` is off (``streamEnabled: false``;
            only shown before 2.4.1).
        aipkit_nonce_refresh: Whether ``aipkit_get_frontend_chat_nonce`` exists (False:
            a site before 2.3.41; it then answers 400 ``0``).
        aipkit_pro: The site has the Pro plan (cross-origin embedding allowed).
        aipkit_allowed_origins: The bots' ``embed_allowed_domains`` (empty: any origin,
            with Pro).
        aipkit_max_messages: History turns given to the model (the bot's ``max_messages``).
        aipkit_header_name: The bot's title (``data-config.headerName``).
        aipkit_provider: ``data-config.provider``.
        cache_faults: Replies (:meth:`Reply.raw`, ``reset``, ``hang``, ``drip``) given,
            first in first out, to the next ``aipkit_cache_sse_message`` POSTs instead of
            the plugin's answer.
        refresh_faults: The same for ``aipkit_get_frontend_chat_nonce``.
        mwai_bots: AI Engine: registered chatbot ids shown on the page, in order (each one
            renders; ``default`` always exists on the server, and any other ``botId`` a
            submit names falls back to it).
        mwai_custom_bots: AI Engine: ``customId`` s of shortcodes with server overrides,
            rendered after ``mwai_bots`` with ``botId: null``; serving the page stores their
            transient for 24 h (emulator clock); such bots have no length check.
        mwai_text_input_max_length: ``textInputMaxLength`` of the registered bots (None: no
            key, no check), or a mapping bot id -> length (missing ids: 512).
        mwai_instructions: The bots' ``instructions`` (the upstream ``system`` message;
            ``""``: none), or a mapping bot id or customId -> instructions.
        mwai_rest_nonce_in_page: Embed a guest ``wp_rest`` nonce in ``data-system.restNonce``
            (2.0.1-2.4.3, or a page cache freezing one); False: ``null`` (guests >= 2.4.4).
        mwai_start_session: Whether ``/mwai/v1/start_session`` exists (False: before 2.4.4,
            HTTP 404 ``rest_no_route``).
        mwai_stream_option: The ``ai_streaming`` option shown as ``data-system.stream`` (the
            server follows the body's ``stream`` whatever it says).
        mwai_rest_url_style: ``pretty`` (``restUrl`` ``…/wp-json``), ``relative`` (``/wp-json``,
            as a page cache may print it) or ``plain`` (``…/index.php
            ?rest_route=``; ``/wp-json/…`` is then the site's 404 page).
        mwai_max_messages: ``maxMessages``: history turns kept after ``messages[0]`` (0: all).
        mwai_moderation: Words the stand-in moderation flags in ``newMessage``
            (case-insensitive substrings; empty: moderation off).
        mwai_usage: ``usage`` in the final reply: ``True``/``"tokens"`` (estimated counts),
            ``"null"`` (``"usage": null``, as when a reply carries none) or
            ``False``/``"omit"`` (no key; 3.6.2 always has one, but clients should cope).
        session_faults: Replies (:meth:`Reply.raw`, ``reset``, ``hang``, ``drip``) given,
            first in first out, to the next ``start_session`` POSTs instead of the answer.
    """

    host: str = "127.0.0.1"
    port: int = 0
    stream: bool = False
    nonce_failure: Literal["modern", "legacy"] = "modern"
    nonce_life: float = 86400.0
    clock: Callable[[], float] = time.time
    secret: str = "emulator-nonce-salt"  # noqa: S105 - a test server's salt
    post_id: str = "2173"
    latency: float = 0.0
    page_latency: float = 0.0
    chunk_delay: float = 0.0
    legacy_trailing_json: bool = False
    cloudflare: Literal["off", "get", "post", "both"] = "off"
    checkbox_field: str | None = None
    sanitize: Literal["raw", "text_field"] = "raw"
    banned_words: Sequence[str] = ()
    banned_ips: Sequence[str] = ()
    token_limit: int | None = None
    page_variant: PageVariant = "standard"
    page_endpoint: str | None = None
    redirect_to: str | None = None
    responder: Responder | None = None
    on_flush: Callable[[bytes], None] | None = None
    plugin: Literal["wpaicg", "aipkit", "mwai"] = "wpaicg"
    aipkit_version: str = aip.LATEST_VERSION
    aipkit_bots: Sequence[int] = (123,)
    aipkit_layout: AipkitLayout | Mapping[int, AipkitLayout] = "inline"
    aipkit_unpublished: Collection[int] = ()
    aipkit_stream_off: Collection[int] = ()
    aipkit_nonce_refresh: bool = True
    aipkit_pro: bool = False
    aipkit_allowed_origins: Sequence[str] = ()
    aipkit_max_messages: int = aip.MAX_MESSAGES
    aipkit_header_name: str = "Support Bot"
    aipkit_provider: str = "OpenAI"
    cache_faults: list[Reply] = field(default_factory=list)
    refresh_faults: list[Reply] = field(default_factory=list)
    mwai_bots: Sequence[str] = (mw.DEFAULT_BOT,)
    mwai_custom_bots: Sequence[str] = ()
    mwai_text_input_max_length: int | Mapping[str, int | None] | None = mw.DEFAULT_MAX_LENGTH
    mwai_instructions: str | Mapping[str, str] = mw.DEFAULT_INSTRUCTIONS
    mwai_rest_nonce_in_page: bool = False
    mwai_start_session: bool = True
    mwai_stream_option: bool = True
    mwai_rest_url_style: Literal["pretty", "plain", "relative"] = "pretty"
    mwai_max_messages: int = mw.MAX_MESSAGES
    mwai_moderation: Sequence[str] = ()
    mwai_usage: bool | Literal["tokens", "null", "omit"] = True
    session_faults: list[Reply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._usage: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._aipkit = AipkitSite(self)
        self._mwai = MwaiSite(self)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Emulator:
        """Serve in a background daemon thread; return once listening."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # e.g. port in use: re-raised in start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            # Handlers still waiting (a hanging reply, a slow stream) end with the server.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        thread = threading.Thread(target=run, name="chatgptes-emulator", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread, self._loop = thread, loop
        return self

    async def _listen(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)  # PHP's default post_max_size
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # A short grace period: stop() should not hang on a client that stopped reading.
        runner = web.AppRunner(app, shutdown_timeout=0.25, access_log=None)
        await runner.setup()
        try:
            listener = self._socket()
            await web.SockSite(runner, listener).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self.port = runner, listener.getsockname()[1]
        _USED_PORTS.add(self.port)

    def _socket(self) -> socket.socket:
        """A listening socket on ``port``, or on a port no earlier emulator used."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rejected: list[socket.socket] = []  # held open so the kernel offers other ports
        try:
            while True:
                listener = socket.socket(family, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    listener.bind((self.host, self.port))
                except BaseException:
                    listener.close()
                    raise
                if self.port or listener.getsockname()[1] not in _USED_PORTS:
                    listener.listen(128)
                    return listener
                rejected.append(listener)
        finally:
            for listener in rejected:
                listener.close()

    def stop(self) -> None:
        """Shut the server down and join its thread; safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server, without a trailing slash."""
        if not self.port:
            raise RuntimeError("The emulator has no port yet: call start() first.")
        # A wildcard address is not a URL host; clients reach it over loopback.
        wildcard = self.host in ("", "0.0.0.0", "::")  # noqa: S104
        host = "127.0.0.1" if wildcard else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    # --- inspection ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def page_requests(self) -> list[RecordedRequest]:
        """The GETs of the chat page (AI Engine: not those with a ``rest_route``)."""
        return [
            r
            for r in self.requests
            if r.method == "GET" and r.path in (*_PAGES, "/chat") and not self._is_rest(r)
        ]

    def chat_requests(self) -> list[RecordedRequest]:
        """The POSTs to admin-ajax.

        In AIPKit mode, every admin-ajax request of a chat turn: cache POSTs, stream GETs and
        non-stream message POSTs (not nonce refreshes, not OPTIONS preflights). In AI Engine
        mode, the ``/mwai-ui/v1/chats/submit`` POSTs (:meth:`submit_requests`).
        """
        if self.plugin == "mwai":
            return self.submit_requests()
        if self.plugin == "aipkit":
            return [r for r in self._ajax_calls() if r.action in aip.CHAT_ACTIONS]
        return [r for r in self.requests if r.method == "POST" and r.path == plugin.AJAX_PATH]

    def _is_rest(self, record: RecordedRequest) -> bool:
        return self.plugin == "mwai" and self._mwai.route_of(record.path, record.query) is not None

    def rest_requests(self) -> list[RecordedRequest]:
        """AI Engine: every request the WordPress REST API answered (any route or method)."""
        return [r for r in self.requests if self._is_rest(r)]

    def _route_posts(self, route: str) -> list[RecordedRequest]:
        # WordPress matches routes case-insensitively.
        return [
            r
            for r in self.rest_requests()
            if r.method == "POST" and r.route.lower() == route.lower()
        ]

    def submit_requests(self) -> list[RecordedRequest]:
        """AI Engine: the ``POST /mwai-ui/v1/chats/submit`` requests (``.json`` is the body)."""
        return self._route_posts(mw.SUBMIT_ROUTE)

    def session_requests(self) -> list[RecordedRequest]:
        """AI Engine: the ``POST /mwai/v1/start_session`` requests."""
        return self._route_posts(mw.SESSION_ROUTE)

    def mwai_checksum(self, chat_id: str) -> str | None:
        """AI Engine: the stored messages checksum of a ``chatId`` (B.4), if any."""
        return self._mwai.checksum(chat_id)

    def mwai_integrity_mismatches(self) -> list[str]:
        """AI Engine: the ``chatId`` s whose messages failed the checksum (only logged, B.4)."""
        return self._mwai.integrity_mismatches()

    def ajax_requests(self) -> list[RecordedRequest]:
        """Every request to admin-ajax, whatever its method or action."""
        return [r for r in self.requests if r.path == plugin.AJAX_PATH]

    def _ajax_calls(self) -> list[RecordedRequest]:
        return [r for r in self.ajax_requests() if r.method != "OPTIONS"]

    def cache_requests(self) -> list[RecordedRequest]:
        """The ``aipkit_cache_sse_message`` requests (OPTIONS preflights left out)."""
        return [r for r in self._ajax_calls() if r.action == aip.CACHE_ACTION]

    def stream_requests(self) -> list[RecordedRequest]:
        """The ``aipkit_frontend_chat_stream`` requests (OPTIONS preflights left out)."""
        return [r for r in self._ajax_calls() if r.action == aip.STREAM_ACTION]

    def refresh_requests(self) -> list[RecordedRequest]:
        """The ``aipkit_get_frontend_chat_nonce`` requests (OPTIONS preflights left out)."""
        return [r for r in self._ajax_calls() if r.action == aip.REFRESH_ACTION]

    def aipkit_history(
        self, bot_id: int, conversation_uuid: str, session_id: str
    ) -> list[dict[str, str]]:
        """A copy of the conversation AIPKit stored for these ids (roles user/assistant)."""
        return self._aipkit.history(bot_id, conversation_uuid, session_id)

    def clear(self) -> None:
        """Forget recorded requests and token usage (AIPKit: also cache and histories).

        AI Engine: also the custom bots' transients (served again with the next page), the
        checksums, the integrity warnings and the guests' query counts.
        """
        with self._lock:
            self._requests.clear()
            self._usage.clear()
        self._aipkit.clear()
        self._mwai.clear()

    def now(self) -> float:
        """The emulator's time: ``clock()`` plus what :meth:`advance` added."""
        return self.clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (to expire nonces without waiting)."""
        self._offset += seconds

    def current_nonce(self) -> str:
        """The chat nonce the page shows now (AIPKit: ``aipkit_frontend_chat_nonce``).

        AI Engine: the guest ``wp_rest`` nonce ``start_session`` hands out.
        """
        if self.plugin == "mwai":
            return self._mwai.nonce()
        if self.plugin == "aipkit":
            return self._aipkit.nonce()
        return wp.create_nonce(self.secret, plugin.NONCE_ACTION, self.now(), self.nonce_life)

    # --- requests ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        query = dict(request.query.items())
        form = (
            wp.parse_form(request.headers.get("Content-Type", ""), body)
            if request.method == "POST"
            else {}
        )
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        is_chat = request.method == "POST" and request.path == plugin.AJAX_PATH
        nonce = {**query, **form}.get("_wpnonce", "")
        nonce_valid = self._nonce_ok(nonce) if is_chat else None
        route = self._mwai.route_of(request.path, query) if self.plugin == "mwai" else None
        if self._aipkit_live():
            is_ajax = request.path == plugin.AJAX_PATH
            nonce_valid = self._aipkit.nonce_valid(query, form) if is_ajax else None
            is_chat = is_ajax and request.method != "OPTIONS"  # latency for every answer
        elif self.plugin == "mwai":
            is_chat, nonce_valid = False, None  # admin-ajax has no action registered
        if route is not None:
            nonce_valid = self._mwai.nonce_valid(query, form, headers)
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=query,
            headers=headers,
            form=form,
            body=body,
            time=self.now(),
            nonce_valid=nonce_valid,
            peer=_peer(request),
            json=wp.json_params(request.headers.get("Content-Type", ""), body)[0],
            cookies=wp.parse_cookies(request.headers.get("Cookie", "")),
        )
        with self._lock:
            self._requests.append(record)

        if self.redirect_to is not None:
            raise web.HTTPMovedPermanently(self.redirect_to.rstrip("/") + request.path_qs)
        if self.cloudflare == "both" or self.cloudflare == request.method.lower():
            return web.Response(status=403, body=CHALLENGE_PAGE.encode(), headers=CHALLENGE_HEADERS)
        if route is not None:
            if self.latency and request.method != "OPTIONS":
                await asyncio.sleep(self.latency)
            return await self._mwai.rest(request, route, query, form, body)
        if request.path == plugin.AJAX_PATH:
            if is_chat and self.latency:
                await asyncio.sleep(self.latency)
            return await self._ajax(request, query, form)
        if request.method in ("GET", "HEAD") and request.path in _PAGES:
            if self.page_latency:
                await asyncio.sleep(self.page_latency)
            return self._page(_PAGES[request.path], request)
        if request.method in ("GET", "HEAD") and request.path == "/chat":
            # WordPress' canonical redirect adds the trailing slash.
            raise web.HTTPMovedPermanently(f"{self.base_url}/chat/")
        return web.Response(
            status=404, body=NOT_FOUND_PAGE.encode(), headers={"Content-Type": _HTML, **_NOCACHE}
        )

    def _nonce_ok(self, nonce: str) -> bool:
        return wp.verify_nonce(nonce, self.secret, plugin.NONCE_ACTION, self.now(), self.nonce_life)

    def _aipkit_live(self) -> bool:
        """Whether AIPKit answers admin-ajax: its own mode, or beside AI Engine ("mixed")."""
        return self.plugin == "aipkit" or (self.plugin == "mwai" and self.page_variant == "mixed")

    def _page(self, path: str, request: web.Request) -> web.Response:
        links = f'<{self.base_url}/wp-json/>; rel="https://api.w.org/"'
        if self.plugin == "mwai":
            html = self._decoys(self._mwai.page(path, request))
            headers = {"Content-Type": _HTML, "Link": self._mwai.link_header()}
            return web.Response(body=html.encode(), headers=headers)
        if self.plugin == "aipkit":
            html = self._decoys(self._aipkit.page(path, request))
            return web.Response(body=html.encode(), headers={"Content-Type": _HTML, "Link": links})
        now = self.now()
        facts = PageFacts(
            base_url=self.base_url,
            path=path,
            post_id=self.post_id,
            nonce=self.current_nonce(),
            img_nonce=wp.create_nonce(self.secret, "wpaicg-imagelog", now, self.nonce_life),
            rest_nonce=wp.create_nonce(self.secret, "wp_rest", now, self.nonce_life),
            stream=self.stream,
            ajax_url=self.page_endpoint or "",
        )
        html = self._decoys(render_page(facts, self.page_variant))
        return web.Response(body=html.encode(), headers={"Content-Type": _HTML, "Link": links})

    def _decoys(self, html: str) -> str:
        return with_decoys(html, self.base_url) if self.page_variant == "decoys" else html

    def _cors(self, origin: str) -> dict[str, str]:
        # send_origin_headers(): only the site's own origin, over http or https, is echoed.
        site = urlsplit(self.base_url)
        allowed = {
            f"{scheme}://{host}"
            for scheme in ("http", "https")
            for host in (site.hostname, site.netloc)
        }
        if origin in allowed:
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
            }
        return {}

    async def _ajax(
        self, request: web.Request, query: dict[str, str], form: dict[str, str]
    ) -> web.StreamResponse:
        """admin-ajax.php and the plugin's handler, check by check."""
        cors = self._cors(request.headers.get("Origin", ""))
        if self._aipkit_live():
            core = {"Content-Type": _HTML, "X-Robots-Tag": "noindex", **cors}
            return await self._aipkit.ajax(request, query, form, core)
        if self.plugin == "mwai":  # AI Engine registers no admin-ajax action for visitors
            headers = {"Content-Type": _HTML, "X-Robots-Tag": "noindex", **cors}
            return web.Response(status=400, text="0", headers=headers)
        if request.method == "OPTIONS":
            return web.Response(
                status=200 if cors else 403, headers={"Content-Type": _HTML, **cors}
            )
        fields = {**query, **form}  # PHP's $_REQUEST: POST overrides GET
        headers = {"Content-Type": _HTML, "X-Robots-Tag": "noindex", **cors}
        if fields.get("action") not in _ACTIONS:
            return web.Response(status=400, text="0", headers={**headers, **_NOCACHE})
        headers.update({"X-Content-Type-Options": "nosniff", **_NOCACHE})
        if not self._nonce_ok(fields.get("_wpnonce", "")):
            return self._nonce_failure(request, fields, headers)
        if self.nonce_failure == "modern":
            fields = form  # from 1.8.91 the handler reads $_POST only
        out = _Output(self, request, headers)
        if self.checkbox_field and fields.get(self.checkbox_field) != "1":
            return await out.send(Reply.checkbox())
        raw_message = fields.get("message", "")
        keep_raw = self.sanitize == "raw"
        message = raw_message if keep_raw else wp.sanitize_text_field(raw_message)
        client_id = fields.get("wpaicg_chat_client_id", "")
        flags = []
        if request.remote in self.banned_ips:
            flags.append(Reply.flag("ipBanned", plugin.IP_BANNED_MSG))
        if {word.strip().lower() for word in self.banned_words} & set(message.lower().split(" ")):
            flags.append(Reply.flag("messageFlagged", plugin.WORD_BANNED_MSG))
        for flag in flags:
            if not self.stream:
                return await out.send(flag)
            await out.send(flag, last=False)  # the plugin does not exit here in stream mode
        with self._lock:
            used = self._usage.get(client_id, 0)
        if self.token_limit is not None and used > self.token_limit:
            return await out.send(Reply.token_limit())
        if not message:
            return await out.send(Reply("error", plugin.EMPTY_MESSAGE_MSG))
        chat = ChatRequest(
            message=message,
            form=dict(fields),
            client_id=client_id,
            upstream_messages=wp.upstream_messages(
                fields.get("wpaicg_chat_history", ""), message, keep_newlines=keep_raw
            ),
        )
        answer = (self.responder or EchoResponder())(chat)
        reply = Reply.text(answer) if isinstance(answer, str) else answer
        if reply.kind in ("sequence", "warning", "aipkit_event", "mwai_event"):  # their text
            reply = Reply.text(reply.answer_text())
        if reply.kind == "text":
            # The plugin's stream-mode estimate: 21 tokens per 100 characters.
            cost = int((len(message) + len(reply.content)) / 100 * 21)
            with self._lock:
                self._usage[client_id] = self._usage.get(client_id, 0) + cost
        return await out.send(reply)

    def _nonce_failure(
        self, request: web.Request, fields: Mapping[str, str], headers: dict[str, str]
    ) -> web.Response:
        if self.nonce_failure == "legacy":
            body = wp.php_json({"status": "error", "msg": plugin.NONCE_FAILED_MSG}).encode()
            return web.Response(body=body, headers={**headers, "Content-Type": _JSON})
        # wp_nonce_ays() via the Ajax die handler: bare text + a link back to a same-site referer.
        text = plugin.NONCE_EXPIRED_TEXT
        referer = fields.get("_wp_http_referer") or request.headers.get("Referer", "")
        same_site = urlsplit(referer).hostname in (None, urlsplit(self.base_url).hostname)
        own_uri = referer in (request.path_qs, self.base_url + request.path_qs)
        if referer and same_site and not own_uri:
            text += f'</p><p><a href="{wp.esc_url(referer)}">Please try again.</a>'
        return web.Response(status=403, body=text.encode(), headers=headers)


class _Output:
    """Sends one admin-ajax answer: a JSON response, or events on a lazily opened stream."""

    def __init__(self, emulator: Emulator, request: web.Request, headers: dict[str, str]) -> None:
        self._emulator, self._request, self._headers = emulator, request, headers
        self._stream: web.StreamResponse | None = None

    async def send(self, reply: Reply, *, last: bool = True) -> web.StreamResponse:
        """Send a reply; with ``last=False`` keep the stream open for more."""
        emu = self._emulator
        if reply.kind in FAULT_KINDS:
            return await send_fault(self._request, reply)
        events = None
        if emu.stream:
            created = int(emu.now())
            events = sse_events(
                reply, created=created, legacy_trailing_json=emu.legacy_trailing_json
            )
        if events is None:
            body = reply.body if reply.kind == "raw" else json_body(reply)
            if self._stream is not None:
                events = [body]  # PHP echoes it into the stream already under way
            elif reply.kind == "raw":
                return raw_response(reply)
            else:
                return web.Response(body=body, headers={**self._headers, "Content-Type": _JSON})
        stream = self._stream
        for event in events:
            if stream is None:
                stream = self._stream = web.StreamResponse(headers=self._stream_headers())
                await stream.prepare(self._request)
            elif emu.chunk_delay:
                await asyncio.sleep(emu.chunk_delay)
            # Each write goes straight to the socket (TCP_NODELAY, no compression, chunked).
            try:
                await stream.write(event)
            except ConnectionResetError:  # the client went away (e.g. aborted the stream)
                return stream
            if emu.on_flush is not None:
                emu.on_flush(event)
        if stream is None:
            raise RuntimeError(f"empty event stream for {reply!r}")
        if last:
            await stream.write_eof()
        return stream

    def _stream_headers(self) -> dict[str, str]:
        stream_headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return {**self._headers, "Content-Type": "text/event-stream", **stream_headers}
