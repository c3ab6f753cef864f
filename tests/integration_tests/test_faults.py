"""The fault matrix: every fault the emulator can stage, on every call path.

Each fault either ends in its exact answer (after a retry where one helps) or in the
documented error class, with the stated number of chat POSTs and page GETs, within the time
limit. The docs' matrix (``docs/reliability.md``) is rendered from ``FAULTS``
(``test_the_docs_show_the_fault_matrix`` keeps the two in step), so what it says is what
``test_fault`` checks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from langchain_chatgptes import (
    BlockedError,
    ChatChatGptEs,
    ChatGptEsError,
    ConsentRequiredError,
    HTTPStatusError,
    IncompleteAnswerError,
    RateLimitError,
    RequestTimeoutError,
    ResponseFormatError,
    SiteError,
)
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes.emulator import Emulator, Reply, ScriptedResponder

from .conftest import PATHS, call

TIMEOUT = 1.0
MARGIN = 1.5  # seconds a call may take beyond TIMEOUT per request made (backoff included)
ANSWER = "recovered"


def sse(*texts: str, done: bool = True) -> str:
    events = [f"data: {json.dumps({'choices': [{'delta': {'content': t}}]})}\n\n" for t in texts]
    return "".join(events) + ("data: [DONE]\n\n" if done else "")


JSON = "application/json; charset=UTF-8"
BIG = "x" * (10 * 1024 * 1024)


def _count(n: int, what: str) -> str:
    if not n:
        return f"no {what}"
    return f"{n} {what}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class Fault:
    """One staged fault and what every call path must make of it.

    ``posts`` and ``pages`` count the chat POSTs and page GETs the faulted call makes (the
    warm-up call before it, which reads the page, is not counted).
    """

    name: str
    replies: tuple[Reply, ...] = ()
    posts: int = 1
    pages: int = 0
    site_streams: bool = False
    outcome: type[ChatGptEsError] | None = None  # None: the answer `answer`
    answer: str = ANSWER
    setup: str = ""  # an emulator attribute change, "name=value"

    @property
    def expected(self) -> str:
        result = "answer" if self.outcome is None else f"`{self.outcome.__name__}`"
        traffic = [_count(self.posts, "POST")]
        if self.pages:
            traffic.append(_count(self.pages, "page GET"))
        retried = "retried: " if self.posts > 1 else ""
        return f"{result} ({retried}{', '.join(traffic)})"


FAULTS = [
    Fault("connection reset before the reply", (Reply.reset(),), posts=2),
    Fault("connection reset during a JSON reply", (Reply.reset('{"status":"succ'),), posts=2),
    Fault(
        "connection reset after streamed text",
        (Reply.reset(sse("Hal", done=False), "text/event-stream"),),
        site_streams=True,
        outcome=IncompleteAnswerError,
    ),
    Fault("server accepts and never answers", (Reply.hang(30),), outcome=RequestTimeoutError),
    Fault(
        "slow drip, each piece within the limit (event stream)",
        (Reply.drip(sse(ANSWER), 0.05),),
        site_streams=True,
    ),
    Fault(
        "slow drip of a JSON reply, longer than the limit in total",
        (Reply.drip(json.dumps({"status": "success", "data": ANSWER + " " * 200}), 0.05, JSON),),
        outcome=RequestTimeoutError,
    ),
    Fault(
        "HTTP 429 with Retry-After",
        (Reply.raw(429, "Too many", headers={"Retry-After": "0"}),),
        posts=2,
    ),
    Fault("HTTP 429 without Retry-After", (Reply.raw(429, "Too many"),), posts=2),
    Fault("HTTP 500", (Reply.raw(500, "<h1>Internal Server Error</h1>"),), posts=2),
    Fault("HTTP 502", (Reply.raw(502, "<h1>Bad Gateway</h1>"),), posts=2),
    Fault(
        "HTTP 503 with Retry-After",
        (Reply.raw(503, "busy", headers={"Retry-After": "0"}),),
        posts=2,
    ),
    Fault(
        "HTTP 503 more often than max_retries",
        (Reply.raw(503, "busy"),) * 3,
        posts=3,
        outcome=HTTPStatusError,
    ),
    Fault(
        "HTML where JSON is expected",
        (Reply.raw(200, "<html>hi</html>"),),
        outcome=ResponseFormatError,
    ),
    Fault(
        "truncated JSON",
        (Reply.raw(200, '{"status":"success","da', JSON),),
        outcome=ResponseFormatError,
    ),
    Fault(
        "empty `data`",
        (Reply.raw(200, '{"status":"success","data":""}', JSON),),
        outcome=ResponseFormatError,
    ),
    Fault(
        "non-UTF-8 bytes",
        (Reply.raw(200, b'{"data": "\xff\xfe"}', JSON),),
        outcome=ResponseFormatError,
    ),
    Fault(
        "non-UTF-8 bytes in an event stream",
        (Reply.raw(200, b"data: \xff\xfe\n\n", "text/event-stream"),),
        site_streams=True,
        outcome=ResponseFormatError,
    ),
    Fault(
        "event stream cut before its end",
        (Reply.raw(200, sse("Hal", done=False), "text/event-stream"),),
        site_streams=True,
        outcome=ResponseFormatError,
    ),
    Fault("a 10 MB answer", (Reply.text(BIG),), answer=BIG),
    Fault("nonce rotated since the page was read", posts=2, pages=1, setup="advance=259200"),
    Fault(
        "Cloudflare challenge on the page",
        posts=0,
        pages=1,
        setup="cloudflare=get",
        outcome=BlockedError,
    ),
    Fault("Cloudflare challenge on the POST", setup="cloudflare=post", outcome=BlockedError),
    Fault("upstream error message", (Reply.site_error("Incorrect API key"),), outcome=SiteError),
    Fault("banned words", (Reply.flag("messageFlagged", "prohibited words"),), outcome=SiteError),
    Fault("token limit reached", (Reply.token_limit(),), outcome=RateLimitError),
    Fault("consent checkbox message", (Reply.checkbox(),), outcome=ConsentRequiredError),
]


def matrix_markdown() -> str:
    """The docs' fault matrix (every path gives the same outcome)."""
    lines = [
        "| fault | " + " | ".join(f"`{p}`" for p in PATHS) + " |",
        "|---|" + "---|" * len(PATHS),
    ]
    for fault in FAULTS:
        lines.append(f"| {fault.name} | " + " | ".join([fault.expected] * len(PATHS)) + " |")
    return "\n".join(lines)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault(emulator: Emulator, fault: Fault, path: str) -> None:
    emulator.stream = fault.site_streams
    cache = SiteCache()
    model = ChatChatGptEs(
        base_url=emulator.base_url, timeout=TIMEOUT, max_retries=2, site_cache=cache
    )
    await call(model, path, "warm up")  # the page is cached: faults hit the chat POST
    emulator.responder = ScriptedResponder(fault.replies, fallback=lambda request: ANSWER)
    if fault.setup:
        name, value = fault.setup.split("=")
        if name == "advance":
            emulator.advance(float(value))
        else:
            setattr(emulator, name, value)
        if name == "cloudflare" and value == "get":
            cache.clear()  # the challenge is on the page: make the call fetch it
    posts, pages = len(emulator.chat_requests()), len(emulator.page_requests())
    started = time.monotonic()
    if fault.outcome is None:
        answer = await call(model, path, "go")
        assert answer.text == fault.answer, f"{len(answer.text)} characters: {answer.text[:80]!r}"
    else:
        with pytest.raises(fault.outcome):
            await call(model, path, "go")
    elapsed = time.monotonic() - started
    made = (len(emulator.chat_requests()) - posts, len(emulator.page_requests()) - pages)
    assert made == (fault.posts, fault.pages), "(chat POSTs, page GETs) of the faulted call"
    assert elapsed < TIMEOUT * (fault.posts + fault.pages) + MARGIN


def test_the_docs_show_the_fault_matrix() -> None:
    page = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    assert matrix_markdown() in page, (
        "update the fault matrix in docs/reliability.md:\n" + matrix_markdown()
    )


# --- the same faults on the newer plugins -------------------------------------------------

LONG = " ".join(["word"] * 40)  # forty stream pieces: two seconds at 0.05 s apart
LARGE = "abcd" * 32_000


@dataclass(frozen=True)
class PluginFault:
    """A fault of the transport or the site that every plugin's call must survive the same way.

    ``attempts`` counts the chat turns the faulted call starts: one request each on AI Engine
    (the submit POST), two on AIPKit (the cache POST, then the stream GET, which the fault
    hits); ``requests`` overrides that per plugin where a refresh step is taken.
    """

    name: str
    replies: tuple[Reply, ...] = ()
    attempts: int = 1
    pages: int = 0
    outcome: type[ChatGptEsError] | None = None
    answer: str = ANSWER
    setup: str = ""
    requests: tuple[tuple[str, int], ...] = ()
    extra_seconds: float = 0.0  # time the answer itself takes, beyond the fault's limit

    def traffic(self, plugin: str) -> tuple[int, int]:
        """(chat requests, page GETs) of the faulted call on ``plugin``."""
        per_turn = {"aipkit": 2, "mwai": 1}[plugin]
        return dict(self.requests).get(plugin, per_turn * self.attempts), self.pages

    def expected(self, plugin: str) -> str:
        result = "answer" if self.outcome is None else f"`{self.outcome.__name__}`"
        chat, pages = self.traffic(plugin)
        traffic = [_count(chat, "request")]
        if pages:
            traffic.append(_count(pages, "page GET"))
        retried = "retried: " if self.attempts > 1 else ""
        return f"{result} ({retried}{', '.join(traffic)})"


PLUGIN_FAULTS = [
    PluginFault(
        "connection reset before the reply",
        (Reply.reset(),),
        attempts=2,
        # libcurl replays a request whose kept-alive connection dropped unanswered; on AIPKit
        # the replayed stream GET finds its cache key used up, so the message is cached again.
        requests=(("aipkit", 5),),
    ),
    PluginFault(
        "connection reset after streamed text",
        (Reply.sequence("Hal", Reply.reset()),),
        outcome=IncompleteAnswerError,
    ),
    PluginFault("server accepts and never answers", (Reply.hang(30),), outcome=RequestTimeoutError),
    PluginFault(
        "slow drip, each piece within the limit, longer than it in total",
        (Reply.text(LONG),),
        answer=LONG,
        setup="chunk_delay=0.05",
        extra_seconds=2.5,
    ),
    PluginFault(
        "HTTP 429 with Retry-After",
        (Reply.raw(429, "Too many", headers={"Retry-After": "0"}),),
        attempts=2,
    ),
    PluginFault("HTTP 429 without Retry-After", (Reply.raw(429, "Too many"),), attempts=2),
    PluginFault("HTTP 500", (Reply.raw(500, "<h1>Internal Server Error</h1>"),), attempts=2),
    PluginFault("HTTP 502", (Reply.raw(502, "<h1>Bad Gateway</h1>"),), attempts=2),
    PluginFault(
        "HTTP 503 more often than max_retries",
        (Reply.raw(503, "busy"),) * 3,
        attempts=3,
        outcome=HTTPStatusError,
    ),
    PluginFault(
        "HTML where the reply is expected",
        (Reply.raw(200, "<html>hi</html>"),),
        outcome=ResponseFormatError,
    ),
    PluginFault(
        "non-UTF-8 bytes",
        (Reply.raw(200, b"data: \xff\xfe\n\n", "text/event-stream"),),
        outcome=ResponseFormatError,
    ),
    PluginFault(
        # Both plugins always stream here, one event per token-sized piece: a 32,000-token
        # answer is 32,000 events (the 10 MB row above is a single JSON reply).
        "a 128 kB answer in 32,000 stream events",
        (Reply.text(LARGE),),
        answer=LARGE,
        # langchain-core's stream() takes ~40 us a chunk (1.2 s for 32,000 from a no-op
        # model here), and the emulator shares this process.
        extra_seconds=3.0,
    ),
    PluginFault(
        "nonce rotated since it was read",
        setup="advance=259200",
        # AIPKit: the refused cache POST, then cache POST + stream with a nonce from the
        # plugin's nonce action; AI Engine: the refused submit, then a new session's submit.
        requests=(("aipkit", 3), ("mwai", 2)),
    ),
    PluginFault(
        "Cloudflare challenge on the page",
        attempts=0,
        pages=1,
        setup="cloudflare=get",
        outcome=BlockedError,
    ),
    PluginFault(
        "Cloudflare challenge on the POST",
        setup="cloudflare=post",
        outcome=BlockedError,
        requests=(("aipkit", 1),),  # the cache POST is challenged: no stream follows
    ),
    PluginFault(
        "upstream error message", (Reply.site_error("Incorrect API key"),), outcome=SiteError
    ),
    PluginFault("usage limit reached", (Reply.token_limit(),), outcome=RateLimitError),
]
NEWER_PLUGINS = ("aipkit", "mwai")


def plugin_matrix_markdown() -> str:
    """The docs' fault matrix for AIPKit and AI Engine (every path gives the same outcome)."""
    lines = [
        "| fault | " + " | ".join(NEWER_PLUGINS) + " |",
        "|---|" + "---|" * len(NEWER_PLUGINS),
    ]
    for fault in PLUGIN_FAULTS:
        cells = [fault.expected(plugin) for plugin in NEWER_PLUGINS]
        lines.append(f"| {fault.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("plugin", NEWER_PLUGINS)
@pytest.mark.parametrize("fault", PLUGIN_FAULTS, ids=[f.name for f in PLUGIN_FAULTS])
async def test_fault_on_the_newer_plugins(fault: PluginFault, plugin: str, path: str) -> None:
    with Emulator(plugin=plugin) as site:
        site.stream = True
        cache = SiteCache()
        model = ChatChatGptEs(
            base_url=site.base_url, timeout=TIMEOUT, max_retries=2, site_cache=cache
        )
        await call(model, path, "warm up")  # page (and AI Engine session) cached
        site.responder = ScriptedResponder(fault.replies, fallback=lambda request: ANSWER)
        if fault.setup:
            name, value = fault.setup.split("=")
            if name == "advance":
                site.advance(float(value))
            elif name == "chunk_delay":
                site.chunk_delay = float(value)
            else:
                setattr(site, name, value)
            if name == "cloudflare" and value == "get":
                cache.clear()
        chat, pages = len(site.chat_requests()), len(site.page_requests())
        started = time.monotonic()
        if fault.outcome is None:
            answer = await call(model, path, "go")
            assert answer.text == fault.answer, f"{len(answer.text)} chars: {answer.text[:80]!r}"
        else:
            with pytest.raises(fault.outcome):
                await call(model, path, "go")
        elapsed = time.monotonic() - started
        made = (len(site.chat_requests()) - chat, len(site.page_requests()) - pages)
        assert made == fault.traffic(plugin), "(chat requests, page GETs) of the faulted call"
        requests = sum(fault.traffic(plugin))
        assert elapsed < TIMEOUT * requests + MARGIN + fault.extra_seconds


def test_the_docs_show_the_plugin_fault_matrix() -> None:
    page = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    assert plugin_matrix_markdown() in page, (
        "update the fault matrix in docs/reliability.md for the newer plugins:\n"
        + plugin_matrix_markdown()
    )
