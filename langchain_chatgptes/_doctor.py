"""``python -m langchain_chatgptes doctor``: check a site step by step and say what is wrong.

Each step printed as one line (step, OK / FAIL / SKIP, milliseconds, detail): fetch the
chat page, read the chat bots on it (naming the protocol), ask for a fresh nonce where the
protocol can (``nonce``; AI Engine: start its REST ``session``), and send one short
prompt, one line per request it takes (``send prompt`` for the legacy plugin and AI
Engine; ``cache POST`` and ``stream`` for AIPKit). Every
step runs on the chat model's own path (the same session set-up, adapter, policy and
protocol modules), so the verdicts match what the model would run into; verdicts are
chosen from the errors' types and attributes, never from their text. Proxy credentials
are never printed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from langchain_chatgptes._conversation import ChatInput, Turn, Visitor
from langchain_chatgptes._http import mask_proxy
from langchain_chatgptes._policy import Pipeline, Settings
from langchain_chatgptes._sessions import Runtime, SessionOptions
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes._trust import host_entry, page_url, site_url
from langchain_chatgptes.errors import (
    BlockedError,
    ChatGptEsError,
    HTTPStatusError,
    InvalidInputError,
    NonceNotFoundError,
    NonceRejectedError,
    RequestTimeoutError,
    TransportError,
)
from langchain_chatgptes.protocols import (
    choose_bot,
    protocol_named,
    read_page,
)
from langchain_chatgptes.protocols._base import Bot, HttpRequest, ReplyHead, TextDelta
from langchain_chatgptes.protocols._common import page_text

PROMPT = "Reply with the single word: pong"
"""The one short prompt the doctor sends."""

BLOCKED = "blocked by an anti-bot (Cloudflare) challenge — try --proxy or --impersonate safari"


Line = tuple[str, str, float, str]
"""One line of the report: step, verdict (OK, FAIL, SKIP), seconds, detail."""


class _Failed(Exception):
    """A step failed; the message is its verdict for the user."""


def _verdict(exc: ChatGptEsError, proxy: str | None, *, reaching: str) -> _Failed:
    """The user-facing verdict for an error, from its type and attributes."""
    if isinstance(exc, InvalidInputError) and exc.setting == "impersonate":
        return _Failed(f"--impersonate is not a browser target curl_cffi knows: {exc}")
    if isinstance(exc, BlockedError):
        return _Failed(BLOCKED)
    if isinstance(exc, RequestTimeoutError):
        return _Failed(f"timed out: {exc}")
    if isinstance(exc, TransportError) and exc.at_proxy:
        return _Failed(f"the proxy {mask_proxy(proxy or '')} failed: {exc}")
    if isinstance(exc, TransportError) and exc.not_http:
        return _Failed(f"something answered, but not in HTTP (another service there?): {exc}")
    if isinstance(exc, TransportError):
        return _Failed(f"{reaching}: {exc}")
    if isinstance(exc, NonceRejectedError):
        return _Failed(f"nonce rejected: {exc}")
    return _Failed(f"{type(exc).__name__}: {exc}")


def _step_name(request: HttpRequest, bot: Bot | None) -> str:
    """What the doctor calls a request: its protocol's label for the step, or the step."""
    labels = dict(protocol_named(bot.protocol).step_labels) if bot is not None else {}
    return labels.get(request.step, request.step)


class _Checkup:
    """The steps, sharing one pipeline and what earlier steps found."""

    def __init__(self, pipeline: Pipeline, proxy: str | None) -> None:
        self.pipeline, self.proxy = pipeline, proxy
        self.plugin, self.bot_id = pipeline.settings.plugin, pipeline.settings.bot_id
        self.page_url = pipeline.settings.page_url
        self.head: ReplyHead | None = None
        self.body = b""
        self.bot: Bot | None = None
        self.observed: list[tuple[HttpRequest, float, BaseException | None]] = []
        self.answer_seconds: float | None = None
        pipeline.observer = lambda request, seconds, error: self.observed.append(
            (request, seconds, error)
        )

    async def fetch_page(self) -> str:
        """GET the chat page; reachable whatever its status."""
        try:
            self.head, self.body = await self.pipeline.get_page()
        except ChatGptEsError as exc:
            raise _verdict(exc, self.proxy, reaching="unreachable") from exc
        moved = f" (redirected to {self.head.url})" if self.head.url != self.page_url else ""
        return (
            f"reachable: GET {self.page_url} answered HTTP {self.head.status}, "
            f"{len(self.body)} B{moved}"
        )

    async def read_page(self) -> str:
        """Read the chat bots: blocked, page changed, or which bot (and protocol) answers."""
        assert self.head is not None  # noqa: S101 (the loop skips this step otherwise)
        try:
            html = page_text(self.head, self.body)
            page = read_page(html, self.head.url or self.page_url)
        except BlockedError as exc:
            raise _Failed(BLOCKED) from exc
        except NonceNotFoundError as exc:
            if exc.missing:
                what = f"no usable chat box: {exc}"
            else:
                what = f"no chat box found (looked for {' or '.join(exc.looked_for)})"
            raise _Failed(f"page changed: {what}") from exc
        except HTTPStatusError as exc:
            verdict = "site down" if (exc.status_code or 0) >= 500 else "page changed"
            raise _Failed(f"{verdict}: HTTP {exc.status_code} instead of the chat page") from exc
        except ChatGptEsError as exc:
            raise _verdict(exc, self.proxy, reaching="unreadable") from exc
        try:
            bot = self.bot = choose_bot(page, self.plugin, self.bot_id)
        except NonceNotFoundError as exc:  # bots, but not the one asked for
            raise _Failed(f"no such bot: {exc}") from exc
        self.pipeline.cache.put(self.page_url, page)  # the prompt uses this very page
        others = [other for other in page.bots if other is not bot]
        also = f"; also on the page: {len(others)} more" if others else ""
        return protocol_named(bot.protocol).describe(bot) + also

    async def check_nonce(self) -> str:
        """Run the protocol's refresh call (a fresh nonce, a session), where it has one."""
        assert self.bot is not None  # noqa: S101 (the loop skips this step otherwise)
        protocol = protocol_named(self.bot.protocol)
        state = self.pipeline.cache.state(self.page_url, self.bot)
        refresh = protocol.refresh(self.bot, state)
        if refresh is None:
            return "from the page (a rejected nonce means reading the page again)"
        try:
            async for _ in self.pipeline.run(refresh, self.bot):
                pass
        except ChatGptEsError as exc:
            raise _verdict(exc, self.proxy, reaching="unreachable") from exc
        finally:
            self.observed.clear()
        fresh = refresh.new_state()
        passed, detail = protocol.refresh_verdict(self.bot, state, fresh)
        if not passed:
            raise _Failed(detail)
        if fresh is not None:
            self.pipeline.cache.set_state(self.page_url, self.bot, fresh)  # the prompt uses it
        return detail

    def nonce_step(self) -> str | None:
        """The name of the refresh step for this bot's protocol (None: no such step)."""
        return None if self.bot is None else protocol_named(self.bot.protocol).refresh_step

    def planned_steps(self) -> list[str]:
        """The names of the requests a call to this bot makes."""
        if self.bot is None:
            return ["send prompt"]
        return list(protocol_named(self.bot.protocol).planned_steps(self.bot))

    async def send_prompt(self) -> list[Line]:
        """Send the short prompt as the model would: a line (step, verdict, s, detail) each."""
        parts, error = await self._ask()
        lines = self._request_lines(error)
        if error is not None and not any(status == "FAIL" for _, status, _, _ in lines):
            verdict = _verdict(error, self.proxy, reaching="POST failed")
            lines.append((self.planned_steps()[-1], "FAIL", 0.0, str(verdict)))
        if error is None and lines:
            answer = " ".join("".join(parts).split())[:80]
            refreshed = " (after one nonce refresh)" if self.pipeline.nonce_refreshes else ""
            name, status, seconds, _ = lines[-1]
            lines[-1] = (name, status, seconds, f"answer received{refreshed}: {answer!r}")
        return lines

    async def _ask(self) -> tuple[list[str], ChatGptEsError | None]:
        """The answer's text and the call's error, if any."""
        chat = ChatInput(
            (Turn("user", "User", PROMPT),), "", Visitor(secrets.token_hex(5), str(uuid.uuid4()))
        )
        parts: list[str] = []
        try:
            async for batch in self.pipeline.chat(chat):
                parts += [event.text for event in batch if isinstance(event, TextDelta)]
        except ChatGptEsError as exc:
            return parts, exc
        return parts, None

    def _request_lines(self, error: ChatGptEsError | None) -> list[Line]:
        """A line per request the call made (after a nonce refresh: its last attempt's)."""
        starts = [
            i for i, (_, _, e) in enumerate(self.observed) if isinstance(e, NonceRejectedError)
        ]
        observed = self.observed[starts[-1] + 1 :] if starts and error is None else self.observed
        lines: list[Line] = []
        for request, seconds, failure in observed:
            name = _step_name(request, self.bot)
            if failure is None:
                lines.append((name, "OK", seconds, f"HTTP {request.method} answered"))
            else:
                failed = _verdict(failure, self.proxy, reaching="unreachable")  # type: ignore[arg-type]
                lines.append((name, "FAIL", seconds, str(failed)))
        return lines


def _line(out: TextIO, step: str, verdict: str, ms: str, detail: str) -> None:
    out.write(f"{step:<12} {verdict:<4} {ms:>6} ms  {detail}\n")
    out.flush()


@dataclass(frozen=True)
class SiteReport:
    """One site's checkup, for the summary of several.

    Attributes:
        url: The site.
        failed: The step that failed, or ``None`` when the site answered.
        answer_seconds: How long sending the prompt took, when it answered.
    """

    url: str
    failed: str | None
    answer_seconds: float | None


async def _run_steps(checkup: _Checkup, out: TextIO) -> str | None:
    steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("fetch page", checkup.fetch_page),
        ("read page", checkup.read_page),
        ("nonce", checkup.check_nonce),
    ]
    failed: str | None = None
    for name, step in steps:
        if name == "nonce":
            if (renamed := checkup.nonce_step()) is None:
                continue
            name = renamed
        if failed is not None:
            _line(out, name, "SKIP", "-", f"not run: {failed!r} failed")
            continue
        start = time.perf_counter()
        try:
            detail, verdict = await step(), "OK"
        except _Failed as exc:
            detail, verdict, failed = str(exc), "FAIL", name
        _line(out, name, verdict, f"{(time.perf_counter() - start) * 1000:.0f}", detail)
    planned = checkup.planned_steps()
    if failed is not None:
        for name in planned:
            _line(out, name, "SKIP", "-", f"not run: {failed!r} failed")
        return failed
    started = time.perf_counter()
    lines = await checkup.send_prompt()
    checkup.answer_seconds = time.perf_counter() - started
    for name, verdict, seconds, detail in lines:
        _line(out, name, verdict, f"{seconds * 1000:.0f}", detail)
        if verdict == "FAIL" and failed is None:
            failed = name
    for name in planned[len(lines) :]:
        _line(out, name, "SKIP", "-", f"not run: {failed!r} failed")
    return failed


def run_doctor(
    base_url: str,
    *,
    proxy: str | None,
    timeout: float,
    impersonate: str,
    out: TextIO,
    plugin: str = "auto",
    bot_id: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> bool:
    """Check a site step by step, print one line per step and a summary to ``out``.

    Args:
        base_url: The site, e.g. ``https://chatgpt.es``.
        proxy: Proxy URL for every request, or ``None``; printed with its credentials masked.
        timeout: Seconds each request may take (per silence, for a streamed reply).
        impersonate: curl_cffi browser target, e.g. ``"chrome"`` or ``"safari"``.
        out: Where the report goes.
        plugin: The protocol to check (``"auto"``: the one the page shows).
        bot_id: The chat bot to check when the page has several (``None``: the model's choice).
        allowed_hosts: Hosts besides the page's own its chat box may send requests to.

    Returns:
        True when every step passed (the site answered the prompt).

    Raises:
        ValueError: ``base_url`` is not an http(s) URL the model would accept.
    """
    options = _Options(proxy, timeout, impersonate, plugin, bot_id, allowed_hosts)
    return _check(base_url, options, out).failed is None


def run_doctors(
    base_urls: Sequence[str],
    *,
    proxy: str | None,
    timeout: float,
    impersonate: str,
    out: TextIO,
    plugin: str = "auto",
    bot_id: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
) -> bool:
    """Check several sites in turn, then rank them and say the order a model would use.

    Arguments as :func:`run_doctor`, for each site of ``base_urls``.

    Returns:
        True when at least one site answered.

    Raises:
        ValueError: A URL is not an http(s) URL the model would accept.
    """
    sites = [site_url(url) for url in base_urls]  # every URL checked before any request
    options = _Options(proxy, timeout, impersonate, plugin, bot_id, allowed_hosts)
    reports = []
    for url in sites:
        reports.append(_check(url, options, out))
        out.write("\n")
    _summary(reports, out)
    return any(report.failed is None for report in reports)


@dataclass(frozen=True)
class _Options:
    proxy: str | None
    timeout: float
    impersonate: str
    plugin: str
    bot_id: str | None
    allowed_hosts: tuple[str, ...]


def _check(base_url: str, options: _Options, out: TextIO) -> SiteReport:
    """One site's steps, printed; what they found."""
    page = page_url(site_url(base_url))
    shown_proxy = mask_proxy(options.proxy) if options.proxy else "none"
    bot = f", bot {options.bot_id}" if options.bot_id else ""
    out.write(
        f"doctor: {base_url} (impersonate {options.impersonate}, proxy {shown_proxy}, "
        f"timeout {options.timeout:g} s, plugin {options.plugin}{bot})\n"
    )

    async def main() -> SiteReport:
        runtime = Runtime(SessionOptions(impersonate=options.impersonate, proxy=options.proxy))
        settings = Settings(
            page,
            options.timeout,
            max_retries=0,
            plugin=options.plugin,
            bot_id=options.bot_id,
            allowed_hosts=tuple(host_entry(host) for host in options.allowed_hosts),
        )
        try:
            adapter = await runtime.adapter()
            checkup = _Checkup(Pipeline(settings, SiteCache(), adapter), options.proxy)
            failed = await _run_steps(checkup, out)
            return SiteReport(base_url, failed, checkup.answer_seconds if not failed else None)
        finally:
            await runtime.aclose()

    report = asyncio.run(main())
    out.write("healthy\n" if report.failed is None else f"not healthy: {report.failed}\n")
    return report


def _summary(reports: Sequence[SiteReport], out: TextIO) -> None:
    """The sites ranked (those that answered first, fastest first), and the order to use."""
    ranked = sorted(reports, key=lambda r: (r.failed is not None, r.answer_seconds or 0.0))
    out.write("sites, best first:\n")
    for rank, report in enumerate(ranked, 1):
        verdict = "OK  " if report.failed is None else "FAIL"
        took = f"{report.answer_seconds * 1000:6.0f} ms" if report.answer_seconds else "      -   "
        why = "answered" if report.failed is None else f"failed at {report.failed!r}"
        out.write(f"{rank:>2}. {verdict} {took}  {report.url}  {why}\n")
    answered = [r.url for r in reports if r.failed is None]
    fastest = [r.url for r in ranked if r.failed is None]
    if not answered:
        out.write("no site answered\n")
        return
    out.write(f"order (site_order='listed'): {', '.join(answered)}\n")
    out.write(f"order (site_order='fastest'): {', '.join(fastest)}\n")
    out.write(f"{len(answered)} of {len(reports)} sites answered\n")
