"""The emulated chatgpt.es: an aiohttp server in a background thread, and the plugin it runs."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Literal, TypeVar

from aiohttp import web

from langchain_chatgptes.emulator import _aipkit_plugin as aip
from langchain_chatgptes.emulator import _mwai_plugin as mw
from langchain_chatgptes.emulator._aipkit import AipkitOptions, AipkitSite
from langchain_chatgptes.emulator._mwai import MwaiOptions, MwaiSite
from langchain_chatgptes.emulator._pages import (
    CHALLENGE_HEADERS,
    CHALLENGE_PAGE,
    NOT_FOUND_PAGE,
    PageVariant,
    with_decoys,
)
from langchain_chatgptes.emulator._plugin import AJAX_PATH
from langchain_chatgptes.emulator._records import RecordedRequest
from langchain_chatgptes.emulator._registry import DEFAULT_PLUGIN, PLUGINS, SITES
from langchain_chatgptes.emulator._site import HTML, Incoming, PluginSite
from langchain_chatgptes.emulator._wordpress import NOCACHE_HEADERS, json_params, parse_cookies
from langchain_chatgptes.emulator.responders import Responder

_PAGES = {"/": "", "/chat/": "chat"}
_USED_PORTS: set[int] = set()
"""Ports earlier emulators of this process listened on: a new one never reuses them, so
a client's page cache (keyed by URL) cannot mistake one emulated site for another."""
_Site = TypeVar("_Site", bound=PluginSite)


def _peer(request: web.Request) -> tuple[str, int]:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return (str(peer[0]), int(peer[1])) if peer else ("", 0)


@dataclass(kw_only=True, eq=False)
class Emulator:
    r"""A local chatgpt.es: a WordPress site running one chat plugin, over real HTTP.

    Every constructor argument is also a plain attribute that tests may change while the
    server runs (``emu.stream = True``, ``emu.responder = ScriptedResponder([...])``,
    ``emu.aipkit.bots = (1, 2)``).

    The server owns what every WordPress site shares (the socket, the request log, the
    clock and nonces, ``latency``, ``redirect_to``, Cloudflare, the 404 page, the page
    variants ``decoys`` and ``page_endpoint``); the plugin named by ``plugin`` (one of
    :data:`PLUGINS`) serves the page and its endpoints:

    * ``wpaicg`` (the default): the legacy AI Power plugin (<= 2.2) on admin-ajax, the
      chat.es site; ``stream``, ``nonce_failure``, ``sanitize``, ``checkbox_field`` and
      ``legacy_trailing_json`` are its settings, and ``token_limit`` counts guest tokens
      per ``wpaicg_chat_client_id`` (refused once the usage is over it).
    * ``aipkit``: AIPKit (AI Power / "AI Puffer" >= 2.3,
      ``shared/reference/wp-chat-plugins.md`` Part A), set up by ``aipkit``
      (:class:`AipkitOptions`): the page carries ``data-config`` bots, admin-ajax answers
      ``aipkit_cache_sse_message``, ``aipkit_frontend_chat_stream`` (SSE),
      ``aipkit_get_frontend_chat_nonce`` and, before 2.4.1,
      ``aipkit_frontend_chat_message``, and the legacy actions get HTTP 400 ``0``;
      ``banned_words`` (``/\bword\b/i``), ``banned_ips`` and ``token_limit`` (guest tokens
      per ``session_id``; ``0`` disables guests; refused once the usage reaches it) apply.
    * ``mwai``: AI Engine (Meow Apps) 3.6.2 (``shared/reference/wp-chat-plugins.md``
      Part B), set up by ``mwai`` (:class:`MwaiOptions`): the page carries
      ``div.mwai-chatbot-container`` bots (``data-params``/``data-system``/``data-theme``),
      the WordPress REST API (``/wp-json/…`` or ``?rest_route=…``) answers
      ``POST /mwai/v1/start_session`` and ``POST /mwai-ui/v1/chats/submit`` (JSON, or
      ``data:`` lines when the body says ``"stream": true``), every REST request passes
      ``rest_cookie_check_errors`` first, and admin-ajax registers nothing (HTTP 400 ``0``)
      unless ``page_variant="mixed"``, where AIPKit runs too; ``banned_words``
      (``/\bword\b/iu`` on ``newMessage``), ``banned_ips`` (addresses or CIDR ranges) and
      ``token_limit`` (guest *queries* per session, the plugin's default limit type; ``0``
      refuses every one) apply; ``latency`` delays every REST request but OPTIONS.

    Attributes:
        plugin: The chat plugin the site runs: one of :data:`PLUGINS` (``wpaicg``, the
            legacy AI Power plugin <= 2.2; ``aipkit``; ``mwai``).
        host: Interface to listen on.
        port: Port (0 picks a free one; read it back after :meth:`start`).
        stream: Legacy: the plugin's ``wpaicg_shortcode_stream`` option: answer with an
            event stream.
        nonce_failure: Legacy: ``modern`` (plugin >= 1.8.91: HTTP 403 "link expired") or
            ``legacy`` (200 JSON "Nonce verification failed"; all fields read from
            ``$_REQUEST``).
        nonce_life: WordPress ``nonce_life`` in seconds (a nonce lives half to all of it).
        clock: Time source, in seconds; :meth:`advance` adds an offset to it.
        secret: The site's nonce salt.
        post_id: The page's post id.
        latency: Seconds to wait before answering a chat request: legacy, an admin-ajax
            POST; AIPKit, every admin-ajax request but an OPTIONS preflight; AI Engine,
            every REST request but OPTIONS.
        page_latency: Seconds to wait before answering a page GET.
        chunk_delay: Seconds between two stream events.
        legacy_trailing_json: Legacy: append the success JSON after ``data: [DONE]``
            (1.8.79-1.8.85).
        cloudflare: Which requests get a Cloudflare challenge instead of the site.
        checkbox_field: Legacy: chatgpt.es' consent field; a POST without it set to ``"1"``
            gets :meth:`Reply.checkbox`.
        sanitize: Legacy: ``raw`` (plugin >= 1.8.96) or ``text_field``
            (``sanitize_text_field``).
        banned_words: The plugin's banned words (legacy: matched per space-separated word).
        banned_ips: The plugin's banned client addresses.
        token_limit: The guest limit (see the plugins above; None: unlimited).
        page_variant: ``standard``, ``minified``, ``noisy``, ``no_chat_box``,
            ``no_data_nonce`` or ``no_nonce`` HTML (see ``render_page``); in AIPKit mode
            ``standard``, ``both`` (a stale legacy chat box before the bots) or
            ``no_chat_box`` (the shortcode printed verbatim), see ``render_aipkit_page``; in
            AI Engine mode ``standard``, ``no_chat_box`` (the plugin off: shortcodes printed
            verbatim, its REST routes gone) or ``mixed`` (a stale legacy box and the
            ``aipkit.bots`` before the AI Engine bots, AIPKit's admin-ajax actions live).
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
        aipkit: The AIPKit site's settings (:class:`AipkitOptions`).
        mwai: The AI Engine site's settings (:class:`MwaiOptions`).
    """

    plugin: str = DEFAULT_PLUGIN
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
    aipkit: AipkitOptions = field(default_factory=AipkitOptions)
    mwai: MwaiOptions = field(default_factory=MwaiOptions)

    def __post_init__(self) -> None:
        if self.plugin not in SITES:
            raise ValueError(f"Unknown plugin {self.plugin!r}: one of {', '.join(PLUGINS)}.")
        self._offset = 0.0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._sites: dict[str, PluginSite] = {name: site(self) for name, site in SITES.items()}

    @property
    def sites(self) -> Mapping[str, PluginSite]:
        """Every plugin's site on this emulator, by name (each keeps its own state)."""
        return MappingProxyType(self._sites)

    @property
    def site(self) -> PluginSite:
        """The site of the plugin the emulator runs now (``plugin``)."""
        site = self._sites.get(self.plugin)
        if site is None:
            raise ValueError(f"Unknown plugin {self.plugin!r}: one of {', '.join(PLUGINS)}.")
        return site

    def _site_of(self, kind: type[_Site]) -> _Site:
        site = self._sites[kind.name]
        assert isinstance(site, kind)  # noqa: S101 - the registry's own entry
        return site

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
        site = self.site
        return [
            r
            for r in self.requests
            if r.method == "GET"
            and r.path in (*_PAGES, "/chat")
            and not site.serves(r.path, r.query)
        ]

    def chat_requests(self) -> list[RecordedRequest]:
        """The requests of chat turns, as the plugin makes them.

        Legacy: the POSTs to admin-ajax. AIPKit: every admin-ajax request of a chat turn:
        cache POSTs, stream GETs and non-stream message POSTs (not nonce refreshes, not
        OPTIONS preflights). AI Engine: the ``/mwai-ui/v1/chats/submit`` POSTs
        (:meth:`submit_requests`).
        """
        site = self.site
        return [r for r in self.requests if site.is_chat(r)]

    def rest_requests(self) -> list[RecordedRequest]:
        """AI Engine: every request the WordPress REST API answered (any route or method)."""
        site = self.site
        if not isinstance(site, MwaiSite):
            return []
        return [r for r in self.requests if site.is_rest(r)]

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
        return self._site_of(MwaiSite).checksum(chat_id)

    def mwai_integrity_mismatches(self) -> list[str]:
        """AI Engine: the ``chatId`` s whose messages failed the checksum (only logged, B.4)."""
        return self._site_of(MwaiSite).integrity_mismatches()

    def ajax_requests(self) -> list[RecordedRequest]:
        """Every request to admin-ajax, whatever its method or action."""
        return [r for r in self.requests if r.path == AJAX_PATH]

    def _ajax_calls(self, action: str) -> list[RecordedRequest]:
        return [r for r in self.ajax_requests() if r.method != "OPTIONS" and r.action == action]

    def cache_requests(self) -> list[RecordedRequest]:
        """AIPKit: the ``aipkit_cache_sse_message`` requests (OPTIONS preflights left out)."""
        return self._ajax_calls(aip.CACHE_ACTION)

    def stream_requests(self) -> list[RecordedRequest]:
        """AIPKit: the ``aipkit_frontend_chat_stream`` requests (OPTIONS preflights left out)."""
        return self._ajax_calls(aip.STREAM_ACTION)

    def refresh_requests(self) -> list[RecordedRequest]:
        """AIPKit: the ``aipkit_get_frontend_chat_nonce`` requests (no OPTIONS preflights)."""
        return self._ajax_calls(aip.REFRESH_ACTION)

    def aipkit_history(
        self, bot_id: int, conversation_uuid: str, session_id: str
    ) -> list[dict[str, str]]:
        """AIPKit: a copy of the conversation stored for these ids (roles user/assistant)."""
        return self._site_of(AipkitSite).history(bot_id, conversation_uuid, session_id)

    def clear(self) -> None:
        """Forget recorded requests and every plugin's state.

        Legacy: the guests' token usage. AIPKit: also the message cache and histories. AI
        Engine: the custom bots' transients (served again with the next page), the
        checksums, the integrity warnings and the guests' query counts.
        """
        with self._lock:
            self._requests.clear()
        for site in self._sites.values():
            site.clear()

    def now(self) -> float:
        """The emulator's time: ``clock()`` plus what :meth:`advance` added."""
        return self.clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (to expire nonces without waiting)."""
        self._offset += seconds

    def current_nonce(self) -> str:
        """The chat nonce a visitor gets now, from the plugin's site.

        Legacy: the page's ``data-nonce``; AIPKit: ``aipkit_frontend_chat_nonce``; AI
        Engine: the guest ``wp_rest`` nonce ``start_session`` hands out.
        """
        return self.site.nonce()

    # --- requests ------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Record the request, then answer as WordPress, its host and the plugin would."""
        incoming = await Incoming.read(request)
        site = self.site
        self._record(incoming, site)
        if self.redirect_to is not None:
            raise web.HTTPMovedPermanently(self.redirect_to.rstrip("/") + request.path_qs)
        if self.cloudflare in ("both", request.method.lower()):
            return web.Response(status=403, body=CHALLENGE_PAGE.encode(), headers=CHALLENGE_HEADERS)
        if site.serves(incoming.path, incoming.query):
            return await site.handle(incoming)
        return await self._wordpress(incoming, site)

    def _record(self, incoming: Incoming, site: PluginSite) -> None:
        content_type = incoming.headers.get("content-type", "")
        record = RecordedRequest(
            method=incoming.method,
            path=incoming.path,
            query=incoming.query,
            headers=incoming.headers,
            form=incoming.form,
            body=incoming.body,
            time=self.now(),
            nonce_valid=site.nonce_valid(incoming),
            peer=_peer(incoming.request),
            json=json_params(content_type, incoming.body)[0],
            cookies=parse_cookies(incoming.headers.get("cookie", "")),
        )
        with self._lock:
            self._requests.append(record)

    async def _wordpress(self, incoming: Incoming, site: PluginSite) -> web.StreamResponse:
        """What is not the plugin's: the chat page, WordPress' canonical redirect, a 404."""
        if incoming.method in ("GET", "HEAD") and incoming.path in _PAGES:
            if self.page_latency:
                await asyncio.sleep(self.page_latency)
            page = site.page(_PAGES[incoming.path], incoming.request)
            html = page.html
            if self.page_variant == "decoys":
                html = with_decoys(html, self.base_url)
            return web.Response(body=html.encode(), headers={"Content-Type": HTML, **page.headers})
        if incoming.method in ("GET", "HEAD") and incoming.path == "/chat":
            # WordPress' canonical redirect adds the trailing slash.
            raise web.HTTPMovedPermanently(f"{self.base_url}/chat/")
        return web.Response(
            status=404,
            body=NOT_FOUND_PAGE.encode(),
            headers={"Content-Type": HTML, **NOCACHE_HEADERS},
        )
