"""All network I/O: curl_cffi sessions, the page cache, retries and time limits.

One :class:`Transport` per model instance owns a sync ``Session`` (for ``invoke``/``stream``)
and one ``AsyncSession`` per event loop (an ``AsyncSession`` is bound to the first loop that
uses it). The chat page's facts are cached process-wide per base URL in :data:`SITE_CACHE`,
so model instances share one page fetch. What the bytes mean is decided by ``_protocol``.

A site that streams (``data-openai_stream_nav="1"``) is read as a stream on every path, so
``timeout`` limits each silence, not the length of an answer; a site that answers JSON is
read with one plain request, whose ``timeout`` is a total limit.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import random
import threading
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Mapping
from contextlib import aclosing, closing
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from curl_cffi import CurlError
from curl_cffi.requests import AsyncSession, Response, Session
from curl_cffi.requests import exceptions as curl_exceptions

from langchain_chatgptes._protocol import (
    Event,
    ReplyReader,
    SiteInfo,
    StreamEnd,
    TextDelta,
    ajax_url,
    build_form,
    decode_reply,
    parse_page,
    post_headers,
)
from langchain_chatgptes.errors import (
    ChatGptEsError,
    HTTPStatusError,
    InvalidInputError,
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
    """``text`` (e.g. curl's error message) with the proxy's credentials taken out."""
    if not proxy:
        return text
    text = text.replace(proxy, mask_proxy(proxy))
    userinfo = proxy.partition("://")[2].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    for secret in (userinfo, password):
        text = text.replace(secret, "***") if secret else text
    return text


@dataclass(frozen=True)
class TransportConfig:
    """What a :class:`Transport` needs from the model's fields.

    Attributes:
        base_url: The site, e.g. ``https://chatgpt.es``.
        proxy: Proxy URL for the page GET and the POST alike, or ``None``.
        impersonate: curl_cffi browser target.
        timeout: Seconds. A plain request (page, JSON reply): total limit. A stream: limit
            for the reply headers and for each silence between chunks. ``None``: no limit.
        max_retries: Retries after transport errors, HTTP 429 and 5xx.
        verify: Verify TLS certificates.
        max_concurrency: Async transfers at once per event loop (curl handles in the pool).
    """

    base_url: str
    proxy: str | None = field(default=None, repr=False)  # may hold credentials
    impersonate: str = "chrome"
    timeout: float | None = 60.0
    max_retries: int = 2
    verify: bool = True
    max_concurrency: int = 16


class _PerLoop(Generic[T]):
    """One object per event loop, made on first use on that loop.

    Entries of closed loops are dropped on the next use: loop-bound objects (sessions,
    locks) refer to their loop, so a ``WeakKeyDictionary`` would never let them go.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._items: dict[asyncio.AbstractEventLoop, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        """The running loop's object."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for closed in [other for other in self._items if other.is_closed()]:
                del self._items[closed]
            item = self._items.get(loop)
            if item is None:
                item = self._items[loop] = self._factory()
            return item

    def pop(self) -> T | None:
        """Forget and return the running loop's object, if there is one."""
        with self._lock:
            return self._items.pop(asyncio.get_running_loop(), None)

    def __len__(self) -> int:
        return len(self._items)


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
        self._afetch_locks: _PerLoop[dict[str, asyncio.Lock]] = _PerLoop(dict)

    def fetch_lock(self, base_url: str) -> threading.Lock:
        """The lock to hold while fetching a site's page from a thread."""
        with self._lock:
            return self._fetch_locks.setdefault(base_url, threading.Lock())

    def afetch_lock(self, base_url: str) -> asyncio.Lock:
        """The lock to hold while fetching a site's page on the running event loop."""
        locks = self._afetch_locks.get()
        with self._lock:
            return locks.setdefault(base_url, asyncio.Lock())

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
    5xx are retried up to ``max_retries`` times with exponential backoff and jitter. Not
    retried: time limits (so ``timeout`` bounds the whole call, and the site does not
    generate the answer again), errors a retry cannot fix, and anything after part of the
    answer reached the caller.
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
        if isinstance(exc, RequestTimeoutError):
            return False
        if isinstance(exc, TransportError):
            return True
        if isinstance(exc, RateLimitError):
            return exc.status_code == 429
        return isinstance(exc, HTTPStatusError) and (exc.status_code or 0) >= 500


def _cancel(future: asyncio.Future[Any]) -> None:
    future.cancel()


class Transport:
    """Sends prompts to one site and returns events; see the module docstring."""

    def __init__(self, config: TransportConfig) -> None:
        """Create a transport; no session is opened and nothing is fetched until used."""
        self.config = config
        self._page_url = config.base_url.rstrip("/") + "/"
        self._ajax_url = ajax_url(config.base_url)
        self._post_headers = post_headers(config.base_url)
        self._session: Session[Response] | None = None
        self._async_sessions: _PerLoop[AsyncSession[Response]] = _PerLoop(
            lambda: AsyncSession(max_clients=config.max_concurrency, **self._session_kwargs())
        )
        # Every async transfer holds a slot, even one abandoned at its time limit until it is
        # aborted; a request that got a slot therefore gets a curl handle at once and is sent
        # at once, and the wait for a slot can be given up without side effects.
        self._slots: _PerLoop[asyncio.Semaphore] = _PerLoop(
            lambda: asyncio.Semaphore(config.max_concurrency)
        )
        self._start_gate: _PerLoop[asyncio.Lock] = _PerLoop(asyncio.Lock)
        self._lock = threading.Lock()
        self._cleanups: set[asyncio.Future[None]] = set()

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

    def close(self) -> None:
        """Close the sync session (async sessions close with :meth:`aclose`, on their loop)."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    async def aclose(self) -> None:
        """Close the async session of the running loop, and the sync session."""
        session = self._async_sessions.pop()
        if session is not None:
            await session.close()
        self.close()

    # --- errors ---------------------------------------------------------------------------

    def _transport_error(self, exc: BaseException, what: str) -> ChatGptEsError:
        text = scrub_proxy(str(exc), self.config.proxy)
        if isinstance(exc, curl_exceptions.ImpersonateError):
            return InvalidInputError(
                f"impersonate={self.config.impersonate!r} is not a browser target curl_cffi "
                f"knows; use e.g. 'chrome', 'safari' or 'firefox' ({text})"
            )
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
                async with asyncio.timeout(self.config.timeout), self._slots.get():
                    resp = await self._async_sessions.get().get(self._page_url)
            except (CurlError, TimeoutError) as exc:
                raise self._transport_error(exc, f"GET {self._page_url}") from exc
            return self._remember(resp.status_code, resp.text)

    # --- one call, with nonce refresh and retries -------------------------------------------

    def stream(self, message: str, client_id: str) -> Generator[Event, None, None]:
        """Send one prompt and yield answer events as the bytes arrive."""
        attempts = _Attempts(self.config)
        while True:
            site: SiteInfo | None = None
            delivered = False
            try:
                site = self.site()
                with closing(self._events(site, build_form(site, message, client_id))) as events:
                    for event in events:
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
                form = build_form(site, message, client_id)
                async with aclosing(self._aevents(site, form)) as events:
                    async for event in events:
                        delivered = True
                        yield event
                return
            except ChatGptEsError as exc:
                await asyncio.sleep(attempts.delay_after(exc, site, delivered))

    def _events(self, site: SiteInfo, form: Mapping[str, str]) -> Generator[Event, None, None]:
        if site.streams:
            yield from self._post_stream(form)
        else:
            yield from (TextDelta(self._post(form)), StreamEnd())

    async def _aevents(self, site: SiteInfo, form: Mapping[str, str]) -> AsyncGenerator[Event]:
        if site.streams:
            async with aclosing(self._apost_stream(form)) as events:
                async for event in events:
                    yield event
        else:
            yield TextDelta(await self._apost(form))
            yield StreamEnd()

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

    async def _started(
        self,
        request: Callable[[], Coroutine[Any, Any, Response]],
        abandon: Callable[[asyncio.Future[Response]], None],
    ) -> asyncio.Future[Response]:
        """Start a request alone in its event-loop iteration; return its future.

        curl_cffi does the costly part of a request (handle set-up, impersonation options,
        the first socket action) synchronously. Started one per iteration, many concurrent
        calls do not stall the loop all at once. ``abandon`` gets the future if the caller
        is cancelled before it could wait for it.
        """
        async with self._start_gate.get():
            future = asyncio.ensure_future(request())
            try:
                await asyncio.sleep(0)  # the request's synchronous start runs here
                await asyncio.sleep(0)  # and curl's first timer callback
            except BaseException:
                abandon(future)
                raise
        return future

    async def _apost(self, form: Mapping[str, str]) -> str:
        session = self._async_sessions.get()
        try:
            # The limit covers the wait for a slot; cancelling a plain request frees its handle.
            async with asyncio.timeout(self.config.timeout), self._slots.get():
                request = await self._started(
                    lambda: session.post(
                        self._ajax_url, data=dict(form), headers=self._post_headers
                    ),
                    abandon=_cancel,
                )
                resp = await request  # cancelling this also cancels the request
        except (CurlError, TimeoutError) as exc:
            raise self._transport_error(exc, f"POST {self._ajax_url}") from exc
        return decode_reply(resp.status_code, self._headers(resp), resp.content)

    def _post_stream(self, form: Mapping[str, str]) -> Generator[Event, None, None]:
        # The sync session waits for headers and chunks without a time limit of its own
        # (curl's stream timeout is only a low-speed rule), so a worker thread reads and
        # this generator waits on a queue with the real limits.
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
        loop, slots, limit = asyncio.get_running_loop(), self._slots.get(), self.config.timeout
        started = loop.time()
        try:
            async with asyncio.timeout(limit):
                await slots.acquire()
        except TimeoutError as exc:
            raise self._transport_error(exc, "waiting for a free connection") from exc
        session = self._async_sessions.get()
        abort_later = functools.partial(self._abort_when_answered, slots)
        request = await self._started(
            lambda: session.request(
                "POST", self._ajax_url, data=dict(form), headers=self._post_headers, stream=True
            ),
            abandon=lambda future: future.add_done_callback(abort_later),
        )
        remaining = None if limit is None else max(0.0, limit - (loop.time() - started))
        try:
            done, _ = await asyncio.wait({request}, timeout=remaining)
        except asyncio.CancelledError:
            request.add_done_callback(abort_later)
            raise
        if not done:
            # Cancelling the request would orphan curl_cffi's transfer task; instead the
            # transfer is aborted as soon as the reply starts (or curl's own limit ends it).
            request.add_done_callback(abort_later)
            raise self._transport_error(TimeoutError(), "waiting for the reply headers")
        try:
            resp = request.result()
        except CurlError as exc:
            slots.release()
            raise self._transport_error(exc, f"POST {self._ajax_url}") from exc
        try:
            reader = ReplyReader(resp.status_code, self._headers(resp))
            chunks = resp.aiter_content()
            while True:
                try:
                    async with asyncio.timeout(limit):
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
            try:
                await self._abort(resp)
            finally:
                slots.release()

    def _abort_when_answered(
        self, slots: asyncio.Semaphore, request: asyncio.Future[Response]
    ) -> None:
        if request.cancelled() or request.exception() is not None:
            slots.release()
            return
        task = asyncio.ensure_future(self._abort(request.result()))
        self._cleanups.add(task)  # keep a reference until it is done

        def done(task: asyncio.Future[None]) -> None:
            self._cleanups.discard(task)
            slots.release()

        task.add_done_callback(done)

    @staticmethod
    async def _abort(resp: Response) -> None:
        # Cancelling the transfer task removes the handle from curl's multi handle, which
        # stops the transfer and frees the session's slot (aclose() would wait for the end).
        task = resp.astream_task
        if isinstance(task, asyncio.Future) and not task.done():
            task.cancel()
            await asyncio.wait({task})  # unlike `await task`, keeps our own cancellation
