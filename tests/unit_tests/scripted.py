"""A scripted stand-in for the I/O adapter: the policy layer driven without sockets.

Like httpx's ``MockTransport``: each request the policy makes takes the next scripted
reply (or the reply a handler returns), and every request is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from langchain_chatgptes.protocols._base import HttpRequest, ReplyHead

PAGE_URL = "https://site.example/"
NONCE = "a1b2c3d4e5"


def page_html(nonce: str = NONCE, *, streams: bool = False) -> str:
    """A minimal legacy chat page with its chat box and wpaicgParams."""
    return (
        f'<div class="wpaicg-chat-shortcode" data-nonce="{nonce}" data-post-id="7" '
        f'data-url="https://site.example" data-bot-id="0" '
        f'data-openai_stream_nav="{int(streams)}"></div>'
        '<script>var wpaicgParams = {"ajax_url":"https:\\/\\/site.example\\/wp-admin\\/'
        f'admin-ajax.php","search_nonce":"{nonce}"}};</script>'
    )


def json_answer(text: str) -> bytes:
    """The legacy plugin's JSON success body."""
    return ('{"status":"success","msg":"","data":"' + text + '"}').encode()


@dataclass
class Scripted:
    """One scripted reply: body chunks, then the head (or an error after the chunks)."""

    status: int = 200
    chunks: Sequence[bytes] = ()
    headers: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None
    delay: float = 0.0  # before the first chunk


class _Transfer:
    def __init__(self, reply: Scripted, url: str) -> None:
        self._reply = reply
        self._url = url
        self.head: ReplyHead | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._reply.delay:
            await asyncio.sleep(self._reply.delay)
        for chunk in self._reply.chunks:
            yield chunk
        if self._reply.error is not None:
            raise self._reply.error
        self.head = ReplyHead(self._reply.status, self._reply.headers, self._url)


class ScriptedAdapter:
    """Answers requests from a handler; records them and how many are open at once."""

    def __init__(self, handler: Callable[[HttpRequest], Scripted]) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.open_now = 0

    @asynccontextmanager
    async def open(self, request: HttpRequest, limit: float | None) -> AsyncIterator[_Transfer]:
        self.requests.append(request)
        self.open_now += 1
        try:
            yield _Transfer(self.handler(request), request.url)
        finally:
            self.open_now -= 1


def site(
    *chat_replies: Scripted, streams: bool = False, nonces: Sequence[str] = (NONCE,)
) -> Callable[[HttpRequest], Scripted]:
    """A handler: pages carry the next nonce of ``nonces``; chat POSTs take the next reply."""
    pages = list(nonces)
    replies = list(chat_replies)

    def handle(request: HttpRequest) -> Scripted:
        if request.method == "GET":
            nonce = pages.pop(0) if len(pages) > 1 else pages[0]
            return Scripted(200, [page_html(nonce, streams=streams).encode()])
        return replies.pop(0) if replies else Scripted(200, [json_answer("default")])

    return handle
