"""The AIPKit plugin (AI Power / "AI Puffer" >= 2.3) on admin-ajax, check by check.

An independent writing of ``shared/reference/wp-chat-plugins.md`` Part A and checklist C.2
(sections cited on each step); nothing here comes from the client package. Handlers:

* ``aipkit_get_frontend_chat_nonce`` (A.2, C.2 item 4): a fresh nonce;
* ``aipkit_cache_sse_message`` (A.3.2, C.2 item 5): store the user message, answer a key;
* ``aipkit_frontend_chat_stream`` (A.3.3, A.3.4, C.2 items 6-8): the SSE reply;
* ``aipkit_frontend_chat_message`` (A.3.5, C.2 item 10): the JSON reply of 2.3 -> 2.4.0.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

from langchain_chatgptes.emulator import _aipkit_plugin as aip
from langchain_chatgptes.emulator import _wordpress as wp
from langchain_chatgptes.emulator._aipkit_pages import (
    AipkitBot,
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
from langchain_chatgptes.emulator._plugin import CHECKBOX_MESSAGE
from langchain_chatgptes.emulator._plugin import NONCE_ACTION as LEGACY_NONCE_ACTION
from langchain_chatgptes.emulator._wire import split_answer
from langchain_chatgptes.emulator.responders import ChatRequest, EchoResponder, Reply

if TYPE_CHECKING:
    from langchain_chatgptes.emulator._server import Emulator

_JSON = "application/json; charset=UTF-8"
_HTML = "text/html; charset=UTF-8"
_KEY_CHARS = string.ascii_letters + string.digits  # wp_generate_password(32, false, false)
_DONE_EXTRAS = ("citations", "grounding_metadata")  # repeated in done / the JSON reply
OriginState = Literal["same", "allowed", "no_pro", "denied"]
HistoryKey = tuple[int, str, str]


def parse_version(text: str) -> tuple[int, int, int]:
    """``"2.4.71"`` -> ``(2, 4, 71)``; ``"2.3"`` -> ``(2, 3, 0)``."""
    numbers = [int(part) for part in text.split(".")] + [0, 0, 0]
    return numbers[0], numbers[1], numbers[2]


def request_action(query: Mapping[str, str], form: Mapping[str, str]) -> str:
    """``$_REQUEST['action']``: the body's wins over the query's."""
    return {**query, **form}.get("action", "")


@dataclass(frozen=True)
class _Cached:
    """A row of ``{prefix}aipkit_sse_message_cache`` (A.3.2)."""

    message: str
    image_inputs: str
    client_message_id: str
    stored_at: float


@dataclass(frozen=True)
class _Refusal:
    """A check that failed: the message, extra ``error`` payload, and the JSON status."""

    message: str
    extra: Mapping[str, Any] | None = None
    status: int = 400


class AipkitSite:
    """The plugin's state (message cache, history, guest usage) and its handlers."""

    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator
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

    # --- facts derived from the emulator's knobs ----------------------------------------------

    @property
    def version(self) -> tuple[int, int, int]:
        """``aipkit_version`` as numbers."""
        return parse_version(self._emu.aipkit_version)

    def nonce(self) -> str:
        """``wp_create_nonce('aipkit_frontend_chat_nonce')`` for a guest (A.2, C.2 item 1)."""
        emu = self._emu
        return wp.create_nonce(emu.secret, aip.NONCE_ACTION, emu.now(), emu.nonce_life)

    def _nonce_ok(self, nonce: str) -> bool:
        emu = self._emu
        return wp.verify_nonce(nonce, emu.secret, aip.NONCE_ACTION, emu.now(), emu.nonce_life)

    def nonce_valid(self, query: Mapping[str, str], form: Mapping[str, str]) -> bool | None:
        """Whether a chat request's ``_ajax_nonce`` verifies, read where its handler reads it."""
        action = request_action(query, form)
        if action == aip.CACHE_ACTION:  # wp_verify_nonce(sanitize_key($_POST[…])) (A.2)
            return self._nonce_ok(wp.sanitize_key(form.get(aip.NONCE_FIELD, "")))
        if action in (aip.STREAM_ACTION, aip.MESSAGE_ACTION):  # check_ajax_referer: $_REQUEST
            return self._nonce_ok({**query, **form}.get(aip.NONCE_FIELD, ""))
        return None

    def _published(self, bot_id: int) -> bool:
        emu = self._emu
        return bot_id in emu.aipkit_bots and bot_id not in emu.aipkit_unpublished

    def _refresh_registered(self) -> bool:
        return self._emu.aipkit_nonce_refresh and self.version >= aip.V_NONCE_REFRESH

    def _origin(self, request: web.Request) -> OriginState:
        """``AIPKit_CORS_Manager::check_and_set_cors_headers`` (A.3.3 step 2, C.2 item 9).

        Same origin means same host and scheme (the port is not compared: ``wp_parse_url``).
        """
        emu = self._emu
        origin = request.headers.get("Origin", "")
        if not origin or self.version < aip.V_CORS:
            return "same"
        theirs, ours = urlsplit(origin), urlsplit(emu.base_url)
        same_host = (theirs.hostname or "") == (ours.hostname or "")
        if same_host and (theirs.scheme or "http") == (ours.scheme or "http"):
            return "same"
        if not emu.aipkit_pro:
            return "no_pro"
        allowed = {item.rstrip("/") for item in emu.aipkit_allowed_origins}
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

    # --- page (A.1, C.2 item 2) -----------------------------------------------------------------

    def page(self, path: str, request: web.Request) -> str:
        """The HTML of the page with the bot(s)."""
        return render_aipkit_page(self.page_facts(path, request), self._emu.page_variant)

    def page_facts(self, path: str, request: web.Request) -> AipkitPageFacts:
        """What the page shows of the bots now (also used for a mixed AI Engine page)."""
        emu = self._emu
        version = self.version
        bots: list[AipkitBot] = []
        for bot_id in dict.fromkeys(emu.aipkit_bots):  # the same bot id renders once (A.1)
            layout = emu.aipkit_layout
            if not isinstance(layout, str):
                layout = layout.get(bot_id, "inline")
            streaming = (
                None if version >= aip.V_STREAM_ONLY else bot_id not in emu.aipkit_stream_off
            )
            bots.append(AipkitBot(bot_id, layout, streaming))
        now = emu.now()
        legacy = None
        if emu.page_variant in ("both", "mixed"):  # a stale legacy box (C.1 step 5)
            legacy = PageFacts(
                base_url=emu.base_url,
                path=path,
                post_id=emu.post_id,
                nonce=wp.create_nonce(emu.secret, LEGACY_NONCE_ACTION, now, emu.nonce_life),
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
            version=emu.aipkit_version,
            bots=tuple(bots),
            header_name=emu.aipkit_header_name,
            provider=emu.aipkit_provider,
            user_ip=(request.remote or "") if version < aip.V_NO_USER_IP else None,
            nonce_refresh=self._refresh_registered(),
            legacy_box=legacy,
            ajax_url=emu.page_endpoint or "",
        )

    # --- admin-ajax router (C.2 item 3) -------------------------------------------------------

    async def ajax(
        self,
        request: web.Request,
        query: dict[str, str],
        form: dict[str, str],
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """admin-ajax.php with the plugin's actions registered (``wp_ajax_nopriv_*``)."""
        action = request_action(query, form)
        if not action:  # wp_die('0', 400) before nocache_headers()
            return web.Response(status=400, text="0", headers=headers)
        headers = {**headers, "X-Content-Type-Options": "nosniff", **wp.NOCACHE_HEADERS}
        version = self.version
        handlers = {
            aip.CACHE_ACTION: self._cache_post,
            aip.STREAM_ACTION: self._stream,
        }
        if self._refresh_registered():
            handlers[aip.REFRESH_ACTION] = self._refresh
        if version < aip.V_STREAM_ONLY:
            handlers[aip.MESSAGE_ACTION] = self._message
        handler = handlers.get(action)
        if handler is None:  # not registered: the legacy actions too (A.4, C.1 step 5)
            return web.Response(status=400, text="0", headers=headers)
        if request.method == "OPTIONS":  # handle_preflight_request(): CORS headers, 200, exit
            cors = self._cors_headers(request) if self._origin(request) == "allowed" else {}
            return web.Response(status=200, headers={**headers, **cors})
        return await handler(request, query, form, headers)

    @staticmethod
    def _json(status: int, obj: Any, headers: Mapping[str, str]) -> web.Response:
        body = wp.php_json(obj).encode()  # wp_send_json: wp_json_encode with default flags
        return web.Response(status=status, body=body, headers={**headers, "Content-Type": _JSON})

    def _json_error(
        self, status: int, message: str, code: str | None, headers: Mapping[str, str]
    ) -> web.Response:
        data = {"message": message} if code is None else {"message": message, "code": code}
        return self._json(status, {"success": False, "data": data}, headers)

    # --- aipkit_get_frontend_chat_nonce (A.2, C.2 item 4) -----------------------------------

    async def _refresh(
        self,
        request: web.Request,
        query: dict[str, str],
        form: dict[str, str],
        headers: dict[str, str],
    ) -> web.StreamResponse:
        fault = pop_fault(self._emu._lock, self._emu.refresh_faults)
        if fault is not None:
            return raw_response(fault) if fault.kind == "raw" else await send_fault(request, fault)
        if wp.absint(form.get("bot_id", "")) > 0:  # bot_id only scopes the CORS check
            state = self._origin(request)
            if state in ("no_pro", "denied"):  # always cors_denied here (A.2 :55-58)
                return self._json_error(403, aip.CORS_DENIED_MSG, aip.CORS_DENIED_CODE, headers)
            if state == "allowed":
                headers = {**headers, **self._cors_headers(request)}
        # nocache_headers() (already sent by admin-ajax.php), then wp_send_json_success.
        return self._json(200, {"success": True, "data": {"nonce": self.nonce()}}, headers)

    # --- aipkit_cache_sse_message (A.3.2, C.2 item 5) ---------------------------------------

    async def _cache_post(
        self,
        request: web.Request,
        query: dict[str, str],
        form: dict[str, str],
        headers: dict[str, str],
    ) -> web.StreamResponse:
        emu = self._emu
        fault = pop_fault(self._emu._lock, emu.cache_faults)
        if fault is not None:
            return raw_response(fault) if fault.kind == "raw" else await send_fault(request, fault)
        # Order (A.3.2): CORS (bot_id > 0, cross-origin) -> nonce -> images -> empty -> store.
        if wp.absint(form.get("bot_id", "")) > 0:
            state = self._origin(request)
            if state == "no_pro":
                return self._json_error(
                    403, aip.EMBED_NOT_AVAILABLE_MSG, aip.EMBED_NOT_AVAILABLE_CODE, headers
                )
            if state == "denied":
                return self._json_error(403, aip.CORS_DENIED_MSG, aip.CORS_DENIED_CODE, headers)
            if state == "allowed":
                headers = {**headers, **self._cors_headers(request)}
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
            stored_at=emu.now(),
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
            if self._emu.now() >= entry.stored_at + aip.CACHE_TTL:  # valid while expires_at > now
                return _Refusal(aip.KEY_EXPIRED_MSG)  # the expired row is kept
            del self._cache[key]
        return entry.message

    # --- the checks shared by both chat endpoints (A.3.3 steps 5-7) -------------------------

    def _quota(self, session_id: str) -> _Refusal | None:
        limit = self._emu.token_limit
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
        emu = self._emu
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

    def _ask(
        self,
        key: HistoryKey,
        message: str,
        form: Mapping[str, str],
    ) -> Reply:
        """Log the user turn, load the history (A.5, C.2 item 8), ask the responder.

        The plugin logs the message first and then drops a trailing user turn from the
        loaded thread: that is the message just logged, so the model sees the stored turns
        before it (last ``aipkit_max_messages``) plus the message.
        """
        emu = self._emu
        with self._lock:
            thread = self._history.setdefault(key, [])
            turns = list(thread)
            thread.append({"role": "user", "content": message})
        keep = emu.aipkit_max_messages
        upstream = [*(turns[-keep:] if keep > 0 else []), {"role": "user", "content": message}]
        chat = ChatRequest(
            message=message, form=dict(form), client_id=key[2], upstream_messages=upstream
        )
        answer = (emu.responder or EchoResponder())(chat)
        reply = Reply.text(answer) if isinstance(answer, str) else answer
        if reply.kind in ("token_limit", "ipBanned", "messageFlagged"):
            with self._lock:  # the plugin refuses these before logging the message
                if thread and thread[-1] == {"role": "user", "content": message}:
                    thread.pop()
        if reply.kind == "checkbox":  # chatgpt.es' own answer, here just text
            reply = Reply.text(CHECKBOX_MESSAGE)
        return reply

    def _store_reply(self, key: HistoryKey, message: str, text: str) -> None:
        cost = int((len(message) + len(text)) / 100 * 21)  # the emulator's estimate, as legacy
        with self._lock:
            self._history.setdefault(key, []).append({"role": "assistant", "content": text})
            self._usage[key[2]] = self._usage.get(key[2], 0) + cost

    def message_id(self) -> str:
        """``'aipkit-msg-' . uniqid('', true)``: 8 + 5 hex digits, then ``%.8F`` of 0-10."""
        now = self._emu.now()
        seconds = int(now)
        micros = (int((now - seconds) * 1_000_000) + next(self._uniq)) % 1_000_000
        digits = secrets.randbelow(10**9)
        entropy = f"{digits // 10**8}.{digits % 10**8:08d}"
        return f"{aip.MESSAGE_ID_PREFIX}{seconds:08x}{micros:05x}{entropy}"

    # --- aipkit_frontend_chat_stream (A.3.3, A.3.4, C.2 items 6-8) --------------------------

    async def _stream(
        self,
        request: web.Request,
        query: dict[str, str],
        form: dict[str, str],
        headers: dict[str, str],
    ) -> web.StreamResponse:
        version = self.version
        sse = _Sse(self, request, headers)
        params = query  # $_GET; only the nonce comes from $_REQUEST (check_ajax_referer)
        bot_id = wp.absint(params.get("bot_id", ""))
        if bot_id > 0:  # step 2: CORS
            state = self._origin(request)
            if state in ("no_pro", "denied"):
                return await sse.fail(_Refusal(aip.CORS_DENIED_MSG))
            if state == "allowed":
                sse.headers.update(self._cors_headers(request))
        if not self._nonce_ok({**query, **form}.get(aip.NONCE_FIELD, "")):  # step 3
            old = version < aip.V_STREAM_NONCE_TEXT
            return await sse.fail(
                _Refusal(aip.OLD_STREAM_NONCE_MSG if old else aip.STREAM_NONCE_MSG)
            )
        message = self.cached_message(params.get("cache_key", ""))  # step 4
        if isinstance(message, _Refusal):
            return await sse.fail(message)
        conversation = wp.sanitize_key(params.get("conversation_uuid", ""))
        session = wp.sanitize_text_field(params.get("session_id", ""))
        refusal = (  # steps 5-7
            (None if self._published(bot_id) else _Refusal(aip.INVALID_BOT_MSG))
            or (None if conversation else _Refusal(aip.CONVERSATION_MISSING_MSG))
            or (None if session else _Refusal(aip.SESSION_MISSING_MSG))
            or self._quota(session)
            or self._moderation(request, message)
        )
        if refusal is not None:
            return await sse.fail(refusal)
        key = (bot_id, conversation, session)
        reply = self._ask(key, message, params)  # step 8
        if reply.kind == "raw":
            return raw_response(reply)
        if reply.kind in FAULT_KINDS:
            return await send_fault(request, reply)
        refusal = self._refusal_for(reply)
        if refusal is not None:
            return await sse.fail(refusal)
        return await self._answer(sse, reply, key, message)

    async def _answer(
        self, sse: _Sse, reply: Reply, key: HistoryKey, message: str
    ) -> web.StreamResponse:
        """Step 9 and the relay of A.3.4: ``message_start``, the parts, ``done`` or not."""
        await sse.event("message_start", {"message_id": self.message_id()})
        parts = reply.parts if reply.kind == "sequence" else (reply,)
        text, sent, done_extra = "", False, {}
        for part in parts:
            if part.kind == "text":
                for piece in split_answer(part.content):
                    await sse.data({"delta": piece})
                    sent = True
                text += part.content
            elif part.kind == "warning":  # non-fatal; its text joins the stored reply
                await sse.error(part.content, name="warning", done=False)
                text, sent = text + part.content, True
            elif part.kind == "aipkit_event":
                await sse.event(part.content, part.data)
                sent = True
                if part.content in _DONE_EXTRAS:
                    done_extra[part.content] = part.data
            elif part.kind == "site_error":  # provider HTTP error: nothing logged, no done
                await sse.error(aip.API_ERROR_PREFIX + part.content, done=False)
                return await sse.finish()
            elif part.kind == "exception":  # transport error: the partial reply is logged
                if text:
                    self._store_reply(key, message, text)
                await sse.error(aip.CONNECTION_ERROR_PREFIX + part.content, done=False)
                return await sse.finish()
            elif part.kind in ("reset", "hang"):  # the connection drops mid-stream
                if text:
                    self._store_reply(key, message, text)
                await asyncio.sleep(part.seconds)
                abort(sse.request)
        if not sent:
            await sse.error(aip.NO_DATA_MSG, done=False)
            return await sse.finish()
        self._store_reply(key, message, text)
        await sse.event("done", {"finished": True, **done_extra})
        return await sse.finish()

    # --- aipkit_frontend_chat_message, 2.3 -> 2.4.0 (A.3.5, C.2 item 10) --------------------

    async def _message(
        self,
        request: web.Request,
        query: dict[str, str],
        form: dict[str, str],
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """The JSON chat endpoint.

        Statuses, and the texts the reference lacks, from 2.4.0's
        ``ajax_frontend_chat_message.php`` and ``class-chat-message-validator.php`` (source).
        """
        version = self.version
        bot_id = wp.absint(form.get("bot_id", ""))

        def error(refusal: _Refusal) -> web.Response:
            return self._json_error(refusal.status, refusal.message, None, headers)

        if bot_id > 0:
            state = self._origin(request)
            if state == "no_pro":
                return error(_Refusal(aip.EMBED_NOT_AVAILABLE_MSG, status=403))
            if state == "denied":
                return error(_Refusal(aip.CORS_DENIED_MSG, status=403))
            if state == "allowed":
                headers = {**headers, **self._cors_headers(request)}
        nonce = {**query, **form}.get(aip.NONCE_FIELD, "")
        if version >= aip.V_STREAM_NONCE_TEXT and not self._nonce_ok(nonce):
            return error(_Refusal(aip.STREAM_NONCE_MSG, status=403))
        if not self._published(bot_id):
            return error(_Refusal(aip.BOT_CONFIG_MSG, status=500))
        conversation = wp.sanitize_key(form.get("conversation_uuid", ""))
        session = wp.sanitize_text_field(form.get("session_id", ""))
        message = form.get("message", "").replace("\0", "")
        refusal = (
            (None if conversation else _Refusal(aip.CONVERSATION_REQUIRED_MSG))
            or (None if session else _Refusal(aip.SESSION_MISSING_MSG))
            or (None if message or form.get("image_inputs") else _Refusal(aip.EMPTY_MESSAGE_MSG))
            or self._quota(session)
            or self._moderation(request, message)
        )
        if refusal is not None:
            return error(refusal)
        key = (bot_id, conversation, session)
        reply = self._ask(key, message, form)
        if reply.kind == "raw":
            return raw_response(reply)
        if reply.kind in FAULT_KINDS:
            return await send_fault(request, reply)
        refusal = self._refusal_for(reply)
        if refusal is not None:
            return error(_Refusal(refusal.message, status=refusal.status))
        parts = reply.parts if reply.kind == "sequence" else (reply,)
        text, payload_extra = "", {}
        for part in parts:
            if part.kind == "site_error":
                return error(_Refusal(aip.API_ERROR_PREFIX + part.content))
            if part.kind == "exception":
                return error(_Refusal(aip.CONNECTION_ERROR_PREFIX + part.content))
            if part.kind in ("reset", "hang"):
                await asyncio.sleep(part.seconds)
                abort(request)
            if part.kind in ("text", "warning"):
                text += part.content
            elif part.kind == "aipkit_event" and part.content in _DONE_EXTRAS:
                payload_extra[part.content] = part.data
        self._store_reply(key, message, text)
        data = {"reply": text, "message_id": self.message_id(), **payload_extra}
        return self._json(200, {"success": True, "data": data}, headers)


class _Sse:
    """The stream reply: headers and preamble on first use, one write per event (A.3.4)."""

    def __init__(self, site: AipkitSite, request: web.Request, headers: Mapping[str, str]) -> None:
        self._site, self.request = site, request
        self.headers = {**headers, **aip.SSE_HEADERS}
        if site.version < aip.V_PREAMBLE:
            self.headers["Cache-Control"] = aip.OLD_CACHE_CONTROL
        self._response: web.StreamResponse | None = None
        self._written = 0
        self._gone = False  # the client left; PHP goes on (ignore_user_abort), unseen

    async def _open(self) -> web.StreamResponse:
        if self._response is None:
            self._response = web.StreamResponse(status=200, headers=self.headers)
            await self._response.prepare(self.request)
            if self._site.version >= aip.V_PREAMBLE:
                await self._emit(aip.PREAMBLE)
        return self._response

    async def _emit(self, chunk: bytes) -> None:
        """``echo`` + ``ob_flush()`` + ``flush()``: one socket write per event."""
        emu = self._site._emu
        response = await self._open()
        if self._gone:
            return
        if self._written and emu.chunk_delay:
            await asyncio.sleep(emu.chunk_delay)
        self._written += 1
        try:
            await response.write(chunk)
        except ConnectionResetError:
            self._gone = True
            return
        if emu.on_flush is not None:
            emu.on_flush(chunk)

    async def event(self, name: str, data: Any, event_id: str | None = None) -> None:
        """``event: <name>``, maybe ``id: <id>``, ``data: <json>``, then a blank line."""
        head = f"event: {name}\n" + (f"id: {event_id}\n" if event_id is not None else "")
        await self._emit(f"{head}data: {wp.php_json_unicode(data)}\n\n".encode())

    async def data(self, data: Any) -> None:
        """An unnamed ``data: <json>`` event."""
        await self._emit(f"data: {wp.php_json_unicode(data)}\n\n".encode())

    async def error(
        self,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        name: str = "error",
        done: bool = True,
    ) -> None:
        """``send_sse_error``: ``{"error": …}`` with ``id: err-<unix>``, then maybe ``done``."""
        event_id = f"{aip.ERROR_ID_PREFIX}{int(self._site._emu.now())}"
        await self.event(name, {"error": message, **(extra or {})}, event_id)
        if done:
            await self.event("done", {"finished": True})

    async def fail(self, refusal: _Refusal) -> web.StreamResponse:
        """An error before ``message_start``: ``error`` + ``done`` (A.3.4 termination rules)."""
        await self.error(refusal.message, extra=refusal.extra)
        return await self.finish()

    async def finish(self) -> web.StreamResponse:
        """End the response (PHP exits)."""
        response = await self._open()
        if not self._gone:
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
        return response
