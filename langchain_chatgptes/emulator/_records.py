"""What the emulator keeps of each request it received, for tests to look at."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_chatgptes.emulator._mwai_plugin import REST_PREFIX
from langchain_chatgptes.emulator._plugin import AJAX_PATH
from langchain_chatgptes.emulator._wordpress import request_action


def rest_route(path: str, query: Mapping[str, str], *, pretty: bool = True) -> str | None:
    """The WordPress REST route a request names, or None when it is no REST request.

    ``/wp-json/<route>`` (pretty permalinks only) or ``?rest_route=<route>`` on ``/`` or
    ``/index.php`` (always); ``untrailingslashit``, and ``/`` when empty, as
    ``rest_api_loaded()`` does (source: WordPress core).
    """
    if pretty and (path == REST_PREFIX or path.startswith(REST_PREFIX + "/")):
        route = path[len(REST_PREFIX) :]
    elif path in ("/", "/index.php") and "rest_route" in query:
        route = query["rest_route"]
    else:
        return None
    return route.rstrip("/\\") or "/"


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
        nonce_valid: Whether the nonce the plugin reads verified, as the plugin's site says
            (``PluginSite.nonce_valid``): legacy, for admin-ajax POSTs, ``_wpnonce``;
            AIPKit, for the chat actions (cache, stream, non-stream message), ``_ajax_nonce``
            where the plugin reads it; AI Engine, for REST requests, the nonce
            ``rest_cookie_check_errors`` reads (``_wpnonce``, else the ``X-WP-Nonce``
            header; None when there is none); None otherwise.
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
        return request_action(self.query, self.form) if self.path == AJAX_PATH else ""

    @property
    def route(self) -> str:
        """The WordPress REST route addressed (``/wp-json/<route>`` or ``?rest_route=``), or ``""``.

        E.g. ``/mwai-ui/v1/chats/submit``; ``/`` for the index.
        """
        return rest_route(self.path, self.query) or ""
