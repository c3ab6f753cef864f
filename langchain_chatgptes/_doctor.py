"""``python -m langchain_chatgptes doctor``: check a site step by step and say what is wrong.

Three steps, each printed as one line (step, OK / FAIL / SKIP, milliseconds, detail): fetch
the chat page, read the chat bots on it, and send one short prompt. Every step runs on the
chat model's own path (the same session set-up, adapter, policy and protocol modules), so
the verdicts match what the model would run into; verdicts are chosen from the errors'
types and attributes, never from their text. Proxy credentials are never printed.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TextIO

from langchain_chatgptes._conversation import ChatInput, Turn, Visitor
from langchain_chatgptes._http import mask_proxy
from langchain_chatgptes._policy import PAGE_HEADERS, Pipeline, Settings
from langchain_chatgptes._sessions import Runtime, SessionOptions
from langchain_chatgptes._site_cache import SiteCache
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
from langchain_chatgptes.protocols import Page, choose_bot, read_page
from langchain_chatgptes.protocols._base import HttpRequest, ReplyHead, TextDelta
from langchain_chatgptes.protocols._common import page_text
from langchain_chatgptes.protocols.wpaicg import describe_missing

PROMPT = "Reply with the single word: pong"
"""The one short prompt the doctor sends."""

BLOCKED = "blocked by an anti-bot (Cloudflare) challenge — try --proxy or --impersonate safari"


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


class _Checkup:
    """The steps, sharing one pipeline and what earlier steps found."""

    def __init__(self, pipeline: Pipeline, proxy: str | None) -> None:
        self.pipeline, self.proxy = pipeline, proxy
        self.page_url = pipeline.settings.page_url
        self.head: ReplyHead | None = None
        self.body = b""
        self.page: Page | None = None

    async def fetch_page(self) -> str:
        """GET the chat page; reachable whatever its status."""
        request = HttpRequest("GET", self.page_url, headers=PAGE_HEADERS, step="page")
        try:
            self.head, self.body = await self.pipeline.exchange(request)
        except ChatGptEsError as exc:
            raise _verdict(exc, self.proxy, reaching="unreachable") from exc
        return (
            f"reachable: GET {self.page_url} answered HTTP {self.head.status}, {len(self.body)} B"
        )

    async def read_page(self) -> str:
        """Read the chat bots: blocked, page changed, or what was found."""
        assert self.head is not None  # noqa: S101 (the loop skips this step otherwise)
        try:
            html = page_text(self.head, self.body)
            page = self.page = read_page(html, self.head.url or self.page_url)
        except BlockedError as exc:
            raise _Failed(BLOCKED) from exc
        except NonceNotFoundError as exc:
            if exc.missing:
                what = f"no usable chat box, missing {describe_missing(exc.missing)}"
            else:
                what = f"no chat box found (looked for {' or '.join(exc.looked_for)})"
            raise _Failed(f"page changed: {what}") from exc
        except HTTPStatusError as exc:
            verdict = "site down" if (exc.status_code or 0) >= 500 else "page changed"
            raise _Failed(f"{verdict}: HTTP {exc.status_code} instead of the chat page") from exc
        except ChatGptEsError as exc:
            raise _verdict(exc, self.proxy, reaching="unreadable") from exc
        bot = choose_bot(page)
        self.pipeline.cache.put(self.page_url, page)  # the prompt uses this very page
        stream_mode = "on" if bot.facts.get("streams") else "off"
        return (
            f"{bot.protocol} bot {bot.bot_id}: nonce {bot.nonce}, post id "
            f"{bot.facts.get('post_id')}, url {bot.facts.get('url')}, "
            f"stream mode: {stream_mode}"
        )

    async def send_prompt(self) -> str:
        """Send the short prompt, as the model would, and read the answer."""
        chat = ChatInput(
            (Turn("user", "User", PROMPT),), "", Visitor(secrets.token_hex(5), str(uuid.uuid4()))
        )
        parts: list[str] = []
        try:
            async for batch in self.pipeline.chat(chat):
                parts += [event.text for event in batch if isinstance(event, TextDelta)]
        except ChatGptEsError as exc:
            raise _verdict(exc, self.proxy, reaching="POST failed") from exc
        answer = " ".join("".join(parts).split())[:80]
        refreshed = " (after one nonce refresh)" if self.pipeline.nonce_refreshes else ""
        return f"answer received{refreshed}: {answer!r}"


def _line(out: TextIO, step: str, verdict: str, ms: str, detail: str) -> None:
    out.write(f"{step:<12} {verdict:<4} {ms:>6} ms  {detail}\n")
    out.flush()


async def _run_steps(checkup: _Checkup, out: TextIO) -> str | None:
    steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("fetch page", checkup.fetch_page),
        ("read page", checkup.read_page),
        ("send prompt", checkup.send_prompt),
    ]
    failed: str | None = None
    for name, step in steps:
        if failed is not None:
            _line(out, name, "SKIP", "-", f"not run: {failed!r} failed")
            continue
        start = time.perf_counter()
        try:
            detail, verdict = await step(), "OK"
        except _Failed as exc:
            detail, verdict, failed = str(exc), "FAIL", name
        _line(out, name, verdict, f"{(time.perf_counter() - start) * 1000:.0f}", detail)
    return failed


def run_doctor(
    base_url: str, *, proxy: str | None, timeout: float, impersonate: str, out: TextIO
) -> bool:
    """Check a site step by step, print one line per step and a summary to ``out``.

    Args:
        base_url: The site, e.g. ``https://chatgpt.es``.
        proxy: Proxy URL for every request, or ``None``; printed with its credentials masked.
        timeout: Seconds each request may take (per silence, for a streamed reply).
        impersonate: curl_cffi browser target, e.g. ``"chrome"`` or ``"safari"``.
        out: Where the report goes.

    Returns:
        True when every step passed (the site answered the prompt).
    """
    shown_proxy = mask_proxy(proxy) if proxy else "none"
    out.write(
        f"doctor: {base_url} (impersonate {impersonate}, proxy {shown_proxy}, "
        f"timeout {timeout:g} s)\n"
    )

    async def main() -> str | None:
        runtime = Runtime(SessionOptions(impersonate=impersonate, proxy=proxy))
        settings = Settings(base_url.rstrip("/") + "/", timeout, max_retries=0)
        try:
            adapter = await runtime.adapter()
            return await _run_steps(_Checkup(Pipeline(settings, SiteCache(), adapter), proxy), out)
        finally:
            await runtime.aclose()

    failed = asyncio.run(main())
    out.write("healthy\n" if failed is None else f"not healthy: {failed}\n")
    return failed is None
