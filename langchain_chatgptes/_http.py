"""The I/O adapter: sends a planned :class:`HttpRequest` over curl_cffi, hands back bytes.

This is the only module that touches sockets, and :func:`map_errors` is the only place
where curl's errors become the package's. :class:`CurlAdapter.open` runs one request and
yields a :class:`Transfer`: the body's chunks as they arrive, then the reply's head.

A transfer holds its curl handle from the session's pool (the concurrency slot) until
curl_cffi's own ``finally`` gives it back: a plain request is awaited by the consumer's own
task, a streamed one runs as a task of its own. The invariant: **every exit from**
``open()`` **(end, error, time limit, or cancellation at any await: waiting for a pooled
handle, for the first bytes, mid-body) ends that transfer**: a plain
request through the cancellation of the task awaiting it, a stream by cancelling its task
and waiting for it. Either way curl's multi handle drops the handle (the transfer stops at
once) and the handle returns to the pool. No other code holds a slot.
"""

from __future__ import annotations

import asyncio
import http.cookies
import threading
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, Protocol
from urllib.parse import urlsplit

from curl_cffi import CurlError
from curl_cffi.requests import AsyncSession, Response, Session
from curl_cffi.requests import exceptions as curl_exceptions

from langchain_chatgptes.errors import (
    ChatGptEsError,
    InvalidInputError,
    RequestTimeoutError,
    TransportError,
    UntrustedEndpointError,
)
from langchain_chatgptes.protocols._base import HttpRequest, ReplyHead


def mask_proxy(url: str) -> str:
    """A proxy URL with its credentials replaced by ``***`` (for repr, logs and errors)."""
    try:
        parts = urlsplit(url)
        if not (parts.username or parts.password):
            return url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an unreadable URL (e.g. a port that is not a number): show none of it
        return "***"
    return parts._replace(netloc=f"***@{host}{port}").geturl()


def scrub_proxy(text: str, proxy: str | None) -> str:
    """``text`` (e.g. curl's error message) with the proxy's credentials masked.

    They are masked where they stand as in a URL (the proxy URL itself, or its
    ``user:password@``), never wherever their letters happen to occur: a short password
    must not turn "Failed to perform" into "Fail***d to p***rform".
    """
    if not proxy:
        return text
    text = text.replace(proxy, mask_proxy(proxy))
    userinfo = proxy.partition("://")[2].rpartition("@")[0]
    return text.replace(f"{userinfo}@", "***@") if userinfo else text


_NOT_HTTP_CODES = frozenset({1, 8})
_URL_MALFORMAT = 3
_URL_SHOWN = 200  # characters of a request's URL shown in a message (a page chose it)
# With a proxy, curl connects to the proxy only: failing to resolve it (5) or to connect
# (7) is the proxy's failure; the site's own failures come back from the proxy (502, 97).
_PROXY_UNREACHABLE = frozenset({5, 7})


def _curl_text(exc: BaseException) -> str:
    text = str(exc).removeprefix("Failed to perform, ")
    return text.split(" See https://curl.se")[0].strip()


@contextmanager
def map_errors(request: HttpRequest, timeout: float | None, proxy: str | None) -> Iterator[None]:
    """Turn curl's errors (and the package's own time limits) into the package's errors.

    Args:
        request: The request under way, named in the message.
        timeout: The limit in force, named in a timeout's message.
        proxy: The proxy URL, whose credentials never reach a message.
    """
    url = request.url if len(request.url) <= _URL_SHOWN else request.url[:_URL_SHOWN] + "…"
    what = f"{request.method} {url}"
    try:
        yield
    except ChatGptEsError:
        raise
    except curl_exceptions.ImpersonateError as exc:
        raise InvalidInputError(
            f"impersonate= names a browser target curl_cffi does not know: "
            f"{scrub_proxy(_curl_text(exc), proxy)}",
            setting="impersonate",
        ) from exc
    except (curl_exceptions.Timeout, TimeoutError) as exc:
        detail = scrub_proxy(_curl_text(exc), proxy)
        raise RequestTimeoutError(
            f"{what} timed out (timeout={timeout} s){': ' + detail if detail else ''}"
        ) from exc
    except CurlError as exc:
        code = getattr(exc, "code", None)
        if isinstance(exc, curl_exceptions.ProxyError) or (proxy and code in _PROXY_UNREACHABLE):
            raise TransportError(
                f"{what} failed at the proxy {mask_proxy(proxy or '')}: "
                f"{scrub_proxy(_curl_text(exc), proxy)}",
                at_proxy=True,
            ) from exc
        if code == _URL_MALFORMAT:  # a URL the trust rule let through but curl refuses
            detail = scrub_proxy(_curl_text(exc), proxy)
            if request.step == "page":  # the user's base_url
                raise InvalidInputError(
                    f"{what}: curl cannot use this URL: {detail}", setting="base_url"
                ) from exc
            raise UntrustedEndpointError(
                f"{what}: curl cannot use the URL the page names: {detail}",
                url=request.url,
                reason="curl cannot use it",
            ) from exc
        # curl's codes for a reply that is not HTTP at all (1: "HTTP/0.9", 8: weird reply)
        not_http = code in _NOT_HTTP_CODES
        raise TransportError(
            f"{what} failed: {scrub_proxy(_curl_text(exc), proxy)}", not_http=not_http
        ) from exc


def reply_head(response: Response) -> ReplyHead:
    """The head of a finished curl_cffi response, names lower-cased, cookies read."""
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value or ''}" if key in headers else value or ""
    cookies: dict[str, str] = {}
    for line in response.headers.get_list("set-cookie") if "set-cookie" in headers else ():
        jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
        with suppress(http.cookies.CookieError):
            jar.load(line or "")
        cookies.update({name: morsel.value for name, morsel in jar.items()})
    return ReplyHead(response.status_code, headers, response.url, cookies)


# Per byte, what ``urllib.parse.urlencode`` writes for it (``quote_plus``): kept as is, "+"
# for a space, "%XX" otherwise. ``str.translate`` applies it at C speed to the UTF-8 bytes
# (as Latin-1 characters), where ``urlencode`` quotes a character at a time.
_FORM_ESCAPES = {
    byte: (
        chr(byte)
        if chr(byte).isascii() and (chr(byte).isalnum() or chr(byte) in "_.-~")
        else "+"
        if byte == 0x20
        else f"%{byte:02X}"
    )
    for byte in range(256)
}


def form_body(fields: tuple[tuple[str, str], ...]) -> bytes:
    """``urlencode(fields)`` as bytes, byte for byte the same, in a fraction of the time."""
    return "&".join(
        name.encode().decode("latin-1").translate(_FORM_ESCAPES)
        + "="
        + value.encode().decode("latin-1").translate(_FORM_ESCAPES)
        for name, value in fields
    ).encode("ascii")


def request_arguments(request: HttpRequest) -> dict[str, Any]:
    """The keyword arguments of curl_cffi's ``request()`` for a planned request."""
    headers = dict(request.headers)
    body: bytes | None = None
    if request.form is not None:
        body = form_body(request.form)
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif request.json is not None:
        body = request.json.encode()
        headers.setdefault("Content-Type", "application/json")
    return {
        "method": request.method,
        "url": request.url,
        "headers": headers,
        "data": body,
        "cookies": dict(request.cookies) or None,
        # Cookies a protocol needs travel in its state, sent explicitly: a session's jar
        # lives per thread or per loop, and is the user's when the session is.
        "discard_cookies": True,
        # Redirects are the policy's to follow (the page's only): curl never follows one.
        "allow_redirects": False,
    }


class Transfer:
    """A request in flight: iterate for body chunks; :attr:`head` is set at the end.

    Fed by curl's write callback on the event loop; read by one consumer.
    """

    def __init__(self, request: HttpRequest, timeout: float | None) -> None:
        """Prepare to receive the reply to ``request`` within ``timeout`` seconds."""
        self.request = request
        self.timeout = timeout
        self.head: ReplyHead | None = None
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Future[Response] | None = None  # a stream's transfer
        self.call: Coroutine[Any, Any, Response] | None = None  # a plain request, not begun

    def on_chunk(self, data: bytes) -> int:
        """Curl's write callback: keep the bytes, wake the consumer (of a stream)."""
        self._chunks.append(data)
        if self.request.streamed:  # a body read whole is read at its end
            self._wake()
        return len(data)

    def on_done(self, task: asyncio.Future[Response]) -> None:
        """The transfer ended (or failed): wake the consumer."""
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive, within the time limits; sets :attr:`head` at the end.

        A streamed request may go quiet for ``timeout`` seconds at a time (before the first
        bytes and between chunks); any other request must end within ``timeout``.
        """
        if self.call is not None:
            async for chunk in self._whole():
                yield chunk
            return
        task = self.task
        assert task is not None  # noqa: S101 (set by the adapter before iteration)
        loop = asyncio.get_running_loop()
        limit = self.timeout
        deadline = None if limit is None or self.request.streamed else loop.time() + limit
        received = False
        chunks = self._chunks
        while True:
            if chunks:
                # What arrived since the last wake-up goes up as one piece (up to a size): one
                # pass through the reader, the answer engine and the generators above, not one
                # per event; a fast, large stream is not copied into one big piece.
                received = True
                yield chunks.popleft() if len(chunks) == 1 else _take(chunks)
                continue
            if task.done():
                break
            self._waiter = loop.create_future()
            wait = limit if deadline is None else max(0.0, deadline - loop.time())
            try:
                async with asyncio.timeout(wait):
                    await self._waiter
            except TimeoutError:
                awaited = "the next chunk" if received and deadline is None else "the reply"
                raise RequestTimeoutError(
                    f"{self.request.method} {self.request.url} timed out waiting for "
                    f"{awaited} (timeout={limit} s)."
                ) from None
            finally:
                self._waiter = None
        self.head = reply_head(task.result())  # raises the transfer's curl error, if any

    async def _whole(self) -> AsyncIterator[bytes]:
        # A plain request runs in this very task: cancelling it reaches curl_cffi's own
        # `finally`, which stops the transfer and returns the handle.
        call, self.call = self.call, None
        assert call is not None  # noqa: S101 (checked by the caller)
        try:
            async with asyncio.timeout(self.timeout):
                response = await call
        except TimeoutError:
            raise RequestTimeoutError(
                f"{self.request.method} {self.request.url} timed out waiting for the reply "
                f"(timeout={self.timeout} s)."
            ) from None
        while self._chunks:
            yield self._chunks.popleft()
        self.head = reply_head(response)


_PIECE = 64 * 1024
"""Chunks are joined into pieces of about this many bytes at most."""


def _take(chunks: deque[bytes]) -> bytes:
    """The first chunks, joined, up to about :data:`_PIECE` bytes (at least one chunk)."""
    taken = [chunks.popleft()]
    size = len(taken[0])
    while chunks and size + len(chunks[0]) <= _PIECE:
        size += len(chunks[0])
        taken.append(chunks.popleft())
    return b"".join(taken)


class Adapter(Protocol):
    """Sends planned requests; the policy layer works through this interface only."""

    def open(self, request: HttpRequest, limit: float | None) -> Any:
        """An async context manager yielding the :class:`Transfer` of ``request``.

        ``limit`` is the time limit: in total, or per silence for a streamed request.
        """
        ...  # pragma: no cover


class CurlAdapter:
    """Sends requests through one curl_cffi ``AsyncSession`` on the running event loop."""

    def __init__(self, session: AsyncSession[Response], proxy: str | None = None) -> None:
        """Use ``session`` (bound to the running loop).

        Args:
            session: The session requests go through; its pool bounds concurrency.
            proxy: The proxy URL the session uses, only to keep it out of messages.
        """
        self.session = session
        self._proxy = proxy

    @asynccontextmanager
    async def open(self, request: HttpRequest, limit: float | None) -> AsyncIterator[Transfer]:
        """Start ``request``; yield its :class:`Transfer`; stop it on every exit.

        Raises:
            RequestTimeoutError: A time limit ran out.
            TransportError: Connection, TLS, proxy or DNS failure.
            InvalidInputError: An unknown browser target.
        """
        transfer = Transfer(request, limit)
        arguments = request_arguments(request)
        with map_errors(request, limit, self._proxy):
            try:
                call = self.session.request(
                    **arguments,
                    content_callback=transfer.on_chunk,
                    # A stream's limits are the consumer's (first bytes, silences): curl's
                    # would be a total or a coarse low-speed rule.
                    timeout=None if request.streamed else limit,
                )
                if request.streamed:  # read while it arrives: a task of its own
                    transfer.task = asyncio.ensure_future(call)
                    transfer.task.add_done_callback(transfer.on_done)
                else:  # read at its end: awaited by the consumer itself
                    transfer.call = call
                yield transfer
            finally:
                if transfer.call is not None:
                    transfer.call.close()  # never begun: nothing to stop
                task = transfer.task
                if task is not None and not task.done():
                    task.cancel()
                    # Not `await task`: our own cancellation must not be swallowed, and
                    # the handle is back in the pool once the task has run its finally.
                    await asyncio.wait({task})
                if task is not None and task.done() and not task.cancelled():
                    task.exception()  # retrieved: an abandoned transfer's error is moot


_WRITE_ERROR = 0xFFFFFFFF  # CURL_WRITEFUNC_ERROR: a write callback's way to abort a transfer


class ThreadedSessionAdapter:
    """Sends requests through a user's sync curl_cffi ``Session``.

    curl_cffi's sync API blocks, so each request runs on a thread of its own, and its
    body crosses to the event loop as it arrives. Giving a transfer up aborts it when its
    next bytes come; one that hangs holds its thread until the session's own ``timeout``
    ends it (an ``AsyncSession`` has no such limit: prefer one).
    """

    def __init__(self, session: Session[Response]) -> None:
        """Use the user's ``session`` (never closed here)."""
        self.session = session

    @asynccontextmanager
    async def open(self, request: HttpRequest, limit: float | None) -> AsyncIterator[Transfer]:
        """Start ``request`` on its own thread; yield its :class:`Transfer`.

        Raises:
            RequestTimeoutError: A time limit ran out.
            TransportError: Connection, TLS, proxy or DNS failure.
        """
        loop = asyncio.get_running_loop()
        transfer = Transfer(request, limit)
        done: asyncio.Future[Response] = loop.create_future()
        given_up = threading.Event()
        arguments = request_arguments(request)
        if not request.streamed:
            arguments["timeout"] = limit  # a stream keeps the session's own limit

        def on_chunk(data: bytes) -> int:
            if given_up.is_set():
                return _WRITE_ERROR
            loop.call_soon_threadsafe(transfer.on_chunk, data)
            return len(data)

        def settle(response: Response | None, error: BaseException | None) -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(response)  # type: ignore[arg-type]

        def run() -> None:
            try:
                response = self.session.request(**arguments, content_callback=on_chunk)
            except BaseException as exc:  # handed to the loop
                outcome: tuple[Response | None, BaseException | None] = (None, exc)
            else:
                outcome = (response, None)
            with suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(settle, *outcome)

        transfer.task = done
        done.add_done_callback(transfer.on_done)
        with map_errors(request, limit, None):
            threading.Thread(target=run, name="chatgptes-session", daemon=True).start()
            try:
                yield transfer
            finally:
                given_up.set()
                if not done.done():
                    done.cancel()
                elif not done.cancelled():
                    done.exception()  # retrieved: an abandoned transfer's error is moot
