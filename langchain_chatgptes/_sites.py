"""Several sites behind one model: which site serves a call, and what is known of each.

Free chat sites go away without notice, so a model may name several. What is known of
each site (its *health*) is kept per site URL in the :class:`HealthBook` of the model's
``SiteCache``, so every model of the process that uses a site shares it, across event loops
and threads:

* a site that fails a call for a reason another site may not share cools down for
  ``site_cooldown`` seconds, doubling while it keeps failing (at most
  :data:`MAX_COOLDOWN`), or for as long as its ``Retry-After`` asks;
* when its cooldown is over, one call probes it (half open) while the others keep away;
  a probe that answers makes it healthy again, one that fails cools it down longer;
* the time to the first byte of an answer is kept as a moving average (``site_order=
  "fastest"`` prefers the lowest).

The :class:`Router` runs a call on the first usable site and moves on to the next on such a
failure, within the same call and without waiting (moving on is the retry), never after
part of an answer went up to the caller. When every site is cooling down, it tries the one
whose cooldown ends first. With one site it keeps the figures and changes nothing else.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from langchain_chatgptes._events import End, Event, TextDelta
from langchain_chatgptes.errors import (
    AllSitesFailedError,
    ChatGptEsError,
    InvalidInputError,
    RateLimitError,
)

if TYPE_CHECKING:
    from langchain_chatgptes._conversation import ChatInput
    from langchain_chatgptes._policy import Pipeline

logger = logging.getLogger("langchain_chatgptes.sites")

SiteOrder = Literal["listed", "fastest"]

MAX_COOLDOWN = 900.0
"""Longest cooldown of a site that keeps failing, in seconds (15 minutes)."""

TTFB_WEIGHT = 0.3
"""Weight of the latest time to first byte in its moving average."""


@dataclass(frozen=True)
class SiteHealth:
    """What is known of one site (``ChatChatGptEs.site_health()``).

    Attributes:
        url: The site, as the model lists it.
        state: ``unknown`` (no call yet), ``healthy`` (its last call answered, or it never
            failed) or ``cooling`` (it failed: skipped until ``cooldown_until``, then probed).
        consecutive_failures: Failures since its last answer.
        cooldown_until: When its cooldown ends (UTC), while cooling.
        ttfb: Moving average of the seconds to the first byte of an answer, once it answered.
        calls: Calls it was given (by every model of the process).
        failures: Calls it failed.
        last_error: The class name of its last failure.
    """

    url: str
    state: Literal["healthy", "cooling", "unknown"]
    consecutive_failures: int = 0
    cooldown_until: datetime.datetime | None = None
    ttfb: float | None = None
    calls: int = 0
    failures: int = 0
    last_error: str | None = None


@dataclass
class _State:
    """A site's health as kept (monotonic times), under the book's lock."""

    calls: int = 0
    failures: int = 0
    consecutive: int = 0
    cooldown_end: float | None = None
    cooldown: float = 0.0
    ttfb: float | None = None
    last_error: str | None = None
    probing: bool = False

    def usable(self, now: float) -> bool:
        """Healthy, or its cooldown is over and nobody probes it."""
        return self.cooldown_end is None or (now >= self.cooldown_end and not self.probing)


class HealthBook:
    """Health by site URL: thread-safe, usable from any loop, never pickled or copied."""

    def __init__(self) -> None:
        """An empty book."""
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _locked(self) -> threading.Lock:
        if self._pid != os.getpid():  # a forked child: another thread may have held it
            self._lock, self._pid = threading.Lock(), os.getpid()
        return self._lock

    def _state(self, url: str) -> _State:
        state = self._states.get(url)
        if state is None:
            state = self._states[url] = _State()
        return state

    def snapshot(self, url: str) -> SiteHealth:
        """What is known of ``url`` now."""
        with self._locked():
            state = self._states.get(url)
            if state is None:
                return SiteHealth(url, "unknown")
            until = None
            if state.cooldown_end is not None:
                left = state.cooldown_end - time.monotonic()
                until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=left)
            kind: Literal["healthy", "cooling"] = "cooling" if until is not None else "healthy"
            return SiteHealth(
                url,
                kind if state.calls else "unknown",
                state.consecutive,
                until,
                state.ttfb,
                state.calls,
                state.failures,
                state.last_error,
            )

    def plan(self, urls: Sequence[str], order: SiteOrder) -> list[str]:
        """The sites to try for one call, in order.

        Healthy sites and those whose cooldown is over and that nobody probes; the listed
        order, or by moving time to first byte (sites without one last). When every site
        cools down, the one whose cooldown ends first.
        """
        now = time.monotonic()
        with self._locked():
            states = [(url, self._state(url)) for url in urls]
            chosen = [(url, state) for url, state in states if state.usable(now)]
            if not chosen:
                chosen = [min(states, key=lambda pair: pair[1].cooldown_end or 0.0)]
            if order == "fastest":
                chosen.sort(key=lambda pair: (pair[1].ttfb is None, pair[1].ttfb or 0.0))
            return [url for url, _ in chosen]

    def claim(self, url: str) -> tuple[bool, bool]:
        """Whether a call may try ``url`` now, and whether it is the probe of a cooling site.

        A site whose cooldown is over is probed by one call at a time: the call that gets
        ``(True, True)`` gives the probe back with :meth:`release` however it ends.
        """
        with self._locked():
            state = self._state(url)
            if state.cooldown_end is None:
                return True, False
            if state.probing:
                return False, False
            if time.monotonic() < state.cooldown_end:
                return True, False  # every site cools down: this is the least bad one
            state.probing = True
            return True, True

    def release(self, url: str) -> None:
        """Give back the probe of ``url`` that :meth:`claim` handed out."""
        with self._locked():
            self._state(url).probing = False

    def cooling(self, urls: Sequence[str]) -> list[str]:
        """Those of ``urls`` that are cooling down now."""
        now = time.monotonic()
        with self._locked():
            return [url for url in urls if not self._state(url).usable(now)]

    def answered(self, url: str, ttfb: float | None) -> None:
        """``url`` answered a call (its first byte after ``ttfb`` seconds)."""
        with self._locked():
            state = self._state(url)
            recovered = state.cooldown_end is not None
            state.calls += 1
            state.consecutive, state.cooldown_end, state.cooldown = 0, None, 0.0
            if ttfb is not None:
                state.ttfb = (
                    ttfb
                    if state.ttfb is None
                    else (TTFB_WEIGHT * ttfb + (1 - TTFB_WEIGHT) * state.ttfb)
                )
        if recovered:
            logger.info("site %s answers again", url)

    def failed(self, url: str, error: ChatGptEsError, cooldown: float) -> None:
        """``url`` failed a call: it cools down (longer each time it fails in a row)."""
        with self._locked():
            state = self._state(url)
            started = state.cooldown_end is None
            state.calls += 1
            state.failures += 1
            state.consecutive += 1
            state.last_error = type(error).__name__
            state.cooldown = min(cooldown * 2 ** (state.consecutive - 1), MAX_COOLDOWN)
            wait = error.retry_after if isinstance(error, RateLimitError) else None
            seconds = max(state.cooldown, min(wait or 0.0, MAX_COOLDOWN))
            state.cooldown_end = time.monotonic() + seconds
        if started:
            logger.info(
                "site %s failed (%s): cooling down for %.0f s", url, type(error).__name__, seconds
            )


def moves_on(error: ChatGptEsError) -> bool:
    """Whether another site may take a call that failed with ``error`` on one site.

    Everything a site does (connection errors, timeouts, statuses, blocks, nonces, limits,
    its own errors, a rule of its own on input) may differ on another; input that no site
    can take (empty conversation, unsupported content, bad arguments) does not.
    """
    return not isinstance(error, InvalidInputError) or error.site_specific


def is_site_failure(error: ChatGptEsError) -> bool:
    """Whether ``error`` counts against the site's health (a site rule on input does not)."""
    return not isinstance(error, InvalidInputError)


@dataclass
class _Attempt:
    """One site's part of a call."""

    started: float
    delivered: bool = False  # text went up to the caller: no failover any more
    ttfb: float | None = None
    answered: bool = False


class Router:
    """Runs each call on one of several sites, as :class:`~._policy.Pipeline` runs one.

    Args:
        pipelines: One pipeline per site, by the site's URL, in the listed order.
        book: Where the sites' health is kept (the model's ``SiteCache``'s).
        order: ``listed`` or ``fastest``.
        cooldown: Seconds a site that failed is skipped (doubling while it keeps failing).
    """

    def __init__(
        self,
        pipelines: Mapping[str, Pipeline],
        book: HealthBook,
        order: SiteOrder = "listed",
        cooldown: float = 60.0,
    ) -> None:
        """Route over ``pipelines``."""
        self.pipelines, self.book, self.order, self.cooldown = pipelines, book, order, cooldown

    async def chat(self, chat: ChatInput) -> AsyncGenerator[list[Event], None]:
        """One call's events, from the first site that answers (see the module)."""
        failures: list[tuple[str, ChatGptEsError]] = []
        plan = self.book.plan(list(self.pipelines), self.order)
        for index, url in enumerate(plan):
            allowed, probe = self.book.claim(url)
            if not allowed and (failures or index < len(plan) - 1):
                continue  # another call probes it (unless nothing else was left to try)
            attempt = _Attempt(asyncio.get_running_loop().time())
            try:
                async with aclosing(self._on(url, chat, attempt)) as batches:
                    async for batch in batches:
                        yield batch
                return
            except ChatGptEsError as exc:
                if len(self.pipelines) == 1 or attempt.delivered or not moves_on(exc):
                    raise
                failures.append((url, exc))
            finally:
                if probe:
                    self.book.release(url)
        raise AllSitesFailedError(failures, self.book.cooling(list(self.pipelines)))

    async def _on(
        self, url: str, chat: ChatInput, attempt: _Attempt
    ) -> AsyncGenerator[list[Event], None]:
        """The call on one site, its health kept."""
        try:
            async with aclosing(self.pipelines[url].chat(chat)) as batches:
                async for batch in batches:
                    self._saw(url, batch, attempt)
                    yield batch
        except ChatGptEsError as exc:
            if is_site_failure(exc):
                self.book.failed(url, exc, self.cooldown)
            raise
        if not attempt.answered:
            self.book.answered(url, attempt.ttfb)

    def _saw(self, url: str, batch: list[Event], attempt: _Attempt) -> None:
        """Note a batch: the first answer byte, and the answer's end (the call succeeded)."""
        if not attempt.delivered and any(isinstance(event, TextDelta) for event in batch):
            attempt.delivered = True
            attempt.ttfb = asyncio.get_running_loop().time() - attempt.started
        if not attempt.answered and any(isinstance(event, End) for event in batch):
            attempt.answered = True  # (the caller may stop reading at the end)
            self.book.answered(url, attempt.ttfb)
