"""The legacy AI Power plugin (wpaicg, <= 2.2) on admin-ajax, check by check.

An independent writing of ``shared/reference/chatgptes-protocol.md`` §3 (sections cited on each
step) and of what a real 2.2 site sent (``shared/reference/real-plugins.md``, "Legacy AI Power
2.2"); nothing here comes from the client package. Its settings are the emulator's own
top-level ones (``stream``, ``nonce_failure``, ``sanitize``, ``checkbox_field``,
``legacy_trailing_json``), as it is the default plugin.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from aiohttp import web

from langchain_chatgptes.emulator import _plugin as plugin
from langchain_chatgptes.emulator import _wordpress as wp
from langchain_chatgptes.emulator._faults import FAULT_KINDS, raw_response, send_fault
from langchain_chatgptes.emulator._pages import PageFacts, render_page
from langchain_chatgptes.emulator._site import HTML, JSON, Incoming, PluginSite, SitePage
from langchain_chatgptes.emulator._stream import StreamWriter
from langchain_chatgptes.emulator._wire import json_body, sse_events
from langchain_chatgptes.emulator.responders import ChatRequest, Reply

if TYPE_CHECKING:
    from langchain_chatgptes.emulator._records import RecordedRequest
    from langchain_chatgptes.emulator._server import Emulator

_ACTIONS = (plugin.ACTION, plugin.WIDGET_ACTION)  # the shortcode and the widget share a handler
_TEXT_KINDS = ("sequence", "warning", "aipkit_event", "mwai_event")  # other plugins' replies
_STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
"""The stream mode's headers (§3.6 "Stream mode")."""


class WpaicgSite(PluginSite):
    """The plugin's guest token usage and its admin-ajax handler (§3.4-§3.6)."""

    name: ClassVar[str] = "wpaicg"

    def __init__(self, emulator: Emulator) -> None:
        """Belong to ``emulator``, with no token used yet."""
        super().__init__(emulator)
        self._lock = threading.Lock()
        self._usage: dict[str, int] = {}  # tokens by wpaicg_chat_client_id

    def clear(self) -> None:
        """Forget the guests' token usage."""
        with self._lock:
            self._usage.clear()

    def nonce(self) -> str:
        """``wp_create_nonce('wpaicg-chatbox')``, the page's ``data-nonce`` (§3.3)."""
        return self.create_nonce(plugin.NONCE_ACTION)

    def _nonce_ok(self, nonce: str) -> bool:
        return self.verify_nonce(nonce, plugin.NONCE_ACTION)

    def nonce_valid(self, incoming: Incoming) -> bool | None:
        """For an admin-ajax POST, whether its ``_wpnonce`` verifies; else None."""
        if incoming.method != "POST" or incoming.path != plugin.AJAX_PATH:
            return None
        return self._nonce_ok(incoming.fields.get("_wpnonce", ""))

    def is_chat(self, record: RecordedRequest) -> bool:
        """Every POST to admin-ajax."""
        return record.method == "POST" and record.path == plugin.AJAX_PATH

    def serves(self, path: str, query: Mapping[str, str]) -> bool:
        """admin-ajax.php."""
        return path == plugin.AJAX_PATH

    # --- page (§3.2) --------------------------------------------------------------------------

    def page(self, path: str, request: web.Request) -> SitePage:
        """The page with the ``div.wpaicg-chat-shortcode`` box and ``wpaicgParams``."""
        emu = self.emu
        facts = PageFacts(
            base_url=emu.base_url,
            path=path,
            post_id=emu.post_id,
            nonce=self.nonce(),
            img_nonce=self.create_nonce("wpaicg-imagelog"),
            rest_nonce=self.create_nonce("wp_rest"),
            stream=emu.stream,
            ajax_url=emu.page_endpoint or "",
        )
        return SitePage(
            render_page(facts, emu.page_variant), {"Link": wp.api_link(f"{emu.base_url}/wp-json/")}
        )

    # --- admin-ajax (§3.4, §3.5) -------------------------------------------------------------

    async def handle(self, incoming: Incoming) -> web.StreamResponse:
        """admin-ajax.php and the plugin's handler, check by check."""
        if incoming.method == "POST":
            await self.wait_latency()
        headers = self.ajax_headers(incoming)
        if incoming.method == "OPTIONS":  # send_origin_headers() answers it, then exits
            cors = wp.origin_headers(incoming.headers.get("origin", ""), self.emu.base_url)
            return web.Response(status=200 if cors else 403, headers={"Content-Type": HTML, **cors})
        fields = incoming.fields  # PHP's $_REQUEST: POST overrides GET
        if fields.get("action") not in _ACTIONS:
            return web.Response(status=400, text="0", headers={**headers, **wp.NOCACHE_HEADERS})
        headers.update({"X-Content-Type-Options": "nosniff", **wp.NOCACHE_HEADERS})
        if not self._nonce_ok(fields.get("_wpnonce", "")):
            return self._nonce_failure(incoming, fields, headers)
        if self.emu.nonce_failure == "modern":
            fields = incoming.form  # from 1.8.91 the handler reads $_POST only
        return await self._chat(_Output(self.emu, incoming.request, headers), incoming, fields)

    def _nonce_failure(
        self, incoming: Incoming, fields: Mapping[str, str], headers: dict[str, str]
    ) -> web.Response:
        """§3.3: 200 JSON before 1.8.91, else ``wp_nonce_ays()`` through the Ajax die handler."""
        emu = self.emu
        if emu.nonce_failure == "legacy":
            body = wp.php_json({"status": "error", "msg": plugin.NONCE_FAILED_MSG}).encode()
            return web.Response(body=body, headers={**headers, "Content-Type": JSON})
        # Bare text, plus a link back to a same-site referer.
        text = plugin.NONCE_EXPIRED_TEXT
        path_qs = incoming.request.path_qs
        referer = fields.get("_wp_http_referer") or incoming.headers.get("referer", "")
        same_site = urlsplit(referer).hostname in (None, urlsplit(emu.base_url).hostname)
        own_uri = referer in (path_qs, emu.base_url + path_qs)
        if referer and same_site and not own_uri:
            text += f'</p><p><a href="{wp.esc_url(referer)}">Please try again.</a>'
        return web.Response(status=403, body=text.encode(), headers=headers)

    async def _chat(
        self, out: _Output, incoming: Incoming, fields: Mapping[str, str]
    ) -> web.StreamResponse:
        """The handler after the nonce (§3.5, §3.6): checkbox, bans, limit, then the answer."""
        emu = self.emu
        if emu.checkbox_field and fields.get(emu.checkbox_field) != "1":
            return await out.send(Reply.checkbox())
        keep_raw = emu.sanitize == "raw"
        raw_message = fields.get("message", "")
        message = raw_message if keep_raw else wp.sanitize_text_field(raw_message)
        client_id = fields.get("wpaicg_chat_client_id", "")
        for flag in self._flags(incoming.request.remote, message):
            if not emu.stream:
                return await out.send(flag)
            await out.send(flag, last=False)  # the plugin does not exit here in stream mode
        refusal = self._limit(client_id) or (
            None if message else Reply("error", plugin.EMPTY_MESSAGE_MSG)
        )
        if refusal is not None:
            return await out.send(refusal)
        chat = ChatRequest(
            message=message,
            form=dict(fields),
            client_id=client_id,
            upstream_messages=wp.upstream_messages(
                fields.get("wpaicg_chat_history", ""), message, keep_newlines=keep_raw
            ),
        )
        reply = self.ask(chat)
        if reply.kind in _TEXT_KINDS:  # the other plugins' replies answer their text here
            reply = Reply.text(reply.answer_text())
        self._count(client_id, message, reply)
        return await out.send(reply)

    def _flags(self, remote: str | None, message: str) -> list[Reply]:
        """The ban checks: banned IP, then a banned word (matched per space-separated word)."""
        emu = self.emu
        flags = []
        if remote in emu.banned_ips:
            flags.append(Reply.flag("ipBanned", plugin.IP_BANNED_MSG))
        if {word.strip().lower() for word in emu.banned_words} & set(message.lower().split(" ")):
            flags.append(Reply.flag("messageFlagged", plugin.WORD_BANNED_MSG))
        return flags

    def _limit(self, client_id: str) -> Reply | None:
        """The guest token limit: refused once the usage is over it."""
        limit = self.emu.token_limit
        with self._lock:
            used = self._usage.get(client_id, 0)
        return Reply.token_limit() if limit is not None and used > limit else None

    def _count(self, client_id: str, message: str, reply: Reply) -> None:
        if reply.kind != "text":
            return
        # The plugin's stream-mode estimate: 21 tokens per 100 characters.
        cost = int((len(message) + len(reply.content)) / 100 * 21)
        with self._lock:
            self._usage[client_id] = self._usage.get(client_id, 0) + cost


class _Output:
    """Sends one answer: a JSON response, or events on a stream opened by the first one."""

    def __init__(self, emulator: Emulator, request: web.Request, headers: dict[str, str]) -> None:
        self._emulator, self._request, self._headers = emulator, request, headers
        self._stream = StreamWriter(emulator, request, {**headers, **_STREAM_HEADERS})

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
            if not self._stream.opened:
                return self._whole(reply)
            # PHP echoes it into the stream already under way.
            events = [reply.body if reply.kind == "raw" else json_body(reply)]
        for event in events:
            await self._stream.write(event)
        return await self._stream.finish() if last else await self._stream.open()

    def _whole(self, reply: Reply) -> web.Response:
        """A reply sent whole: :meth:`Reply.raw` verbatim, or ``wp_send_json``."""
        if reply.kind == "raw":
            return raw_response(reply)
        return web.Response(body=json_body(reply), headers={**self._headers, "Content-Type": JSON})
