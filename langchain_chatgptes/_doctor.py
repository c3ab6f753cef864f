"""``python -m langchain_chatgptes doctor``: check a site step by step and say what is wrong.

Three steps, each printed as one line (step, OK / FAIL / SKIP, milliseconds, detail): fetch
the chat page, read the chat box facts from it, and send one short prompt. The bytes are
interpreted only by ``_protocol`` (the same functions the chat model uses), so the verdicts
match what the model would run into. Proxy credentials are never printed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TextIO

from curl_cffi import CurlError
from curl_cffi.requests import Response, Session
from curl_cffi.requests import exceptions as curl_exceptions
from langchain_core.messages import HumanMessage

from langchain_chatgptes._prompt import build_message
from langchain_chatgptes._protocol import (
    SiteInfo,
    ajax_url,
    build_form,
    decode_reply,
    parse_page,
    post_headers,
)
from langchain_chatgptes._transport import mask_proxy, scrub_proxy
from langchain_chatgptes.errors import (
    BlockedError,
    ChatGptEsError,
    HTTPStatusError,
    NonceNotFoundError,
    NonceRejectedError,
)

PROMPT = "Reply with the single word: pong"
"""The one short prompt the doctor sends."""

BLOCKED = "blocked by an anti-bot (Cloudflare) challenge — try --proxy or --impersonate safari"


class _Failed(Exception):
    """A step failed; the message is its verdict for the user."""


class _Checkup:
    """The steps, sharing one session and what earlier steps found."""

    def __init__(self, session: Session[Response], base_url: str, proxy: str | None) -> None:
        self.session, self.base_url, self.proxy = session, base_url, proxy
        self.page_url = base_url.rstrip("/") + "/"
        self.status, self.html = 0, ""
        self.site: SiteInfo | None = None

    def _curl_failure(self, exc: CurlError, what: str) -> _Failed:
        text = str(exc).removeprefix("Failed to perform, ").split(" See https://curl.se")[0]
        text = scrub_proxy(text, self.proxy)  # curl may echo the proxy
        if isinstance(exc, curl_exceptions.ImpersonateError):
            return _Failed(f"--impersonate is not a browser target curl_cffi knows: {text}")
        if isinstance(exc, curl_exceptions.Timeout):
            return _Failed(f"timed out: {text}")
        if isinstance(exc, curl_exceptions.ProxyError):
            return _Failed(f"the proxy {mask_proxy(self.proxy or '')} failed: {text}")
        return _Failed(f"{what}: {text}")

    def fetch_page(self) -> str:
        """GET the chat page; reachable whatever its status."""
        try:
            resp = self.session.get(self.page_url)
        except CurlError as exc:
            raise self._curl_failure(exc, "unreachable") from exc
        self.status, self.html = resp.status_code, resp.text
        return f"reachable: GET {self.page_url} answered HTTP {self.status}, {len(resp.content)} B"

    def read_page(self) -> str:
        """Read the chat box facts: blocked, page changed, or what was found."""
        try:
            site = self.site = parse_page(self.html, page_url=self.base_url, status=self.status)
        except BlockedError as exc:
            raise _Failed(BLOCKED) from exc
        except NonceNotFoundError as exc:
            missing = str(exc).partition(": missing ")[2].partition(". ")[0]
            what = f"no chat box, missing {missing}" if missing else str(exc)
            raise _Failed(f"page changed: {what}") from exc
        except HTTPStatusError as exc:
            verdict = "site down" if (exc.status_code or 0) >= 500 else "page changed"
            raise _Failed(f"{verdict}: HTTP {exc.status_code} instead of the chat page") from exc
        stream_mode = "on" if site.streams else "off"
        return (
            f"nonce {site.nonce}, post id {site.post_id}, url {site.url}, "
            f"bot id {site.bot_id}, stream mode: {stream_mode}"
        )

    def send_prompt(self) -> str:
        """POST the short prompt with those facts and read the answer."""
        if self.site is None:  # pragma: no cover - the loop skips this step then
            raise _Failed("no chat box facts")
        form = build_form(self.site, build_message([HumanMessage(PROMPT)]), secrets.token_hex(5))
        try:
            resp = self.session.post(
                ajax_url(self.base_url), data=form, headers=post_headers(self.base_url)
            )
            reply = {name.lower(): value or "" for name, value in resp.headers.items()}
            answer = decode_reply(resp.status_code, reply, resp.content)
        except CurlError as exc:
            raise self._curl_failure(exc, "POST failed") from exc
        except BlockedError as exc:
            raise _Failed(BLOCKED) from exc
        except NonceRejectedError as exc:
            raise _Failed(f"nonce rejected: {exc}") from exc
        except ChatGptEsError as exc:  # SiteError, ConsentRequired, RateLimit, ResponseFormat...
            raise _Failed(f"{type(exc).__name__}: {exc}") from exc
        return f"answer received: {' '.join(answer.split())[:80]!r}"


def _line(out: TextIO, step: str, verdict: str, ms: str, detail: str) -> None:
    out.write(f"{step:<12} {verdict:<4} {ms:>6} ms  {detail}\n")
    out.flush()


def run_doctor(
    base_url: str, *, proxy: str | None, timeout: float, impersonate: str, out: TextIO
) -> bool:
    """Check a site step by step, print one line per step and a summary to ``out``.

    Args:
        base_url: The site, e.g. ``https://chatgpt.es``.
        proxy: Proxy URL for both requests, or ``None``; printed with its credentials masked.
        timeout: Seconds each request may take in all.
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
    failed: str | None = None
    with Session(impersonate=impersonate, proxy=proxy, verify=True, timeout=timeout) as session:
        checkup = _Checkup(session, base_url, proxy)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("fetch page", checkup.fetch_page),
            ("read page", checkup.read_page),
            ("send prompt", checkup.send_prompt),
        ]
        for name, step in steps:
            if failed is not None:
                _line(out, name, "SKIP", "-", f"not run: {failed!r} failed")
                continue
            start = time.perf_counter()
            try:
                detail, verdict = step(), "OK"
            except _Failed as exc:
                detail, verdict, failed = str(exc), "FAIL", name
            _line(out, name, verdict, f"{(time.perf_counter() - start) * 1000:.0f}", detail)
    out.write("healthy\n" if failed is None else f"not healthy: {failed}\n")
    return failed is None
