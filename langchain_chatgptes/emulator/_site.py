"""The interface every emulated chat plugin implements, and what the server hands it.

The server (:class:`~langchain_chatgptes.emulator.Emulator`) owns what every WordPress site
shares: the socket, the request log, the clock, faults in front of WordPress, redirects,
Cloudflare and the page variants that apply whatever the plugin. Everything a plugin
decides (its page, its endpoints, its nonce, its state) sits behind :class:`PluginSite`,
one subclass per plugin, listed by name in ``_registry.SITES``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from aiohttp import web

from langchain_chatgptes.emulator import _wordpress as wp
from langchain_chatgptes.emulator.responders import ChatRequest, EchoResponder, Reply

if TYPE_CHECKING:
    from langchain_chatgptes.emulator._records import RecordedRequest
    from langchain_chatgptes.emulator._server import Emulator

HTML = "text/html; charset=UTF-8"
JSON = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class Incoming:
    """One request as a plugin reads it: the aiohttp request and its parsed parts.

    Attributes:
        request: The aiohttp request (its body already read).
        query: Query parameters (a later duplicate wins, as in PHP).
        form: Body fields of a POST (urlencoded or multipart); ``{}`` otherwise.
        headers: Request headers, names lower-cased, repeated ones joined with ``", "``.
        body: The raw body.
    """

    request: web.Request
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @classmethod
    async def read(cls, request: web.Request) -> Incoming:
        """Read the body and parse what PHP would (``$_GET``, ``$_POST``, headers)."""
        body = await request.read()
        content_type = request.headers.get("Content-Type", "")
        form = wp.parse_form(content_type, body) if request.method == "POST" else {}
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return cls(request, dict(request.query.items()), form, headers, body)

    @property
    def method(self) -> str:
        """The HTTP method."""
        return self.request.method

    @property
    def path(self) -> str:
        """The URL path."""
        return self.request.path

    @property
    def fields(self) -> dict[str, str]:
        """PHP's ``$_REQUEST``: the body's fields over the query's."""
        return {**self.query, **self.form}


@dataclass(frozen=True)
class SitePage:
    """A page as a plugin renders it; the server adds the variants every plugin shares.

    Attributes:
        html: The HTML.
        headers: Headers besides ``Content-Type`` (e.g. WordPress' ``Link``).
    """

    html: str
    headers: Mapping[str, str]


class PluginSite(ABC):
    """One chat plugin installed on the emulated WordPress site.

    A subclass gets the :class:`Emulator` it belongs to (its shared settings, clock and
    responder) and reads its own settings from there (e.g. ``emulator.aipkit``). The server
    asks it for the page, hands it the requests it :meth:`serves`, records what
    :meth:`nonce_valid` says of each request, and lists its :meth:`is_chat` requests.

    Attributes:
        name: The plugin's name in ``Emulator(plugin=…)`` and ``--plugin``.
    """

    name: ClassVar[str]

    def __init__(self, emulator: Emulator) -> None:
        """Belong to ``emulator``."""
        self.emu = emulator

    @abstractmethod
    def page(self, path: str, request: web.Request) -> SitePage:
        """The chat page (``path`` ``""`` for ``/``, ``"chat"`` for ``/chat/``)."""

    @abstractmethod
    def serves(self, path: str, query: Mapping[str, str]) -> bool:
        """Whether this address is one of the plugin's endpoints (not a page, not a 404)."""

    @abstractmethod
    async def handle(self, incoming: Incoming) -> web.StreamResponse:
        """Answer a request to one of the plugin's endpoints (:meth:`serves`)."""

    @abstractmethod
    def nonce(self) -> str:
        """The chat nonce a visitor gets now (on the page, or from the plugin's endpoint)."""

    @abstractmethod
    def nonce_valid(self, incoming: Incoming) -> bool | None:
        """Whether the nonce the plugin reads from this request verifies (None: none read)."""

    @abstractmethod
    def is_chat(self, record: RecordedRequest) -> bool:
        """Whether a recorded request is part of a chat turn (``chat_requests()``)."""

    def clear(self) -> None:  # noqa: B027 - a plugin without state has nothing to forget
        """Forget the plugin's state (caches, histories, usage); nothing by default."""

    # --- helpers every plugin uses ----------------------------------------------------------

    def create_nonce(self, action: str) -> str:
        """``wp_create_nonce(action)`` for a guest, now on the emulator's clock."""
        emu = self.emu
        return wp.create_nonce(emu.secret, action, emu.now(), emu.nonce_life)

    def verify_nonce(self, nonce: str, action: str) -> bool:
        """``wp_verify_nonce(nonce, action)`` for a guest, now on the emulator's clock."""
        emu = self.emu
        return wp.verify_nonce(nonce, emu.secret, action, emu.now(), emu.nonce_life)

    async def wait_latency(self) -> None:
        """Wait the emulator's ``latency`` before answering (a slow PHP worker)."""
        if self.emu.latency:
            await asyncio.sleep(self.emu.latency)

    def ask(self, chat: ChatRequest) -> Reply:
        """The responder's answer (``EchoResponder`` when none is set), as a :class:`Reply`."""
        answer = (self.emu.responder or EchoResponder())(chat)
        return Reply.text(answer) if isinstance(answer, str) else answer

    def ajax_headers(self, incoming: Incoming) -> dict[str, str]:
        """What ``admin-ajax.php`` sends before any action runs (with its origin headers)."""
        cors = wp.origin_headers(incoming.headers.get("origin", ""), self.emu.base_url)
        return {"Content-Type": HTML, "X-Robots-Tag": "noindex", **cors}
