"""AI Engine (Meow Apps) 3.6.2 on the WordPress REST API, check by check.

An independent writing of ``shared/reference/wp-chat-plugins.md`` Part B and checklist C.3
(sections cited on each step), and of what a real 3.6.2 site sent
(``shared/reference/real-plugins.md``); nothing here comes from the client package. Pieces:

* the REST router and ``rest_cookie_check_errors`` (B.2, C.3 items 3-4);
* ``POST /mwai/v1/start_session`` (B.2, C.3 item 5): a guest session and nonce;
* ``POST /mwai-ui/v1/chats/submit`` (B.3, B.4, C.3 items 6-9): the checks, the history
  window, and the reply as ``build_final_res`` JSON or ``data:`` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import math
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from aiohttp import web
from multidict import CIMultiDict

from langchain_chatgptes.emulator import _mwai_plugin as mw
from langchain_chatgptes.emulator import _wordpress as wp
from langchain_chatgptes.emulator._aipkit import AipkitSite
from langchain_chatgptes.emulator._faults import (
    FAULT_KINDS,
    abort,
    pop_fault,
    raw_response,
    send_fault,
)
from langchain_chatgptes.emulator._mwai_pages import MwaiBot, MwaiPageFacts, render_mwai_page
from langchain_chatgptes.emulator._plugin import AJAX_PATH, CHECKBOX_MESSAGE
from langchain_chatgptes.emulator._records import rest_route
from langchain_chatgptes.emulator._site import JSON, Incoming, PluginSite, SitePage
from langchain_chatgptes.emulator._stream import StreamWriter
from langchain_chatgptes.emulator._wire import split_answer
from langchain_chatgptes.emulator.responders import ChatRequest, Reply

if TYPE_CHECKING:
    from langchain_chatgptes.emulator._records import RecordedRequest
    from langchain_chatgptes.emulator._server import Emulator

_FAILURES = ("site_error", "exception", "ipBanned", "messageFlagged")  # raised in run()


@dataclass(kw_only=True)
class MwaiOptions:
    """An AI Engine site's settings: ``Emulator(plugin="mwai", mwai=MwaiOptions(...))``.

    Mutable: tests may change them while the server runs (``emu.mwai.max_messages = 2``).

    Attributes:
        bots: Registered chatbot ids shown on the page, in order (each one renders;
            ``default`` always exists on the server, and any other ``botId`` a submit names
            falls back to it).
        custom_bots: ``customId`` s of shortcodes with server overrides, rendered after
            ``bots`` with ``botId: null``; serving the page stores their transient for 24 h
            (emulator clock); such bots have no length check.
        text_input_max_length: ``textInputMaxLength`` of the registered bots (None: no key,
            no check), or a mapping bot id -> length (missing ids: 512).
        instructions: The bots' ``instructions`` (the upstream ``system`` message; ``""``:
            none), or a mapping bot id or customId -> instructions.
        rest_nonce_in_page: Embed a guest ``wp_rest`` nonce in ``data-system.restNonce``
            (2.0.1-2.4.3, or a page cache freezing one); False: ``null`` (guests >= 2.4.4).
        start_session: Whether ``/mwai/v1/start_session`` exists (False: before 2.4.4, HTTP
            404 ``rest_no_route``).
        stream_option: The ``ai_streaming`` option shown as ``data-system.stream`` (the
            server follows the body's ``stream`` whatever it says).
        rest_url_style: ``pretty`` (``restUrl`` ``…/wp-json``), ``relative`` (``/wp-json``,
            as a page cache may print it) or ``plain`` (``…/index.php?rest_route=``;
            ``/wp-json/…`` is then the site's 404 page).
        max_messages: ``maxMessages``: history turns kept after ``messages[0]`` (0: all).
        moderation: Words the stand-in moderation flags in ``newMessage``
            (case-insensitive substrings; empty: moderation off).
        usage: ``usage`` in the final reply: ``True``/``"tokens"`` (estimated counts, as a
            real 3.6.2 site writes them: ``price`` null when the site has no price for the
            model, ``queries`` 1, ``accuracy`` ``tokens``), ``"null"`` (``"usage": null``,
            as when a reply carries none) or ``False``/``"omit"`` (no key; 3.6.2 always has
            one, but clients should cope).
        responses_api: The OpenAI engine on the Responses API, 3.6.2's default: the final
            reply carries a ``responseId`` (``resp_…``); False: no key.
        session_faults: Replies (:meth:`Reply.raw`, ``reset``, ``hang``, ``drip``) given,
            first in first out, to the next ``start_session`` POSTs instead of the answer.
    """

    bots: Sequence[str] = (mw.DEFAULT_BOT,)
    custom_bots: Sequence[str] = ()
    text_input_max_length: int | Mapping[str, int | None] | None = mw.DEFAULT_MAX_LENGTH
    instructions: str | Mapping[str, str] = mw.DEFAULT_INSTRUCTIONS
    rest_nonce_in_page: bool = False
    start_session: bool = True
    stream_option: bool = True
    rest_url_style: Literal["pretty", "plain", "relative"] = "pretty"
    max_messages: int = mw.MAX_MESSAGES
    moderation: Sequence[str] = ()
    usage: bool | Literal["tokens", "null", "omit"] = True
    responses_api: bool = True
    session_faults: list[Reply] = field(default_factory=list)


def exception_message(text: str) -> str:
    """The ``mwai_ai_exception`` filter: no ``OpenAI:`` prefix, ``{"error":{"message"}}`` unwrapped.

    B.3 error table ("provider error", ``ai-engine.php:42-64``). The message a real 3.6.2
    site's Responses API engine raises, ``OpenAI (Responses API): {…raw JSON…}``, matches
    neither, so it goes out as it is (``real-plugins.md``, AI Engine 4).
    """
    if text.startswith("OpenAI:"):
        text = wp.php_trim(text[len("OpenAI:") :])
    with contextlib.suppress(ValueError):
        decoded = json.loads(text)
        error = decoded.get("error") if isinstance(decoded, dict) else None
        if isinstance(error, dict) and error.get("message") is not None:
            text = str(error["message"])
    return text


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)  # the emulator's estimate: four characters a token


@dataclass(frozen=True)
class _Bot:
    """The chatbot a submit resolved to (B.3 body table)."""

    name: str
    max_length: int | None
    instructions: str


@dataclass(frozen=True)
class _Query:
    """A submit's query once built (``new Query()`` + ``inject_params``, B.3, B.4)."""

    bot: _Bot
    chat_key: str  # the chatId the checksum is stored under
    client_messages: Any  # the body's messages, as sent
    turns: list[dict[str, str]]
    session: str
    message: str


@dataclass(frozen=True)
class _Route:
    """A registered REST route."""

    methods: tuple[str, ...]
    namespace: str
    handler: Callable[[_Rest, Any], Awaitable[web.StreamResponse]] | None


class MwaiSite(PluginSite):
    """The plugin's state (custom-bot transients, checksums, guest usage) and its REST routes."""

    name: ClassVar[str] = "mwai"

    def __init__(self, emulator: Emulator) -> None:
        """Belong to ``emulator``, with no transient, checksum or usage yet."""
        super().__init__(emulator)
        self._lock = threading.Lock()
        self._custom: dict[str, float] = {}  # customId -> when its transient expires
        self._checksums: dict[str, str] = {}  # chatId -> checksum of the stored turns
        self._mismatches: list[str] = []  # chatIds whose check failed (only logged)
        self._usage: dict[str, int] = {}  # guest queries by session
        self._uniq = itertools.count()

    def clear(self) -> None:
        """Forget custom-bot transients, checksums, integrity warnings and usage."""
        with self._lock:
            self._custom.clear()
            self._checksums.clear()
            self._mismatches.clear()
            self._usage.clear()

    def checksum(self, chat_id: str) -> str | None:
        """The stored ``mwai_chatbot_checksum_{chatId}`` (B.4), if any."""
        with self._lock:
            return self._checksums.get(chat_id)

    def integrity_mismatches(self) -> list[str]:
        """The chatIds whose client messages did not match the stored checksum (B.4)."""
        with self._lock:
            return list(self._mismatches)

    # --- facts derived from the settings ------------------------------------------------------

    @property
    def options(self) -> MwaiOptions:
        """The site's settings (``emulator.mwai``)."""
        return self.emu.mwai

    def nonce(self) -> str:
        """``wp_create_nonce('wp_rest')`` for a guest (B.2, C.3 item 1)."""
        return self.create_nonce(mw.NONCE_ACTION)

    def _verify(self, nonce: str) -> bool:
        return self.verify_nonce(nonce, mw.NONCE_ACTION)

    @staticmethod
    def _request_nonce(fields: Mapping[str, str], header: str | None) -> str | None:
        """The nonce ``rest_cookie_check_errors`` reads: ``$_REQUEST['_wpnonce']``, else the header.

        A present ``_wpnonce`` wins even when empty (``isset``).
        """
        return fields.get(mw.NONCE_FIELD, header)

    def nonce_valid(self, incoming: Incoming) -> bool | None:
        """For a REST request, whether the nonce WordPress reads verifies (None: none sent).

        admin-ajax: AIPKit's verdict on a mixed page, else None (nothing registered there).
        """
        if self.route_of(incoming.path, incoming.query) is None:
            return self._aipkit().nonce_valid(incoming) if self._mixed() else None
        header = incoming.headers.get(mw.NONCE_HEADER.lower())
        nonce = self._request_nonce(incoming.fields, header)
        return None if nonce is None else self._verify(nonce)

    def is_rest(self, record: RecordedRequest) -> bool:
        """Whether the WordPress REST API answered a recorded request."""
        return self.route_of(record.path, record.query) is not None

    def is_chat(self, record: RecordedRequest) -> bool:
        """The ``POST /mwai-ui/v1/chats/submit`` requests (routes match case-insensitively)."""
        return (
            record.method == "POST"
            and self.is_rest(record)
            and record.route.lower() == mw.SUBMIT_ROUTE.lower()
        )

    def serves(self, path: str, query: Mapping[str, str]) -> bool:
        """The REST API, and admin-ajax.php (where only a mixed page's AIPKit answers)."""
        return path == AJAX_PATH or self.route_of(path, query) is not None

    @property
    def pretty(self) -> bool:
        """Pretty permalinks: ``/wp-json/`` routes; else only ``?rest_route=``."""
        return self.options.rest_url_style != "plain"

    def rest_url(self, *, absolute: bool = False) -> str:
        """``untrailingslashit(get_rest_url())`` (B.1 ``restUrl`` row).

        ``relative`` style: ``/wp-json``, as a page cache or CDN that rewrites its own
        addresses leaves it (unless ``absolute``).
        """
        relative = self.options.rest_url_style == "relative" and not absolute
        base = "" if relative else self.emu.base_url
        return base + (mw.REST_PREFIX if self.pretty else mw.PLAIN_REST_BASE)

    def route_of(self, path: str, query: Mapping[str, str]) -> str | None:
        """The REST route this site serves for a request, or None (a page, admin-ajax, …)."""
        return rest_route(path, query, pretty=self.pretty)

    def _active(self) -> bool:
        # The no_chat_box page is a site with the plugin switched off.
        return self.emu.page_variant != "no_chat_box"

    def _mixed(self) -> bool:
        """AIPKit runs beside AI Engine (``page_variant="mixed"``)."""
        return self.emu.page_variant == "mixed"

    def _aipkit(self) -> AipkitSite:
        site = self.emu.sites[AipkitSite.name]
        assert isinstance(site, AipkitSite)  # noqa: S101 - the registry's own entry
        return site

    def _max_length(self, name: str) -> int | None:
        setting = self.options.text_input_max_length
        if isinstance(setting, Mapping):
            return setting.get(name, mw.DEFAULT_MAX_LENGTH)
        return setting

    def _instructions(self, name: str) -> str:
        setting = self.options.instructions
        if isinstance(setting, Mapping):
            return setting.get(name, mw.DEFAULT_INSTRUCTIONS)
        return setting

    def uniqid(self) -> str:
        """PHP ``uniqid()``: 8 hex digits of seconds, 5 of microseconds (13 in all)."""
        now = self.emu.now()
        seconds = int(now)
        micros = (int((now - seconds) * 1_000_000) + next(self._uniq)) % 0x100000
        return f"{seconds:08x}{micros:05x}"

    # --- page (B.1, C.3 item 2) ---------------------------------------------------------------

    def page(self, path: str, request: web.Request) -> SitePage:
        """The page with the bot(s); custom bots' transients start here."""
        emu, options = self.emu, self.options
        bots = [MwaiBot(name, None, self._max_length(name)) for name in options.bots]
        # A custom bot is the default chatbot with overrides (B.1 customId row).
        default_length = self._max_length(mw.DEFAULT_BOT)
        bots += [MwaiBot(None, custom, default_length) for custom in options.custom_bots]
        if self._active():
            expires = emu.now() + mw.CUSTOM_BOT_TTL
            with self._lock:
                self._custom.update(dict.fromkeys(options.custom_bots, expires))
        facts = MwaiPageFacts(
            base_url=emu.base_url,
            path=path,
            post_id=emu.post_id,
            rest_url=emu.page_endpoint or self.rest_url(),
            rest_nonce=self.nonce() if options.rest_nonce_in_page else None,
            stream=options.stream_option,
            bots=tuple(bots),
            aipkit=self._aipkit().page_facts(path, request) if self._mixed() else None,
        )
        return SitePage(render_mwai_page(facts, emu.page_variant), {"Link": self.link_header()})

    def link_header(self) -> str:
        """The ``Link`` header WordPress sends with pages and REST replies."""
        return wp.api_link(f"{self.rest_url(absolute=True)}/")

    # --- requests -----------------------------------------------------------------------------

    async def handle(self, incoming: Incoming) -> web.StreamResponse:
        """A REST request (after ``latency``, but for a preflight), or admin-ajax."""
        route = self.route_of(incoming.path, incoming.query)
        if route is None:  # admin-ajax.php
            if self._mixed():
                return await self._aipkit().handle(incoming)
            # AI Engine registers no admin-ajax action for visitors.
            return web.Response(status=400, text="0", headers=self.ajax_headers(incoming))
        if incoming.method != "OPTIONS":
            await self.wait_latency()
        return await self.rest(incoming, route)

    # --- REST router (B.2, C.3 items 3-4) -------------------------------------------------------

    def _routes(self) -> dict[str, _Route]:
        routes = {"/": _Route(("GET",), "", None)}
        if self._active():
            if self.options.start_session:  # >= 2.4.4 (B.5)
                routes[mw.SESSION_ROUTE] = _Route(("POST",), "mwai/v1", self._start_session)
            routes[mw.SUBMIT_ROUTE] = _Route(("POST",), "mwai-ui/v1", self._submit)
        return routes

    async def rest(self, incoming: Incoming, route: str) -> web.StreamResponse:
        """``WP_REST_Server::serve_request()``: authentication, then dispatch."""
        routes = self._routes()
        # Route patterns are matched case-insensitively ("@^…$@i").
        name = next((key for key in routes if key.lower() == route.lower()), None)
        matched = routes.get(name) if name is not None else None
        if name == mw.SESSION_ROUTE and matched is not None:
            # A fault of the host or a proxy in front of it: before WordPress runs.
            fault = pop_fault(self._lock, self.options.session_faults)
            if fault is not None:
                request = incoming.request
                return (
                    raw_response(fault) if fault.kind == "raw" else await send_fault(request, fault)
                )
        ctx = _Rest(self, incoming.request)
        if self._active() and route.lower().startswith(mw.PHP_SESSION_PATH):
            self._php_session(ctx)
        refused = self._authenticate(ctx, incoming)
        if refused is not None:
            return refused
        return await self._dispatch(ctx, incoming, routes, matched)

    def _php_session(self, ctx: _Rest) -> None:
        """``session_start()`` at ``init`` (``classes/core.php:79``): cookie and cache headers."""
        cookies = wp.parse_cookies(ctx.request.headers.get("Cookie", ""))
        if mw.PHP_SESSION_COOKIE not in cookies:
            chars, length = mw.PHP_SESSION_ID_CHARS, mw.PHP_SESSION_ID_LENGTH
            session = "".join(secrets.choice(chars) for _ in range(length))
            ctx.cookies.append(f"{mw.PHP_SESSION_COOKIE}={session}; path=/")
        ctx.headers.update(mw.PHP_SESSION_HEADERS)

    def _authenticate(self, ctx: _Rest, incoming: Incoming) -> web.Response | None:
        """``rest_cookie_check_errors`` (B.2): no nonce -> a guest; a bad one -> 403."""
        nonce = self._request_nonce(incoming.fields, ctx.header_nonce)
        if nonce is None:
            return None
        if not self._verify(nonce):
            ctx.nocache = True
            return ctx.error(*mw.INVALID_NONCE)
        ctx.headers[mw.NONCE_HEADER] = self.nonce()
        return None

    async def _dispatch(
        self,
        ctx: _Rest,
        incoming: Incoming,
        routes: Mapping[str, _Route],
        matched: _Route | None,
    ) -> web.StreamResponse:
        """The matched route's handler, its ``OPTIONS`` answer, or a REST error."""
        method = incoming.method
        if matched is None or (method not in matched.methods and method != "OPTIONS"):
            return ctx.error(*mw.NO_ROUTE)
        ctx.allow = ", ".join(matched.methods)
        if method == "OPTIONS":  # rest_handle_options_request
            methods = list(matched.methods)
            endpoints = [{"methods": methods, "args": []}]
            return ctx.json(
                200, {"namespace": matched.namespace, "methods": methods, "endpoints": endpoints}
            )
        # has_valid_params(): a JSON-typed body must decode, before the permission check.
        content_type = incoming.headers.get("content-type", "")
        params, json_error = wp.json_params(content_type, incoming.body)
        if json_error is not None:
            code, message = json_error
            return ctx.error(*mw.INVALID_JSON, json_error_code=code, json_error_message=message)
        if matched.handler is None:
            return ctx.json(200, self._index(routes))
        return await matched.handler(ctx, params)

    def _index(self, routes: Mapping[str, _Route]) -> dict[str, Any]:
        """A short ``GET /wp-json/`` index: the site and the registered namespaces."""
        base = self.emu.base_url
        namespaces = ["oembed/1.0", *(mw.NAMESPACES if self._active() else ()), "wp/v2"]
        listed = {
            route: {"namespace": info.namespace, "methods": list(info.methods)}
            for route, info in routes.items()
        }
        return {
            "name": "AI Assistant",
            "description": "",
            "url": base,
            "home": base,
            "namespaces": namespaces,
            "authentication": [],
            "routes": listed,
        }

    def _session_id(self, ctx: _Rest) -> str:
        """``get_session_id()``: the cookie, else a new ``uniqid()`` set as the cookie (B.2)."""
        cookies = wp.parse_cookies(ctx.request.headers.get("Cookie", ""))
        if mw.SESSION_COOKIE in cookies:
            return cookies[mw.SESSION_COOKIE]
        session = self.uniqid()
        # PHP's setcookie() with expires 0, path "/", httponly (no Secure over http).
        ctx.cookies.append(f"{mw.SESSION_COOKIE}={session}; path=/; HttpOnly")
        return session

    # --- POST /mwai/v1/start_session (B.2, C.3 item 5) ------------------------------------------

    async def _start_session(self, ctx: _Rest, params: Any) -> web.StreamResponse:
        session = self._session_id(ctx)
        return ctx.reply(200, {"success": True, "sessionId": session, "restNonce": self.nonce()})

    # --- POST /mwai-ui/v1/chats/submit (B.3, C.3 item 6) ----------------------------------------

    async def _submit(self, ctx: _Rest, params: Any) -> web.StreamResponse:
        # permission_callback check_rest_nonce: the X-WP-Nonce header only (B.2).
        if not self._verify(ctx.header_nonce or ""):
            return ctx.error(*mw.FORBIDDEN)
        body: dict[str, Any] = params if isinstance(params, dict) else {}  # get_json_params()
        raw_message = body.get("newMessage")
        message = wp.php_string("" if raw_message is None else raw_message)
        if message is None:  # trim() of an array: a PHP TypeError
            return ctx.critical()
        message = wp.php_trim(message)
        refused = self._basics(ctx, body, message)
        if refused is not None:
            return refused
        out = _Answer(ctx, wp.php_truthy(body.get("stream", False)))
        return await self._chat(ctx, out, body, message)

    @staticmethod
    def _basics(ctx: _Rest, body: Mapping[str, Any], message: str) -> web.Response | None:
        """An unknown shortcut, then ``basics_security_check`` (B.3 error table)."""
        truthy = wp.php_truthy
        if truthy(body.get("shortcutId")) and not truthy(message):
            # No shortcut is registered here, so every one is unknown.
            return ctx.reply(400, {"success": False, "message": mw.SHORTCUT_MSG})
        has_files = truthy(body.get("newFileId")) or truthy(body.get("newFileIds"))
        named = truthy(body.get("botId")) or truthy(body.get("customId"))
        if not named or not (has_files or message):  # chatbot.php:230-235
            return ctx.reply(403, {"success": False, "message": mw.REJECTED_MSG})
        return None

    def _resolve(self, bot_id: Any, custom_id: Any) -> _Bot:
        """The chatbot of a submit (B.3 body table; chatbot.php:544-566)."""
        if wp.php_truthy(custom_id):
            key = wp.php_string(custom_id) or ""
            with self._lock:
                expires = self._custom.get(key)
            if expires is not None and self.emu.now() < expires:
                # The transient holds server params only: no textInputMaxLength.
                return _Bot(key, None, self._instructions(key))
        name = wp.php_string(bot_id) if wp.php_truthy(bot_id) else None
        if name is None or name not in (*self.options.bots, mw.DEFAULT_BOT):
            name = mw.DEFAULT_BOT  # unknown ids fall back silently
        return _Bot(name, self._max_length(name), self._instructions(name))

    def _check_integrity(self, chat_id: str, messages: Any) -> None:
        """The log-only checksum check of B.4 (chatbot.php:575-627)."""
        stored = self.checksum(chat_id)
        if stored is not None and stored != _checksum(messages):
            with self._lock:
                self._mismatches.append(chat_id)

    async def _chat(
        self, ctx: _Rest, out: _Answer, body: dict[str, Any], message: str
    ) -> web.StreamResponse:
        """``chat_submit``: the query, moderation, ``run()``'s checks, the answer (B.3, B.4)."""
        query = await self._query(ctx, out, body, message)
        if not isinstance(query, _Query):
            return query
        lowered = message.lower()
        if any(word.lower() in lowered for word in self.options.moderation if word):
            return await out.fail(mw.MODERATION_MSG, early=True)
        # From here on the stream headers are out (chatbot.php:903-923); run() checks next.
        refusal = self._allowed(ctx.request, message, query.session)
        if refusal is not None:
            return await out.fail(refusal)
        upstream = _upstream(query, self.options.max_messages)
        form = {key: _as_text(value) for key, value in body.items()}
        chat = ChatRequest(
            message=message,
            form=form,
            client_id=query.session,
            upstream_messages=upstream,
            body=body,
        )
        return await self._respond(ctx, out, self.ask(chat), query, upstream)

    async def _query(
        self, ctx: _Rest, out: _Answer, body: dict[str, Any], message: str
    ) -> _Query | web.StreamResponse:
        """The bot and its length rule, the integrity check, ``new Query()`` (B.3, B.4)."""
        bot = self._resolve(body.get("botId"), body.get("customId"))
        if bot.max_length and len(message) > bot.max_length:  # mb_strlen: code points
            return await out.fail(mw.REJECTED_MSG, early=True)
        chat_id = body.get("chatId")
        chat_key = "default" if chat_id is None else (wp.php_string(chat_id) or "Array")
        client_messages = body.get("messages", [])
        self._check_integrity(chat_key, client_messages)
        # new Query(): the session cookie is read or set here, then inject_params().
        session = self._session_id(ctx)
        listed = wp.php_truthy(client_messages)
        if listed and not isinstance(client_messages, list | dict):
            return ctx.critical()  # set_messages(array $messages) got a string
        turns = _turns(client_messages) if listed else []
        if turns is None:
            return await out.fail(mw.UNSUPPORTED_MESSAGE_MSG, early=True)
        if wp.php_truthy(body.get("session")):
            session = wp.php_string(body["session"]) or session
        return _Query(bot, chat_key, client_messages, turns, session, message)

    def _allowed(self, request: web.Request, message: str, session: str) -> str | None:
        """The ``mwai_ai_allowed`` filters of ``run()``: banned IPs, banned words, limits."""
        emu = self.emu
        if _ip_banned(request.remote or "", emu.banned_ips):
            return mw.BANNED_MSG
        for word in emu.banned_words:
            # '/\bword\b/iu': PHP's /u makes \b and case folding Unicode-aware, as Python's re.
            if word and re.search(rf"\b{re.escape(word)}\b", message, re.I):
                return mw.BANNED_MSG
        if emu.token_limit is not None:
            with self._lock:
                used = self._usage.get(session, 0)
            if used >= emu.token_limit:
                return mw.OVER_LIMIT_MSG
        return None

    async def _respond(
        self,
        ctx: _Rest,
        out: _Answer,
        reply: Reply,
        query: _Query,
        upstream: list[dict[str, str]],
    ) -> web.StreamResponse:
        """What the engine answered: a fault, a failure, or the answer and the final reply."""
        if reply.kind == "raw":
            return raw_response(reply)
        if reply.kind in FAULT_KINDS:
            return await send_fault(ctx.request, reply)
        if reply.kind == "checkbox":  # chatgpt.es' own answer, here just text
            reply = Reply.text(CHECKBOX_MESSAGE)
        failure = _failure(reply)
        if failure is not None:
            return await out.fail(failure[0], early=failure[1])
        text = await out.answer(reply.parts if reply.kind == "sequence" else (reply,))
        if not isinstance(text, str):  # the provider failed mid-answer: already answered
            return text
        stored = [*_list(query.client_messages), {"role": "user", "content": query.message}]
        stored.append({"role": "assistant", "content": text})
        with self._lock:
            self._checksums[query.chat_key] = _checksum(stored)
            self._usage[query.session] = self._usage.get(query.session, 0) + 1
        return await out.final(self._final_res(text, upstream))

    def _final_res(self, text: str, upstream: list[dict[str, str]]) -> dict[str, Any]:
        """``build_final_res`` (B.3 "Non-stream reply", chatbot.php:150-203), new_token aside.

        As a real 3.6.2 site writes it (``real-plugins.md``): ``usage`` with ``price`` null
        and ``queries``, then the Responses API's ``responseId``.
        """
        result: dict[str, Any] = {
            "success": True,
            "reply": text,
            "images": None,
            "actions": [],
            "shortcuts": [],
            "blocks": [],
        }
        mode = self.options.usage
        if mode in (True, "tokens"):
            prompt = sum(_tokens(turn["content"]) for turn in upstream)
            completion = _tokens(text)
            result["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "price": None,
                "queries": 1,
                "accuracy": mw.USAGE_ACCURACY,
            }
        elif mode == "null":
            result["usage"] = None
        if self.options.responses_api:
            result["responseId"] = mw.RESPONSE_ID_PREFIX + secrets.token_hex(16)
        return result


def _failure(reply: Reply) -> tuple[str, bool] | None:
    """A reply that is an exception in ``chat_submit``: its message, and whether it is early.

    ``error`` is raised before the stream headers; the others once the stream is open.
    """
    if reply.kind == "error":
        return reply.content, True
    if reply.kind == "token_limit":
        return mw.OVER_LIMIT_MSG, False
    if reply.kind in _FAILURES:
        return reply.content, False
    return None


def _upstream(query: _Query, keep: int) -> list[dict[str, str]]:
    """What the engine sends: the instructions, the windowed history, the new message (B.4)."""
    instructions = query.bot.instructions
    upstream = [{"role": "system", "content": instructions}] if instructions else []
    upstream += _window(query.turns, keep)
    upstream.append({"role": "user", "content": query.message})
    return upstream


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _list(messages: Any) -> list[Any]:
    """A PHP array's values (a JSON object decodes to an associative array)."""
    if isinstance(messages, dict):
        return list(messages.values())
    return list(messages) if isinstance(messages, list) else []


def _turns(messages: Any) -> list[dict[str, str]] | None:
    """``Query::set_messages``: only ``role`` and ``content``; None for a non-array item (B.4)."""
    turns: list[dict[str, str]] = []
    for item in _list(messages):
        if not isinstance(item, dict | list):
            return None  # InvalidArgumentException('Unsupported message type.')
        fields = item if isinstance(item, dict) else {}
        role, content = fields.get("role"), fields.get("content")
        turns.append({"role": _field(role), "content": _field(content)})
    return turns


def _field(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _window(turns: list[dict[str, str]], keep: int) -> list[dict[str, str]]:
    """``final_checks()``: ``messages[0]`` plus the last ``maxMessages`` of the rest (B.4).

    ``maxMessages`` 0 (``empty()``) keeps everything, as the plugin does.
    """
    if keep <= 0 or not turns:
        return list(turns)
    first, rest = turns[0], turns[1:]
    return [first, *rest[-keep:]]


def _checksum(messages: Any) -> str:
    """``calculate_messages_checksum``: md5 of the JSON of the assistant/system turns (B.4)."""
    kept = []
    for item in _list(messages):
        fields = item if isinstance(item, dict) else {}
        role = fields.get("role", "")
        if role in ("assistant", "system"):
            kept.append({"role": role, "content": fields.get("content", "")})
    return hashlib.md5(wp.php_encode(kept).encode(), usedforsecurity=False).hexdigest()


def _ip_banned(address: str, banned: Any) -> bool:
    """``is_blocked_ip``: an exact address or a CIDR range (``classes/modules/security.php``)."""
    for entry in banned:
        with contextlib.suppress(ValueError):
            if "/" in entry:
                if ip_address(address) in ip_network(entry, strict=False):
                    return True
            elif address == entry.strip():
                return True
    return False


class _Rest:
    """One REST request's response state: the headers WordPress sends, and the JSON replies."""

    def __init__(self, site: MwaiSite, request: web.Request) -> None:
        self.site, self.request = site, request
        # Sent by serve_request() before dispatching, so they reach every reply.
        self.headers: dict[str, str] = {
            "Content-Type": JSON,
            "X-Robots-Tag": mw.REST_HEADERS["X-Robots-Tag"],
            "Link": site.link_header(),
            **{k: v for k, v in mw.REST_HEADERS.items() if k != "X-Robots-Tag"},
        }
        self.cookies: list[str] = []  # Set-Cookie values, in the order PHP set them
        self.header_nonce: str | None = request.headers.get(mw.NONCE_HEADER)
        self.allow: str | None = None  # the matched route's methods (rest_send_allow_header)
        self.nocache = False  # rest_cookie_check_errors asked for nocache headers

    def sent_headers(self, *, dispatched: bool = True) -> CIMultiDict[str]:
        """Every header so far, cookies included.

        ``dispatched``: with those WordPress adds once dispatch returned (none when PHP
        ``die()`` d in it, as a stream does).
        """
        headers = CIMultiDict(self.headers)
        for cookie in self.cookies:
            headers.add("Set-Cookie", cookie)
        if dispatched:
            headers.update(self._after())
        return headers

    def _after(self) -> dict[str, str]:
        """Headers WordPress adds once dispatch returned."""
        extra: dict[str, str] = {}
        if self.allow is not None:
            extra["Allow"] = self.allow
        if self.nocache:
            extra.update(wp.NOCACHE_HEADERS)
        origin = self.request.headers.get("Origin")
        if origin:  # rest_send_cors_headers(): any origin is echoed
            extra.update(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": mw.CORS_METHODS,
                    "Access-Control-Allow-Credentials": "true",
                    "Vary": "Origin",
                }
            )
        return extra

    def json(self, status: int, obj: Any) -> web.Response:
        """A ``WP_REST_Response`` as ``wp_json_encode`` writes it."""
        body = wp.php_encode(obj).encode()
        return web.Response(status=status, body=body, headers=self.sent_headers())

    def error(self, code: str, message: str, status: int, **data: Any) -> web.Response:
        """A ``WP_Error`` as the REST server renders it: ``{"code","message","data"}``."""
        return self.json(
            status, {"code": code, "message": message, "data": {"status": status, **data}}
        )

    def critical(self) -> web.Response:
        """A PHP fatal error: WordPress' handler answers a REST request with 500 JSON."""
        code, message, status = mw.CRITICAL_ERROR
        obj = {
            "code": code,
            "message": message,
            "data": {"status": status},
            "additional_errors": [],
        }
        body = wp.php_encode(obj).encode()
        return web.Response(status=status, body=body, headers=self.sent_headers(dispatched=False))

    def new_token(self) -> str | None:
        """The ``new_token`` rule (B.2): a header nonce was sent and is not the current one."""
        current = self.site.nonce()
        sent = self.header_nonce
        return current if wp.php_truthy(sent) and sent != current else None

    def reply(self, status: int, data: dict[str, Any]) -> web.Response:
        """``create_rest_response``: the data plus ``new_token`` when due."""
        token = self.new_token()
        return self.json(status, {**data, "new_token": token} if token else data)


class _Answer:
    """The submit's reply: ``build_final_res`` JSON, or ``data:`` lines (B.3, C.3 item 7)."""

    def __init__(self, ctx: _Rest, stream: bool) -> None:
        self.ctx, self.stream = ctx, stream
        self._writer: StreamWriter | None = None

    async def _line(self, obj: Any, *, sse: bool = True) -> None:
        """``stream_push``: ``data: <json_encode>`` and a blank line, flushed (core.php:866-902).

        The first line sends the headers: the stream's, unless ``sse`` is False.
        """
        if self._writer is None:
            headers = self.ctx.sent_headers(dispatched=False)
            if sse:
                headers.update(mw.SSE_HEADERS)
            self._writer = StreamWriter(self.ctx.site.emu, self.ctx.request, headers)
        await self._writer.write(f"data: {wp.php_encode(obj)}\n\n".encode())

    async def finish(self) -> web.StreamResponse:
        """End the response (PHP ``die()`` s)."""
        if self._writer is None:
            raise RuntimeError("nothing was written")
        return await self._writer.finish()

    async def fail(self, message: str, *, early: bool = False) -> web.StreamResponse:
        """An exception in ``chat_submit``: 500 JSON, or an ``error`` line.

        ``early``: raised before the stream headers, so the line goes out under WordPress'
        ``application/json`` type (B.3, C.3 item 7).
        """
        message = exception_message(message)
        if not self.stream:
            return self.ctx.reply(500, {"success": False, "message": message})
        await self._line({"type": "error", "data": message}, sse=not early)
        return await self.finish()

    def _event(self, part: Reply) -> dict[str, Any]:
        """``Meow_MWAI_Event::to_array()`` of a ``live`` event (B.3 table, classes/event.php)."""
        subtype = part.content
        payload = part.data if isinstance(part.data, Mapping) else {}
        event: dict[str, Any] = {
            "type": "live",
            "data": payload.get("data", ""),
            "timestamp": self.ctx.site.emu.now(),  # microtime(true)
            "subtype": subtype,
            "visibility": payload.get("visibility") or mw.VISIBILITY.get(subtype, "visible"),
        }
        if payload.get("metadata"):
            event["metadata"] = dict(payload["metadata"])
        return event

    async def answer(self, parts: tuple[Reply, ...]) -> str | web.StreamResponse:
        """Send the answer's parts: the answer text, or the finished reply on a provider error."""
        text = ""
        for part in parts:
            if part.kind in ("site_error", "exception"):
                return await self.fail(part.content)
            if part.kind in ("reset", "hang"):  # the connection drops mid-answer
                await asyncio.sleep(part.seconds)
                abort(self.ctx.request)
            text += await self._part(part)
        return text

    async def _part(self, part: Reply) -> str:
        """Stream one part (when streaming); the text it adds to the answer."""
        if part.kind == "text":
            if self.stream:
                for piece in split_answer(part.content):
                    await self._line({"type": "live", "data": piece})
            return part.content
        if part.kind not in ("mwai_event", "warning"):
            return ""
        event = part if part.kind == "mwai_event" else Reply.mwai_event("warning", part.content)
        if self.stream:
            await self._line(self._event(event))
        data = event.data.get("data") if isinstance(event.data, Mapping) else None
        # The JS appends content events to the answer.
        return data if event.content == "content" and isinstance(data, str) else ""

    async def final(self, result: dict[str, Any]) -> web.StreamResponse:
        """The success: 200 JSON, or the ``end`` line whose ``data`` is that JSON as a string."""
        token = self.ctx.new_token()
        if token:
            result = {**result, "new_token": token}
        if not self.stream:
            return self.ctx.json(200, result)
        await self._line({"type": "end", "data": wp.php_encode(result)})
        return await self.finish()
