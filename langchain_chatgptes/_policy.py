"""The policy layer: runs page reads and chat calls of any protocol through an adapter.

It also paces calls that start together (:class:`StartGate`).

Shared by every protocol, by the chat model (sync calls on the I/O thread, async calls on
the caller's loop) and by the doctor:

* the page is read once and cached (:class:`~langchain_chatgptes._site_cache.SiteCache`);
* a rejected nonce is refreshed once, transparently (a protocol's refresh call, or the page
  read again);
* transport errors, HTTP 429 and 5xx are retried up to ``max_retries`` times with
  exponential backoff and jitter, or after ``Retry-After`` when that fits in ``timeout``
  (counted from the start of the call; a longer wait is not taken: the error is raised at
  once with ``retry_after`` set);
* nothing is retried once part of the answer reached the caller, nor after a time limit
  ran out (so ``timeout`` bounds the call and the site does not answer twice); a transfer
  that breaks after part of the answer is an ``IncompleteAnswerError``, like every other
  way an answer can be cut;
* every request passes the trust rule (``_trust``) before it is sent: only the page GET
  follows redirects, every other request goes to the page's origin or an allowed host.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from langchain_chatgptes._conversation import ChatInput
from langchain_chatgptes._http import Adapter
from langchain_chatgptes._limits import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_PAGE_BYTES,
    RETRY_AFTER_CAP,
)
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes._trust import (
    TrustRule,
    page_redirect,
    redirect_location,
    refuse_redirect,
    trust_rule,
)
from langchain_chatgptes.errors import (
    ChatGptEsError,
    HTTPStatusError,
    IncompleteAnswerError,
    NonceNotFoundError,
    NonceRejectedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseTooLargeError,
    SiteError,
    TransportError,
)
from langchain_chatgptes.protocols import Page, choose_bot, protocol_named, read_page
from langchain_chatgptes.protocols._base import (
    BodyReader,
    Bot,
    BotState,
    Call,
    Event,
    HttpRequest,
    Metadata,
    ReplyHead,
    TextDelta,
)
from langchain_chatgptes.protocols._common import page_text

PAGE_HEADERS = (("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"),)


class StartGate:
    """Lets one call start per event-loop iteration; the first of an iteration at once.

    A call's set-up (its prompt, its request, curl_cffi's synchronous handle set-up) takes
    a fraction of a millisecond; many calls started together (``abatch``, ``gather``)
    would do all of it in one loop iteration and stall the loop. A call that finds no other
    start in this iteration goes ahead at no cost; later ones queue and are let through one
    per iteration. A queued call that is cancelled gives its turn to the next one.
    """

    def __init__(self) -> None:
        """A gate for the running event loop."""
        self._busy = False
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def turn(self) -> None:
        """Return when this request may start (at once, when nothing started just now)."""
        loop = asyncio.get_running_loop()
        if self._busy:
            turn = loop.create_future()
            self._waiting.append(turn)
            await turn
            return
        self._busy = True
        loop.call_soon(self._next)

    def _next(self) -> None:
        # One iteration later: wake the next request in line, or open the gate.
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # (a cancelled request's turn is done)
                turn.set_result(None)
                asyncio.get_running_loop().call_soon(self._next)
                return
        self._busy = False


@dataclass(frozen=True)
class Settings:
    """What the policy needs to know about a model.

    Attributes:
        page_url: The chat page (``base_url`` with a trailing slash).
        timeout: Seconds: a total limit for plain requests, a limit per silence for
            streamed ones; ``None``: no limit.
        max_retries: Retries after transport errors, HTTP 429 and 5xx, per attempt.
        plugin: Which protocol to speak (``"auto"``: what the page shows, see
            ``protocols.choose_bot``).
        bot_id: Which bot of the page, or ``None`` for the rule's choice.
        allowed_hosts: Hosts besides the page's own that requests may go to (checked
            ``_trust.host_entry`` values).
        site_url: The site as the model lists it (``response_metadata["site_url"]``).
    """

    page_url: str
    timeout: float | None = 60.0
    max_retries: int = 2
    plugin: str = "auto"
    bot_id: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    site_url: str = ""


def _retryable(exc: ChatGptEsError) -> bool:
    if isinstance(exc, RequestTimeoutError):
        return False
    if isinstance(exc, TransportError):
        return True
    if isinstance(exc, RateLimitError):
        return exc.status_code == 429
    return isinstance(exc, HTTPStatusError) and (exc.status_code or 0) >= 500


@dataclass
class _Progress:
    """What one chat call has done so far, shared by the layers of :meth:`Pipeline.chat`.

    Attributes:
        delivered: Part of the answer reached the caller: nothing is retried any more.
        bot: The bot of the latest attempt (``None`` before a page was read).
        state: That bot's state as the attempt used it.
        refreshed: The one nonce refresh of the call was made.
    """

    delivered: bool = False
    bot: Bot | None = None
    state: BotState | None = None
    refreshed: bool = False


@dataclass
class _Retries:
    """Counts retries and says how long to wait before the next attempt."""

    settings: Settings
    deadline: float | None
    done: int = 0

    def wait_after(self, exc: ChatGptEsError) -> float:
        """Seconds to wait before retrying after ``exc``; re-raises it when there is none."""
        if not _retryable(exc) or self.done >= self.settings.max_retries:
            raise exc
        self.done += 1
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            if self.deadline is None:
                return min(exc.retry_after, RETRY_AFTER_CAP)
            if asyncio.get_running_loop().time() + exc.retry_after > self.deadline:
                raise exc  # the wait would outlast `timeout`: let the caller decide
            return exc.retry_after
        backoff = min(BACKOFF_BASE * 2 ** (self.done - 1), BACKOFF_CAP)
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not security)


class Pipeline:
    """Page reads and chat calls for one site, through one adapter, under the policy."""

    def __init__(self, settings: Settings, cache: SiteCache, adapter: Adapter) -> None:
        """Work on ``settings.page_url`` with this cache and adapter."""
        self.settings = settings
        self.cache = cache
        self.adapter = adapter
        self.nonce_refreshes = 0  # how often a rejected nonce was replaced (for the doctor)
        # Told of every chat request as it ends (request, seconds, error): the doctor's view.
        self.observer: Callable[[HttpRequest, float, BaseException | None], None] | None = None

    async def exchange(
        self, request: HttpRequest, *, limit: int = MAX_PAGE_BYTES
    ) -> tuple[ReplyHead, bytes]:
        """Make one request and return its head and whole body (at most ``limit`` bytes)."""
        body = bytearray()
        async with self.adapter.open(request, self.settings.timeout) as transfer:
            async for data in transfer:
                body += data
                if len(body) > limit:
                    raise ResponseTooLargeError(
                        f"The reply to {request.method} {request.url} is larger than "
                        f"{limit} bytes.",
                        limit=limit,
                    )
        assert transfer.head is not None  # noqa: S101 (set when the body ended)
        return transfer.head, bytes(body)

    async def get_page(self) -> tuple[ReplyHead, bytes]:
        """GET the chat page once (no cache, no retry), following its redirects.

        Returns:
            The head of the last reply (its ``url`` is where the page ended up) and its body.

        Raises:
            RefusedRedirectError: A redirect to a URL that is not http(s), or too many.
            ResponseTooLargeError: A page above the size cap.
            TransportError: The page could not be fetched.
        """
        url = self.settings.page_url
        for hops in itertools.count():
            request = HttpRequest("GET", url, headers=PAGE_HEADERS, step="page")
            head, body = await self.exchange(request)
            location = redirect_location(url, head.status, head.headers)
            if location is None:
                return replace(head, url=head.url or url), body
            url = page_redirect(url, location, hops)
        raise AssertionError("unreachable")  # pragma: no cover

    async def fetch_page(self) -> tuple[ReplyHead, str]:
        """:meth:`get_page`, and its text after the status checks every protocol shares.

        Raises:
            BlockedError: An anti-bot challenge answered.
            HTTPStatusError: A non-2xx status.
            ResponseTooLargeError: A page above the size cap.
            RefusedRedirectError: A redirect to a URL that is not http(s), or too many.
            TransportError: The page could not be fetched.
        """
        head, body = await self.get_page()
        return head, page_text(head, body)

    async def _read_page(self) -> Page:
        head, html = await self.fetch_page()
        return read_page(html, head.url or self.settings.page_url)

    async def page(self) -> Page:
        """The chat page as read: from the cache, or one fetch shared by all callers."""
        return await self.cache.page(self.settings.page_url, self._read_page)

    def trust(self, bot: Bot) -> TrustRule:
        """Where requests to ``bot`` may go: its page's origin and the allowed hosts."""
        return trust_rule(bot.page_url, self.settings.allowed_hosts)

    async def run(self, call: Call, bot: Bot) -> AsyncGenerator[list[Event], None]:
        """Make a call's requests to ``bot`` in turn, under the trust rule (no retries).

        The doctor's way to run one protocol call (a nonce refresh, a session) on its own.
        """
        async with aclosing(self._run(call, self.trust(bot))) as events_of:
            async for events in events_of:
                yield events

    async def chat(self, chat: ChatInput) -> AsyncGenerator[list[Event], None]:
        """Run one chat call: its events as they arrive, under the policy above.

        Events come in batches, one per piece of the reply (never empty), so that a
        consumer sees what arrived together (e.g. an answer and its end). Layered as
        httpx layers ``send``: retries (here), one nonce refresh (:meth:`_with_refresh`),
        one attempt (:meth:`_attempt`), each request under the trust rule (:meth:`_run`).
        """
        loop = asyncio.get_running_loop()
        timeout = self.settings.timeout
        retries = _Retries(self.settings, None if timeout is None else loop.time() + timeout)
        progress = _Progress()
        while True:
            try:
                async with aclosing(self._with_refresh(chat, progress)) as batches:
                    async for batch in batches:
                        yield batch
                return
            except ChatGptEsError as exc:
                if progress.delivered:
                    raise  # part of the answer reached the caller: never sent twice
                await asyncio.sleep(retries.wait_after(exc))

    async def _with_refresh(
        self, chat: ChatInput, progress: _Progress
    ) -> AsyncGenerator[list[Event], None]:
        """Attempts, with one transparent nonce refresh per call when the site rejects it."""
        while True:
            try:
                async with aclosing(self._attempt(chat, progress)) as batches:
                    async for batch in batches:
                        yield batch
                return
            except NonceRejectedError as exc:
                bot, state = self._refreshable(exc, progress)
                progress.refreshed = True
                await self._refresh(bot, state)

    def _refreshable(self, exc: NonceRejectedError, progress: _Progress) -> tuple[Bot, BotState]:
        """The bot and state to refresh after ``exc``, or the error to raise instead."""
        if progress.delivered or progress.bot is None or progress.state is None:
            raise exc
        if progress.refreshed:
            raise NonceRejectedError(
                f"{exc} The site rejected a freshly fetched nonce too; the page and the chat "
                "endpoint may disagree (a caching plugin serving a stale page?).",
                status_code=exc.status_code,
            ) from exc
        return progress.bot, progress.state

    async def _attempt(
        self, chat: ChatInput, progress: _Progress
    ) -> AsyncGenerator[list[Event], None]:
        """One attempt: the bot and its state, one protocol call, its state written back."""
        bot, state = await self._bot(chat, progress)
        call = protocol_named(bot.protocol).start(bot, state, chat)
        site = {"site_url": self.settings.site_url or self.settings.page_url}
        yield [
            Metadata({**site, "site_plugin": bot.protocol, "site_bot_id": bot.bot_id}),
            *call.notices,
        ]
        try:
            async with aclosing(self._run(call, self.trust(bot))) as batches:
                async for batch in batches:
                    if not progress.delivered:
                        progress.delivered = any(isinstance(e, TextDelta) for e in batch)
                    yield batch
        except SiteError as exc:
            exc.at(urlsplit(bot.page_url).netloc)  # messages name the site, not chatgpt.es
            raise
        finally:
            if (new_state := call.new_state()) is not None:
                self.cache.set_state(self.settings.page_url, bot, new_state)

    async def _bot(self, chat: ChatInput, progress: _Progress) -> tuple[Bot, BotState]:
        """The bot this call talks to and its state (a session set up first, if it needs one)."""
        page = self.cache.get(self.settings.page_url) or await self.page()
        bot = progress.bot = choose_bot(page, self.settings.plugin, self.settings.bot_id)
        state = progress.state = self.cache.state(self.settings.page_url, bot)
        protocol = protocol_named(bot.protocol)
        if protocol.prepare(bot, state) is not None:
            protocol.check_input(bot, chat)  # bad input sends nothing, a session neither
            state = progress.state = await self._prepare(bot)
        return bot, state

    async def _run(self, call: Call, trust: TrustRule) -> AsyncGenerator[list[Event], None]:
        """Make a call's requests in turn, yielding the events of their replies in batches.

        Each request passes the trust rule first: a refused one is never sent. What a
        reply taught the call (a cache key, a fresh nonce) goes to the call, which alone
        decides what comes next.
        """
        while (request := call.next_request()) is not None:
            url = trust.admit(request.url, step=request.step)
            if url != request.url:
                request = replace(request, url=url)
            reader = call.reader()
            started = time.perf_counter()
            try:
                try:
                    async with aclosing(self._send(request, reader)) as events_of:
                        async for events in events_of:
                            yield events
                finally:
                    # What the reply taught counts however it ended: an error reply's new
                    # nonce, or an answer whose reader stopped at its end.
                    call.learn(reader.learned())
            except Exception as exc:
                if self.observer is not None:
                    self.observer(request, time.perf_counter() - started, exc)
                raise
            if self.observer is not None:
                self.observer(request, time.perf_counter() - started, None)

    async def _send(
        self, request: HttpRequest, reader: BodyReader
    ) -> AsyncGenerator[list[Event], None]:
        """One request: its reply's events as they come; a redirect is refused, unread.

        A transfer that breaks after part of the answer came is an incomplete answer, as
        is a reply that ends before its end marker.
        """
        answered = False
        try:
            async with self.adapter.open(request, self.settings.timeout) as transfer:
                async for data in transfer:
                    if events := reader.feed(data):
                        answered = answered or any(isinstance(e, TextDelta) for e in events)
                        yield events
        except TransportError as exc:
            if not answered or isinstance(exc, RequestTimeoutError):
                raise
            raise IncompleteAnswerError(
                f"The connection broke after part of the answer: {exc}"
            ) from exc
        head = transfer.head
        assert head is not None  # noqa: S101 (set when the body ended)
        location = redirect_location(request.url, head.status, head.headers)
        if location is not None:
            raise refuse_redirect(request.url, location, request.step)
        if events := reader.finish(head):
            yield events

    async def _prepare(self, bot: Bot) -> BotState:
        """Run the protocol's set-up call for ``bot`` (a session), once for all callers."""
        key = self.settings.page_url
        protocol = protocol_named(bot.protocol)
        ready: list[BotState] = []

        async def work() -> None:
            state = self.cache.state(key, bot)
            setup = protocol.prepare(bot, state)
            if setup is not None:
                async for _ in self.run(setup, bot):
                    pass
                new_state = setup.new_state()
                if new_state is None:
                    raise NonceNotFoundError(
                        f"The page at {bot.page_url} gives no nonce for the {bot.protocol} bot "
                        f"{bot.bot_id!r}, and the site has no session endpoint to get one.",
                        page_url=bot.page_url,
                        missing=("nonce",),
                    )
                self.cache.set_state(key, bot, new_state)
                state = new_state
            ready.append(state)

        # If the caller running the set-up is cancelled, a waiting one runs it again.
        while not await self.cache.once(("prepare", key, bot.protocol, bot.bot_id), work):
            pass
        # A caller that waited reads what the first one stored.
        return ready[0] if ready else self.cache.state(key, bot)

    async def _refresh(self, bot: Bot, state: BotState) -> None:
        """Get a fresh nonce for ``bot``: the protocol's refresh call, or the page again.

        Callers refused the same nonce at the same time share one refresh.
        """
        key = self.settings.page_url
        self.nonce_refreshes += 1
        refresh = protocol_named(bot.protocol).refresh(bot, state)
        if refresh is None:
            self.cache.invalidate(key, bot, state.nonce)
            return

        async def work() -> None:
            if self.cache.state(key, bot).nonce != state.nonce:
                return  # another caller has replaced it already
            async for _ in self.run(refresh, bot):
                pass
            new_state = refresh.new_state()
            if new_state is None:  # no fresh nonce that way: read the page again
                self.cache.invalidate(key, bot, state.nonce)
            else:
                self.cache.set_state(key, bot, new_state)

        # If the caller running the refresh is cancelled, a waiting one runs it again rather
        # than resend the nonce that was refused.
        flight = ("refresh", key, bot.protocol, bot.bot_id, state.nonce)
        while not await self.cache.once(flight, work):
            pass
