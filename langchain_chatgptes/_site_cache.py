"""Page facts and per-bot state, owned by an object: one shared per process by default.

A :class:`SiteCache` maps a page URL to the page as read (every bot on it) and to the state
each bot's calls keep between calls (nonce, session cookies), and keeps each site's health
(:attr:`SiteCache.health`, see ``_sites``). Concurrent callers that find
no fresh entry share one page fetch, whatever thread or event loop they run on. Models use
:meth:`SiteCache.shared` unless given their own (``ChatChatGptEs(site_cache=...)``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import ClassVar

from langchain_chatgptes._limits import SITE_CACHE_TTL
from langchain_chatgptes._sites import HealthBook
from langchain_chatgptes.protocols import Page
from langchain_chatgptes.protocols._base import Bot, BotState


class _Abandoned(Exception):
    """The caller fetching a page was cancelled; a waiting caller fetches it instead."""


@dataclass
class _Entry:
    page: Page
    fetched_at: float
    states: dict[tuple[str, str], BotState] = field(default_factory=dict)


class SiteCache:
    """Pages and bot state by page URL; entries live ``ttl`` seconds.

    Thread-safe and usable from any event loop. After ``os.fork()`` a child keeps the
    parent's entries (they are plain data) but none of its in-flight fetches or locks.
    """

    _shared: ClassVar[SiteCache | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, ttl: float = SITE_CACHE_TTL) -> None:
        """Create an empty cache whose entries live ``ttl`` seconds."""
        self.ttl = ttl
        self._entries: dict[str, _Entry] = {}
        self._flights: dict[Hashable, concurrent.futures.Future[None]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.health = HealthBook()
        """What is known of each site's health (for models with several sites)."""

    @classmethod
    def shared(cls) -> SiteCache:
        """The process-wide cache models use by default."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def _checked(self) -> threading.Lock:
        # A forked child inherits locks that another thread may have held, and fetches
        # that will never finish there: start both afresh.
        if self._pid != os.getpid():
            self._lock = threading.Lock()
            self._flights = {}
            self._pid = os.getpid()
        return self._lock

    def __repr__(self) -> str:
        return f"SiteCache(ttl={self.ttl!r}, pages={len(self._entries)})"

    # --- reading ----------------------------------------------------------------------------

    def get(self, key: str) -> Page | None:
        """The cached page, or ``None`` when absent or older than ``ttl``."""
        with self._checked():
            entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry.fetched_at > self.ttl:
            return None
        return entry.page

    def state(self, key: str, bot: Bot) -> BotState:
        """The bot's current state (its nonce from the page until something changed it)."""
        with self._checked():
            entry = self._entries.get(key)
            state = entry.states.get((bot.protocol, bot.bot_id)) if entry else None
        return state if state is not None else BotState(nonce=bot.nonce)

    # --- writing ----------------------------------------------------------------------------

    def put(self, key: str, page: Page) -> None:
        """Remember a freshly read page (the state of its bots starts afresh)."""
        with self._checked():
            self._entries[key] = _Entry(page, time.monotonic())

    def set_state(self, key: str, bot: Bot, state: BotState) -> None:
        """Remember a bot's new state (e.g. a nonce the site handed out)."""
        with self._checked():
            entry = self._entries.get(key)
            if entry is not None:
                entry.states[(bot.protocol, bot.bot_id)] = state

    def invalidate(self, key: str, bot: Bot | None = None, nonce: str | None = None) -> None:
        """Forget a page, but only if ``bot`` still has ``nonce`` (when both are given).

        Callers that saw the same rejected nonce then cause one new fetch, not one each.
        """
        with self._checked():
            entry = self._entries.get(key)
            if entry is None:
                return
            if bot is not None and nonce is not None:
                current = entry.states.get((bot.protocol, bot.bot_id))
                if (current.nonce if current else bot.nonce) != nonce:
                    return
            del self._entries[key]

    def clear(self) -> None:
        """Forget every page."""
        with self._checked():
            self._entries.clear()

    # --- one fetch for many callers ---------------------------------------------------------

    async def page(self, key: str, fetch: Callable[[], Awaitable[Page]]) -> Page:
        """The cached page, or the page ``fetch`` reads, fetched once for all callers.

        A caller that finds a fetch under way (on any thread or loop) waits for it and
        gets its page or its error. If the fetching caller is cancelled, a waiting caller
        fetches instead; a waiter's own cancellation does not disturb the fetch.
        """

        async def load() -> None:
            self.put(key, await fetch())

        while (page := self.get(key)) is None:
            await self.once(("page", key), load)
        return page

    async def once(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> bool:
        """Run ``work`` once for all callers that ask with the same ``key`` meanwhile.

        Single flight across threads and loops: the first caller runs ``work``; the others
        wait for it and get its error if it fails. ``work`` writes its result into the
        cache.

        Returns:
            True when ``work`` ran to its end (here or in the caller waited for); False
            when the caller running it was cancelled first: ask again.
        """
        with self._checked():
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = concurrent.futures.Future()
        if not leading:
            try:
                await _wait(flight)
            except _Abandoned:
                return False
            return True
        try:
            await work()
            flight.set_result(None)
            return True
        except Exception as exc:
            flight.set_exception(exc)
            raise
        except BaseException:
            flight.set_exception(_Abandoned())
            raise
        finally:
            with self._checked():
                if self._flights.get(key) is flight:
                    del self._flights[key]


async def _wait(flight: concurrent.futures.Future[None]) -> None:
    """Wait for another caller's fetch from this loop; re-raise its error."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def settle(done: concurrent.futures.Future[None]) -> None:
        def copy() -> None:
            if waiter.done():
                return  # this waiter was cancelled meanwhile
            error = done.exception()
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(None)

        with suppress(RuntimeError):  # a closed waiting loop: nobody waits any more
            loop.call_soon_threadsafe(copy)

    flight.add_done_callback(settle)
    await waiter
