"""AI Engine (Meow Apps) 3.6.2 on the WordPress REST API, check by check.

An independent writing of ``shared/reference/wp-chat-plugins.md`` Part B and checklist C.3
(sections cited on each step); nothing here comes from the client package. Pieces:

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
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import TYPE_CHECKING, Any

from aiohttp import web

from langchain_chatgptes.emulator import _mwai_plugin as mw
from langchain_chatgptes.emulator import _wordpress as wp
from langchain_chatgptes.emulator._faults import (
    FAULT_KINDS,
    abort,
    pop_fault,
    raw_response,
    send_fault,
)
from langchain_chatgptes.emulator._mwai_pages import MwaiBot, MwaiPageFacts, render_mwai_page
from langchain_chatgptes.emulator._plugin import CHECKBOX_MESSAGE
from langchain_chatgptes.emulator._wire import split_answer
from langchain_chatgptes.emulator.responders import ChatRequest, EchoResponder, Reply

if TYPE_CHECKING:
    from langchain_chatgptes.emulator._server import Emulator

_JSON = "application/json; charset=UTF-8"
_ENDINGS = ("site_error", "exception", "reset", "hang")


def rest_route(path: str, query: Mapping[str, str], *, pretty: bool = True) -> str | None:
    """The REST route a request names, or None when it is no REST request.

    ``/wp-json/<route>`` (pretty permalinks only) or ``?rest_route=<route>`` on ``/`` or
    ``/index.php`` (always); ``untrailingslashit``, and ``/`` when empty, as
    ``rest_api_loaded()`` does (source: WordPress core).
    """
    if pretty and (path == mw.REST_PREFIX or path.startswith(mw.REST_PREFIX + "/")):
        route = path[len(mw.REST_PREFIX) :]
    elif path in ("/", "/index.php") and "rest_route" in query:
        route = query["rest_route"]
    else:
        return None
    return route.rstrip("/\\") or "/"


def exception_message(text: str) -> str:
    """The ``mwai_ai_exception`` filter: no ``OpenAI:`` prefix, ``{"error":{"message"}}`` unwrapped.

    B.3 error table ("provider error", ``ai-engine.php:42-64``).
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
class _Route:
    """A registered REST route."""

    methods: tuple[str, ...]
    namespace: str
    handler: Callable[[_Rest, Any], Awaitable[web.StreamResponse]] | None


class MwaiSite:
    """The plugin's state (custom-bot transients, checksums, guest usage) and its REST routes."""

    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator
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

    # --- facts derived from the emulator's knobs ----------------------------------------------

    def nonce(self) -> str:
        """``wp_create_nonce('wp_rest')`` for a guest (B.2, C.3 item 1)."""
        emu = self._emu
        return wp.create_nonce(emu.secret, mw.NONCE_ACTION, emu.now(), emu.nonce_life)

    def _verify(self, nonce: str) -> bool:
        emu = self._emu
        return wp.verify_nonce(nonce, emu.secret, mw.NONCE_ACTION, emu.now(), emu.nonce_life)

    @staticmethod
    def _request_nonce(fields: Mapping[str, str], header: str | None) -> str | None:
        """The nonce ``rest_cookie_check_errors`` reads: ``$_REQUEST['_wpnonce']``, else the header.

        A present ``_wpnonce`` wins even when empty (``isset``).
        """
        return fields.get(mw.NONCE_FIELD, header)

    def nonce_valid(
        self, query: Mapping[str, str], form: Mapping[str, str], headers: Mapping[str, str]
    ) -> bool | None:
        """Whether the nonce WordPress reads verifies; None when the request carries none."""
        nonce = self._request_nonce({**query, **form}, headers.get(mw.NONCE_HEADER.lower()))
        return None if nonce is None else self._verify(nonce)

    @property
    def pretty(self) -> bool:
        """Pretty permalinks: ``/wp-json/`` routes; else only ``?rest_route=``."""
        return self._emu.mwai_rest_url_style != "plain"

    def rest_url(self, *, absolute: bool = False) -> str:
        """``untrailingslashit(get_rest_url())`` (B.1 ``restUrl`` row).

        ``relative`` style: ``/wp-json``, as a page cache or CDN that rewrites its own
        addresses leaves it (unless ``absolute``).
        """
        relative = self._emu.mwai_rest_url_style == "relative" and not absolute
        base = "" if relative else self._emu.base_url
        return base + (mw.REST_PREFIX if self.pretty else mw.PLAIN_REST_BASE)

    def route_of(self, path: str, query: Mapping[str, str]) -> str | None:
        """The REST route this site serves for a request, or None (a page, admin-ajax, …)."""
        return rest_route(path, query, pretty=self.pretty)

    def _active(self) -> bool:
        # The no_chat_box page is a site with the plugin switched off.
        return self._emu.page_variant != "no_chat_box"

    def _max_length(self, name: str) -> int | None:
        knob = self._emu.mwai_text_input_max_length
        if isinstance(knob, Mapping):
            return knob.get(name, mw.DEFAULT_MAX_LENGTH)
        return knob

    def _instructions(self, name: str) -> str:
        knob = self._emu.mwai_instructions
        return knob.get(name, mw.DEFAULT_INSTRUCTIONS) if isinstance(knob, Mapping) else knob

    def uniqid(self) -> str:
        """PHP ``uniqid()``: 8 hex digits of seconds, 5 of microseconds (13 in all)."""
        now = self._emu.now()
        seconds = int(now)
        micros = (int((now - seconds) * 1_000_000) + next(self._uniq)) % 0x100000
        return f"{seconds:08x}{micros:05x}"

    # --- page (B.1, C.3 item 2) ---------------------------------------------------------------

    def page(self, path: str, request: web.Request) -> str:
        """The HTML of the page with the bot(s); custom bots' transients start here."""
        emu = self._emu
        bots = [MwaiBot(name, None, self._max_length(name)) for name in emu.mwai_bots]
        # A custom bot is the default chatbot with overrides (B.1 customId row).
        default_length = self._max_length(mw.DEFAULT_BOT)
        bots += [MwaiBot(None, custom, default_length) for custom in emu.mwai_custom_bots]
        if self._active():
            expires = emu.now() + mw.CUSTOM_BOT_TTL
            with self._lock:
                self._custom.update(dict.fromkeys(emu.mwai_custom_bots, expires))
        mixed = emu.page_variant == "mixed"
        facts = MwaiPageFacts(
            base_url=emu.base_url,
            path=path,
            post_id=emu.post_id,
            rest_url=emu.page_endpoint or self.rest_url(),
            rest_nonce=self.nonce() if emu.mwai_rest_nonce_in_page else None,
            stream=emu.mwai_stream_option,
            bots=tuple(bots),
            aipkit=emu._aipkit.page_facts(path, request) if mixed else None,
        )
        return render_mwai_page(facts, emu.page_variant)

    def link_header(self) -> str:
        """The ``Link`` header WordPress sends with pages and REST replies."""
        return f'<{self.rest_url(absolute=True)}/>; rel="https://api.w.org/"'

    # --- REST router (B.2, C.3 items 3-4) -------------------------------------------------------

    def _routes(self) -> dict[str, _Route]:
        routes = {"/": _Route(("GET",), "", None)}
        if self._active():
            if self._emu.mwai_start_session:  # >= 2.4.4 (B.5)
                routes[mw.SESSION_ROUTE] = _Route(("POST",), "mwai/v1", self._start_session)
            routes[mw.SUBMIT_ROUTE] = _Route(("POST",), "mwai-ui/v1", self._submit)
        return routes

    async def rest(
        self,
        request: web.Request,
        route: str,
        query: Mapping[str, str],
        form: Mapping[str, str],
        body: bytes,
    ) -> web.StreamResponse:
        """``WP_REST_Server::serve_request()``: authentication, then dispatch."""
        emu = self._emu
        routes = self._routes()
        # Route patterns are matched case-insensitively ("@^…$@i").
        name = next((key for key in routes if key.lower() == route.lower()), None)
        matched = routes.get(name) if name is not None else None
        if name == mw.SESSION_ROUTE and matched is not None:
            # A fault of the host or a proxy in front of it: before WordPress runs.
            fault = pop_fault(self._emu._lock, emu.session_faults)
            if fault is not None:
                return (
                    raw_response(fault) if fault.kind == "raw" else await send_fault(request, fault)
                )
        ctx = _Rest(self, request)
        # rest_cookie_check_errors (B.2): no nonce -> a guest; a bad one -> 403.
        nonce = self._request_nonce({**query, **form}, ctx.header_nonce)
        if nonce is not None:
            if not self._verify(nonce):
                ctx.nocache = True
                return ctx.error(*mw.INVALID_NONCE)
            ctx.headers[mw.NONCE_HEADER] = self.nonce()
        if matched is None or (
            request.method not in matched.methods and request.method != "OPTIONS"
        ):
            return ctx.error(*mw.NO_ROUTE)
        ctx.allow = ", ".join(matched.methods)
        if request.method == "OPTIONS":  # rest_handle_options_request
            methods = list(matched.methods)
            endpoints = [{"methods": methods, "args": []}]
            return ctx.json(
                200, {"namespace": matched.namespace, "methods": methods, "endpoints": endpoints}
            )
        # has_valid_params(): a JSON-typed body must decode, before the permission check.
        params, json_error = wp.json_params(request.headers.get("Content-Type", ""), body)
        if json_error is not None:
            code, message = json_error
            return ctx.error(*mw.INVALID_JSON, json_error_code=code, json_error_message=message)
        if matched.handler is None:
            return ctx.json(200, self._index(routes))
        return await matched.handler(ctx, params)

    def _index(self, routes: Mapping[str, _Route]) -> dict[str, Any]:
        """A short ``GET /wp-json/`` index: the site and the registered namespaces."""
        base = self._emu.base_url
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
        ctx.headers["Set-Cookie"] = f"{mw.SESSION_COOKIE}={session}; path=/; HttpOnly"
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
        bot_id, custom_id = body.get("botId"), body.get("customId")
        stream = wp.php_truthy(body.get("stream", False))
        raw_message = body.get("newMessage")
        message = wp.php_string("" if raw_message is None else raw_message)
        if message is None:  # trim() of an array: a PHP TypeError
            return ctx.critical()
        message = wp.php_trim(message)
        has_files = wp.php_truthy(body.get("newFileId")) or wp.php_truthy(body.get("newFileIds"))
        if wp.php_truthy(body.get("shortcutId")) and not wp.php_truthy(message):
            # No shortcut is registered here, so every one is unknown.
            return ctx.reply(400, {"success": False, "message": mw.SHORTCUT_MSG})
        # basics_security_check (B.3 error table, chatbot.php:230-235)
        if not (wp.php_truthy(bot_id) or wp.php_truthy(custom_id)) or not (has_files or message):
            return ctx.reply(403, {"success": False, "message": mw.REJECTED_MSG})
        out = _Answer(ctx, stream)
        return await self._chat(ctx, out, body, message)

    def _resolve(self, bot_id: Any, custom_id: Any) -> _Bot:
        """The chatbot of a submit (B.3 body table; chatbot.php:544-566)."""
        emu = self._emu
        if wp.php_truthy(custom_id):
            key = wp.php_string(custom_id) or ""
            with self._lock:
                expires = self._custom.get(key)
            if expires is not None and emu.now() < expires:
                # The transient holds server params only: no textInputMaxLength.
                return _Bot(key, None, self._instructions(key))
        name = wp.php_string(bot_id) if wp.php_truthy(bot_id) else None
        if name is None or name not in (*emu.mwai_bots, mw.DEFAULT_BOT):
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
        """``chat_submit``: bot, length, integrity, query, moderation, stream, run (B.3, B.4)."""
        emu = self._emu
        bot = self._resolve(body.get("botId"), body.get("customId"))
        if bot.max_length and len(message) > bot.max_length:  # mb_strlen: code points
            return await out.fail(mw.REJECTED_MSG, early=True)
        chat_id = body.get("chatId")
        chat_key = "default" if chat_id is None else (wp.php_string(chat_id) or "Array")
        client_messages = body.get("messages", [])
        self._check_integrity(chat_key, client_messages)
        # new Query(): the session cookie is read or set here, then inject_params().
        session = self._session_id(ctx)
        if wp.php_truthy(client_messages) and not isinstance(client_messages, list | dict):
            return ctx.critical()  # set_messages(array $messages) got a string
        turns = _turns(client_messages) if wp.php_truthy(client_messages) else []
        if turns is None:
            return await out.fail(mw.UNSUPPORTED_MESSAGE_MSG, early=True)
        if wp.php_truthy(body.get("session")):
            session = wp.php_string(body["session"]) or session
        lowered = message.lower()
        if any(word.lower() in lowered for word in emu.mwai_moderation if word):
            return await out.fail(mw.MODERATION_MSG, early=True)
        # From here on the stream headers are out (chatbot.php:903-923); run() checks next.
        refusal = self._allowed(ctx.request, message, session)
        if refusal is not None:
            return await out.fail(refusal)
        upstream = [{"role": "system", "content": bot.instructions}] if bot.instructions else []
        upstream += _window(turns, emu.mwai_max_messages)
        upstream.append({"role": "user", "content": message})
        form = {key: _as_text(value) for key, value in body.items()}
        chat = ChatRequest(
            message=message, form=form, client_id=session, upstream_messages=upstream, body=body
        )
        answer = (emu.responder or EchoResponder())(chat)
        reply = Reply.text(answer) if isinstance(answer, str) else answer
        if reply.kind == "raw":
            return raw_response(reply)
        if reply.kind in FAULT_KINDS:
            return await send_fault(ctx.request, reply)
        if reply.kind == "checkbox":  # chatgpt.es' own answer, here just text
            reply = Reply.text(CHECKBOX_MESSAGE)
        if reply.kind == "error":  # raised before the stream headers
            return await out.fail(reply.content, early=True)
        if reply.kind == "token_limit":
            return await out.fail(mw.OVER_LIMIT_MSG)
        if reply.kind in ("site_error", "exception", "ipBanned", "messageFlagged"):
            return await out.fail(reply.content)
        text = await out.answer(reply.parts if reply.kind == "sequence" else (reply,))
        if not isinstance(text, str):  # the provider failed mid-answer: already answered
            return text
        stored = [*_list(client_messages), {"role": "user", "content": message}]
        stored.append({"role": "assistant", "content": text})
        with self._lock:
            self._checksums[chat_key] = _checksum(stored)
            self._usage[session] = self._usage.get(session, 0) + 1
        return await out.final(self._final_res(text, upstream))

    def _allowed(self, request: web.Request, message: str, session: str) -> str | None:
        """The ``mwai_ai_allowed`` filters of ``run()``: banned IPs, banned words, limits."""
        emu = self._emu
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

    def _final_res(self, text: str, upstream: list[dict[str, str]]) -> dict[str, Any]:
        """``build_final_res`` (B.3 "Non-stream reply", chatbot.php:150-203), new_token aside."""
        result: dict[str, Any] = {
            "success": True,
            "reply": text,
            "images": None,
            "actions": [],
            "shortcuts": [],
            "blocks": [],
        }
        mode = self._emu.mwai_usage
        if mode in (True, "tokens"):
            prompt = sum(_tokens(turn["content"]) for turn in upstream)
            completion = _tokens(text)
            price = prompt * mw.USAGE_PRICES[0] + completion * mw.USAGE_PRICES[1]
            result["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "price": round(price, 10),
                "accuracy": "tokens",
            }
        elif mode == "null":
            result["usage"] = None
        return result


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
            "Content-Type": _JSON,
            "X-Robots-Tag": mw.REST_HEADERS["X-Robots-Tag"],
            "Link": site.link_header(),
            **{k: v for k, v in mw.REST_HEADERS.items() if k != "X-Robots-Tag"},
        }
        self.header_nonce: str | None = request.headers.get(mw.NONCE_HEADER)
        self.allow: str | None = None  # the matched route's methods (rest_send_allow_header)
        self.nocache = False  # rest_cookie_check_errors asked for nocache headers

    def _after(self) -> dict[str, str]:
        """Headers WordPress adds once dispatch returned (none when PHP ``die()`` d in it)."""
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
        headers = {**self.headers, **self._after()}
        return web.Response(status=status, body=wp.php_encode(obj).encode(), headers=headers)

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
        return web.Response(
            status=status, body=wp.php_encode(obj).encode(), headers=dict(self.headers)
        )

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
        self._response: web.StreamResponse | None = None
        self._written = 0
        self._gone = False  # the client left; PHP would go on, unseen

    async def _line(self, obj: Any, *, sse: bool = True) -> None:
        """``stream_push``: ``data: <json_encode>`` and a blank line, flushed (core.php:866-902)."""
        emu = self.ctx.site._emu
        if self._response is None:
            headers = dict(self.ctx.headers)
            if sse:
                headers.update(mw.SSE_HEADERS)
            self._response = web.StreamResponse(status=200, headers=headers)
            await self._response.prepare(self.ctx.request)
        if self._gone:
            return
        if self._written and emu.chunk_delay:
            await asyncio.sleep(emu.chunk_delay)
        self._written += 1
        chunk = f"data: {wp.php_encode(obj)}\n\n".encode()
        try:
            await self._response.write(chunk)
        except ConnectionResetError:
            self._gone = True
            return
        if emu.on_flush is not None:
            emu.on_flush(chunk)

    async def finish(self) -> web.StreamResponse:
        """End the response (PHP ``die()`` s)."""
        response = self._response
        if response is None:
            raise RuntimeError("nothing was written")
        if not self._gone:
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
        return response

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
            "timestamp": self.ctx.site._emu.now(),  # microtime(true)
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
            if part.kind == "text":
                if self.stream:
                    for piece in split_answer(part.content):
                        await self._line({"type": "live", "data": piece})
                text += part.content
            elif part.kind in ("mwai_event", "warning"):
                event = (
                    part if part.kind == "mwai_event" else Reply.mwai_event("warning", part.content)
                )
                if self.stream:
                    await self._line(self._event(event))
                data = event.data.get("data") if isinstance(event.data, Mapping) else None
                if event.content == "content" and isinstance(data, str):
                    text += data  # the JS appends content events to the answer
            elif part.kind in ("site_error", "exception"):
                return await self.fail(part.content)
            elif part.kind in ("reset", "hang"):  # the connection drops mid-answer
                await asyncio.sleep(part.seconds)
                abort(self.ctx.request)
        return text

    async def final(self, result: dict[str, Any]) -> web.StreamResponse:
        """The success: 200 JSON, or the ``end`` line whose ``data`` is that JSON as a string."""
        token = self.ctx.new_token()
        if token:
            result = {**result, "new_token": token}
        if not self.stream:
            return self.ctx.json(200, result)
        await self._line({"type": "end", "data": wp.php_encode(result)})
        return await self.finish()
