"""All network I/O: curl_cffi sessions, the page cache, retries and time limits.

One :class:`Transport` per model instance owns a sync ``Session`` (for ``invoke``/``stream``)
and one ``AsyncSession`` per event loop (an ``AsyncSession`` is bound to the first loop that
uses it). The chat page's facts are cached process-wide per base URL in :data:`SITE_CACHE`,
so model instances share one page fetch. What the bytes mean is decided by ``_protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from curl_cffi import CurlError
from curl_cffi.requests import AsyncSession, Response, Session
from curl_cffi.requests import exceptions as curl_exceptions

from langchain_chatgptes._protocol import (
    Event,
    ReplyReader,
    SiteInfo,
    ajax_url,
    build_form,
    decode_reply,
    parse_page,
)
from langchain_chatgptes.errors import (
    ChatGptEsError,
    HTTPStatusError,
    NonceRejectedError,
    RateLimitError,
    RequestTimeoutError,
    TransportError,
)

T = TypeVar("T")

SITE_CACHE_TTL = 2 * 3600.0
"""Seconds a page's nonce is reused: well inside WordPress' 12-hour minimum nonce life."""

_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 8.0
_RETRY_AFTER_CAP = 30.0


def mask_proxy(url: str) -> str:
    """A proxy URL with its credentials replaced by ``***`` (for repr, logs and errors)."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"***@{host}{port}").geturl()


@dataclass(frozen=True)
class TransportConfig:
    """What a :class:`Transport` needs from the model's fields.

    Attributes:
        base_url: The site, e.g. ``https://chatgpt.es``.
        proxy: Proxy URL for the page GET and the POST alike, or ``None``.
        impersonate: curl_cffi browser target.
        timeout: Seconds: total limit of a non-streamed request; for a stream, the limit
            for the reply headers and for each silence between chunks. ``None``: no limit.
        max_retries: Retries after transport errors, HTTP 429 and 5xx.
        verify: Verify TLS certificates.
    """

    base_url: str
    proxy: str | None = None
    impersonate: str = "chrome"
    timeout: float | None = 60.0
    max_retries: int = 2
    verify: bool = True


class SiteCache:
    """Page facts per base URL, shared by every model instance in the process.

    It also hands out one lock per site (a threading lock, and an asyncio lock per event
    loop) so that callers who find no fresh entry fetch the page once, not once each.
    """

    def __init__(self, ttl: float = SITE_CACHE_TTL) -> None:
        """Create an empty cache whose entries live ``ttl`` seconds."""
        self.ttl = ttl
        self._entries: dict[str, tuple[SiteInfo, float]] = {}
        self._lock = threading.Lock()
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._afetch_locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def fetch_lock(self, base_url: str) -> threading.Lock:
        """The lock to hold while fetching a site's page from a thread."""
        with self._lock:
            return self._fetch_locks.setdefault(base_url, threading.Lock())

    def afetch_lock(self, base_url: str) -> asyncio.Lock:
        """The lock to hold while fetching a site's page on the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._afetch_locks.setdefault(loop, {}).setdefault(base_url, asyncio.Lock())

    def get(self, base_url: str) -> SiteInfo | None:
        """The cached facts of a site, or ``None`` when absent or too old."""
        with self._lock:
            entry = self._entries.get(base_url)
        if entry is None or time.monotonic() - entry[1] > self.ttl:
            return None
        return entry[0]

    def put(self, base_url: str, site: SiteInfo) -> None:
        """Remember freshly fetched facts."""
        with self._lock:
            self._entries[base_url] = (site, time.monotonic())

    def invalidate(self, base_url: str, nonce: str | None = None) -> None:
        """Forget a site's facts (only if they still hold ``nonce``, when given)."""
        with self._lock:
            entry = self._entries.get(base_url)
            if entry is not None and (nonce is None or entry[0].nonce == nonce):
                del self._entries[base_url]

    def clear(self) -> None:
        """Forget every site."""
        with self._lock:
            self._entries.clear()


SITE_CACHE = SiteCache()


class _Attempts:
    """Decides, after a failed attempt, whether to try again and after how long.

    A rejected nonce is refetched and retried once, at once; transport errors, HTTP 429 and
    5xx are retried up to ``max_retries`` times with exponential backoff and jitter.
    Nothing is retried once part of the answer has reached the caller.
    """

    def __init__(self, config: TransportConfig) -> None:
        self._config = config
        self._nonce_refreshed = False
        self._retries = 0

    def delay_after(self, exc: ChatGptEsError, site: SiteInfo | None, delivered: bool) -> float:
        """Seconds to wait before the next attempt; re-raises ``exc`` when there is none."""
        if delivered:
            raise exc
        if isinstance(exc, NonceRejectedError) and site is not None:
            if self._nonce_refreshed:
                raise NonceRejectedError(
                    f"{exc} The site rejected a freshly fetched nonce too; the page and the "
                    "chat endpoint may disagree (a caching plugin serving a stale page?).",
                    status_code=exc.status_code,
                ) from exc
            self._nonce_refreshed = True
            SITE_CACHE.invalidate(self._config.base_url, site.nonce)
            return 0.0
        if not self._retryable(exc) or self._retries >= self._config.max_retries:
            raise exc
        self._retries += 1
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            return min(exc.retry_after, _RETRY_AFTER_CAP)
        backoff = min(_BACKOFF_BASE * 2 ** (self._retries - 1), _BACKOFF_CAP)
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not security)

    @staticmethod
    def _retryable(exc: ChatGptEsError) -> bool:
        if isinstance(exc, TransportError):
            return True
        if isinstance(exc, RateLimitError):
            return exc.status_code == 429
        return isinstance(exc, HTTPStatusError) and (exc.status_code or 0) >= 500


class Transport:
    """Sends prompts to one site and returns events; see the module docstring."""

    def __init__(self, config: TransportConfig) -> None:
        """Create a transport; no session is opened and nothing is fetched until used."""
        self.config = config
        self._page_url = config.base_url.rstrip("/") + "/"
        self._ajax_url = ajax_url(config.base_url)
        self._post_headers = {
            "Accept": "*/*",
            "Origin": config.base_url.rstrip("/"),
            "Referer": self._page_url,
            "X-Requested-With": "XMLHttpRequest",
        }
        self._session: Session[Response] | None = None
        self._async_sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncSession[Response]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # --- sessions -------------------------------------------------------------------------

    def _session_kwargs(self) -> dict[str, Any]:
        return {
            "impersonate": self.config.impersonate,
            "proxy": self.config.proxy,
            "verify": self.config.verify,
            "timeout": self.config.timeout,
        }

    def _sync_session(self) -> Session[Response]:
        with self._lock:
            if self._session is None:
                self._session = Session(**self._session_kwargs())
            return self._session

    def _async_session(self) -> AsyncSession[Response]:
        loop = asyncio.get_running_loop()
        session = self._async_sessions.get(loop)
        if session is None:
            session = AsyncSession(**self._session_kwargs())
            self._async_sessions[loop] = session
        return session

    def close(self) -> None:
        """Close the sync session (the async ones close with :meth:`aclose`)."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    async def aclose(self) -> None:
        """Close the async session of the running loop, and the sync session."""
        session = self._async_sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()
        self.close()

    # --- errors ---------------------------------------------------------------------------

    def _transport_error(self, exc: BaseException, what: str) -> ChatGptEsError:
        text = str(exc)
        if self.config.proxy:
            text = text.replace(self.config.proxy, mask_proxy(self.config.proxy))
        if isinstance(exc, (curl_exceptions.Timeout, TimeoutError)):
            return RequestTimeoutError(
                f"{what} timed out (timeout={self.config.timeout} s): {text}".rstrip(": ")
            )
        if isinstance(exc, curl_exceptions.ProxyError):
            proxy = mask_proxy(self.config.proxy or "")
            return TransportError(f"{what} failed at the proxy {proxy}: {text}")
        return TransportError(f"{what} failed: {text}")

    # --- the page -------------------------------------------------------------------------

    def _remember(self, status: int, html: str) -> SiteInfo:
        site = parse_page(html, page_url=self.config.base_url, status=status)
        SITE_CACHE.put(self.config.base_url, site)
        return site

    def site(self) -> SiteInfo:
        """The chat page's facts, from the cache or one GET shared by concurrent callers."""
        base_url = self.config.base_url
        site = SITE_CACHE.get(base_url)
        if site is not None:
            return site
        with SITE_CACHE.fetch_lock(base_url):
            site = SITE_CACHE.get(base_url)  # fetched while this caller waited?
            if site is not None:
                return site
            try:
                resp = self._sync_session().get(self._page_url)
            except CurlError as exc:
                raise self._transport_error(exc, f"GET {self._page_url}") from exc
            return self._remember(resp.status_code, resp.text)

    async def asite(self) -> SiteInfo:
        """Async :meth:`site`."""
        base_url = self.config.base_url
        site = SITE_CACHE.get(base_url)
        if site is not None:
            return site
        async with SITE_CACHE.afetch_lock(base_url):
            site = SITE_CACHE.get(base_url)
            if site is not None:
                return site
            try:
                resp = await self._async_session().get(self._page_url)
            except CurlError as exc:
                raise self._transport_error(exc, f"GET {self._page_url}") from exc
            return self._remember(resp.status_code, resp.text)

    # --- one call, with nonce refresh and retries -------------------------------------------

    def complete(self, message: str, client_id: str) -> str:
        """Send one prompt and return the whole answer text."""
        attempts = _Attempts(self.config)
        while True:
            site: SiteInfo | None = None
            try:
                site = self.site()
                return self._post(build_form(site, message, client_id))
            except ChatGptEsError as exc:
                time.sleep(attempts.delay_after(exc, site, delivered=False))

    async def acomplete(self, message: str, client_id: str) -> str:
        """Async :meth:`complete`."""
        attempts = _Attempts(self.config)
        while True:
            site: SiteInfo | None = None
            try:
                site = await self.asite()
                return await self._apost(build_form(site, message, client_id))
            except ChatGptEsError as exc:
                await asyncio.sleep(attempts.delay_after(exc, site, delivered=False))

    def stream(self, message: str, client_id: str) -> Generator[Event, None, None]:
        """Send one prompt and yield answer events as the bytes arrive."""
        attempts = _Attempts(self.config)
        while True:
            site: SiteInfo | None = None
            delivered = False
            try:
                site = self.site()
                for event in self._post_stream(build_form(site, message, client_id)):
                    delivered = True
                    yield event
                return
            except ChatGptEsError as exc:
                time.sleep(attempts.delay_after(exc, site, delivered))

    async def astream(self, message: str, client_id: str) -> AsyncGenerator[Event, None]:
        """Async :meth:`stream`."""
        attempts = _Attempts(self.config)
        while True:
            site: SiteInfo | None = None
            delivered = False
            try:
                site = await self.asite()
                async for event in self._apost_stream(build_form(site, message, client_id)):
                    delivered = True
                    yield event
                return
            except ChatGptEsError as exc:
                await asyncio.sleep(attempts.delay_after(exc, site, delivered))

    # --- one POST -----------------------------------------------------------------------------

    @staticmethod
    def _headers(resp: Response) -> dict[str, str]:
        return {name.lower(): value or "" for name, value in resp.headers.items()}

    def _post(self, form: Mapping[str, str]) -> str:
        try:
            resp = self._sync_session().post(
                self._ajax_url, data=dict(form), headers=self._post_headers
            )
        except CurlError as exc:
            raise self._transport_error(exc, f"POST {self._ajax_url}") from exc
        return decode_reply(resp.status_code, self._headers(resp), resp.content)

    async def _apost(self, form: Mapping[str, str]) -> str:
        try:
            resp = await self._async_session().post(
                self._ajax_url, data=dict(form), headers=self._post_headers
            )
        except CurlError as exc:
            raise self._transport_error(exc, f"POST {self._ajax_url}") from exc
        return decode_reply(resp.status_code, self._headers(resp), resp.content)

    def _post_stream(self, form: Mapping[str, str]) -> Generator[Event, None, None]:
        # The sync session blocks without a time limit of its own while it waits for headers
        # and chunks (curl's stream timeout is only a low-speed rule), so a worker thread
        # reads and this generator waits on a queue with the real limits.
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        abandoned = threading.Event()

        def read() -> None:
            try:
                with self._sync_session().stream(
                    "POST", self._ajax_url, data=dict(form), headers=self._post_headers
                ) as resp:
                    items.put(("head", (resp.status_code, self._headers(resp))))
                    for chunk in resp.iter_content():
                        if abandoned.is_set():
                            return
                        items.put(("data", chunk))
                items.put(("end", None))
            except BaseException as exc:  # handed to the caller's thread
                items.put(("error", exc))

        threading.Thread(target=read, name="chatgptes-stream", daemon=True).start()

        def take(what: str) -> tuple[str, Any]:
            try:
                kind, value = items.get(timeout=self.config.timeout)
            except queue.Empty:
                raise self._transport_error(TimeoutError(), what) from None
            if kind == "error":
                if isinstance(value, CurlError):
                    raise self._transport_error(value, f"POST {self._ajax_url}") from value
                raise value
            return kind, value

        try:
            _, (status, headers) = take("waiting for the reply headers")
            reader = ReplyReader(status, headers)
            while True:
                kind, chunk = take("waiting for the next chunk")
                if kind == "end":
                    break
                yield from reader.feed(chunk)
            yield from reader.finish()
        finally:
            abandoned.set()

    async def _apost_stream(self, form: Mapping[str, str]) -> AsyncGenerator[Event, None]:
        session = self._async_session()
        try:
            async with asyncio.timeout(self.config.timeout):
                resp = await session.request(
                    "POST",
                    self._ajax_url,
                    data=dict(form),
                    headers=self._post_headers,
                    stream=True,
                )
        except (CurlError, TimeoutError) as exc:
            raise self._transport_error(exc, "waiting for the reply headers") from exc
        try:
            reader = ReplyReader(resp.status_code, self._headers(resp))
            chunks = resp.aiter_content()
            while True:
                try:
                    async with asyncio.timeout(self.config.timeout):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except (CurlError, TimeoutError) as exc:
                    raise self._transport_error(exc, "waiting for the next chunk") from exc
                for event in reader.feed(chunk):
                    yield event
            for event in reader.finish():
                yield event
        finally:
            await self._abort(resp)

    @staticmethod
    async def _abort(resp: Response) -> None:
        # Cancelling the transfer task removes the handle from curl's multi handle, which
        # stops the transfer and frees the session's slot (aclose() would wait for the end).
        task = resp.astream_task
        if isinstance(task, asyncio.Future) and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, CurlError):
                await task
