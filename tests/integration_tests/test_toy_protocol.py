"""Adding a protocol, end to end: a toy chat plugin in one module, touching no package file.

The first part of this file (up to "the site") is the example of the "Adding a protocol"
guide (``docs/adding-a-protocol.md`` shows it verbatim; a test below keeps the two equal).
The rest drives it against a small server, as the model, the doctor and the policy would:
detection, ``plugin=``, retries, a nonce refresh, the cancellation invariant.
"""

# --- the protocol ---------------------------------------------------------------------------
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_chatgptes.errors import NonceRejectedError
from langchain_chatgptes.protocols import (
    BodyReader,
    Bot,
    BotState,
    Call,
    ChatInput,
    End,
    Event,
    Fact,
    Findings,
    HttpRequest,
    OneRequestCall,
    ReplyHead,
    SiteProtocol,
    Tag,
    TextDelta,
    WholeBodyReader,
    browser_headers,
    check_status,
    empty_answer,
    flatten,
    json_attribute,
    json_object,
    not_json,
    register_protocol,
    resolve,
    scan_bots,
    text_of,
)


@dataclass(frozen=True)
class FreshToken(Fact):
    """The token endpoint handed out ``token``."""

    token: str


def read_box(tag: Tag, page_url: str) -> Bot | tuple[str, ...] | None:
    """``<div class="toychat-box" data-toychat='{"id", "endpoint", "token"}'>``."""
    if "toychat-box" not in tag.classes:
        return None
    config = json_attribute(tag.attrs.get("data-toychat", ""))
    if not isinstance(config, dict):
        return ("configuration",)
    endpoint, token = text_of(config.get("endpoint")), text_of(config.get("token"))
    if not endpoint or not token:
        return ("endpoint or token",)
    return Bot(
        protocol="toychat",
        bot_id=text_of(config.get("id")) or "0",
        page_url=page_url,
        endpoint=resolve(page_url, endpoint),  # the trust rule checks where it points
        nonce=token,
        position=tag.start,
    )


class AnswerReader(WholeBodyReader):
    """``{"answer": ...}``; HTTP 403 means the token was refused."""

    def read(self, head: ReplyHead, body: bytearray) -> list[Event]:
        if head.status == 403:
            raise NonceRejectedError("The toy site refused the token.", status_code=403)
        check_status(head, body)  # 429, 5xx, Cloudflare: typed, and retried by the policy
        obj = json_object(body)
        if obj is None:
            raise not_json(body, head.status, "the toy site's JSON answer")
        answer = text_of(obj.get("answer"))
        if not answer.strip():
            raise empty_answer(head.status)
        return [TextDelta(answer), End("stop")]


class TokenReader(WholeBodyReader):
    """``{"token": ...}`` from the token endpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.token = ""

    def read(self, head: ReplyHead, body: bytearray) -> list[Event]:
        check_status(head, body)
        self.token = text_of((json_object(body) or {}).get("token"))
        return []

    def learned(self) -> Sequence[Fact]:
        return (FreshToken(self.token),) if self.token else ()


class ChatCall(OneRequestCall):
    """One JSON POST with the token and the whole conversation."""

    def __init__(self, bot: Bot, state: BotState, chat: ChatInput) -> None:
        self.sent_text = flatten(chat)
        self.body = json.dumps({"token": state.nonce, "message": self.sent_text})
        self.bot = bot

    def request(self) -> HttpRequest:
        headers = browser_headers(self.bot.page_url, "application/json")
        return HttpRequest("POST", self.bot.endpoint, headers, json=self.body, step="chat")

    def reader(self) -> BodyReader:
        return AnswerReader()


class TokenCall(OneRequestCall):
    """A fresh token without reading the page again."""

    def __init__(self, bot: Bot) -> None:
        self.bot, self.fresh = bot, ""

    def request(self) -> HttpRequest:
        url = resolve(self.bot.page_url, "/toychat/token")
        return HttpRequest("POST", url, browser_headers(self.bot.page_url, "*/*"), step="token")

    def reader(self) -> BodyReader:
        return TokenReader()

    def apply(self, fact: Fact) -> None:
        if isinstance(fact, FreshToken):
            self.fresh = fact.token

    def new_state(self) -> BotState | None:
        return BotState(self.fresh) if self.fresh else None


class ToyProtocol(SiteProtocol):
    """A toy chat plugin: a box with a token, one JSON POST per call, a token endpoint."""

    name = "toychat"
    label = "ToyChat box"
    looked_for = "a ToyChat box (div.toychat-box with data-toychat)"
    hints = (("[toychat", "a ToyChat shortcode left as text"),)
    step_labels = (("chat", "send prompt"),)
    refresh_step = "token"

    def find_bots(self, html: str, page_url: str) -> Findings:
        return scan_bots(html, lambda tag: read_box(tag, page_url))

    def start(self, bot: Bot, state: BotState, chat: ChatInput) -> Call:
        return ChatCall(bot, state, chat)

    def refresh(self, bot: Bot, state: BotState) -> Call | None:
        return TokenCall(bot)


def register() -> None:
    """Make ``plugin="toychat"`` work and read every page for ToyChat boxes too."""
    register_protocol(ToyProtocol())


# --- the site ---------------------------------------------------------------------------------
import asyncio  # noqa: E402 (the guide's example ends above)
import io  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from aiohttp import web  # noqa: E402

from langchain_chatgptes import ChatChatGptEs, HTTPStatusError  # noqa: E402
from langchain_chatgptes._doctor import run_doctor  # noqa: E402
from langchain_chatgptes._site_cache import SiteCache  # noqa: E402
from langchain_chatgptes.protocols import unregister_protocol  # noqa: E402

from .conftest import PATHS, call  # noqa: E402


class ToySite:
    """A small server: the page, the chat endpoint and the token endpoint."""

    def __init__(self) -> None:
        self.token = "tok-1"
        self.requests: list[tuple[str, str]] = []
        self.faults: list[int | float] = []  # a status to answer, or seconds to hang
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _page(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        config = json.dumps({"id": "t1", "endpoint": "/toychat/chat", "token": self.token})
        box = f"<div class='toychat-box' data-toychat='{config}'></div>"
        return web.Response(text=f"<html><body>{box}</body></html>", content_type="text/html")

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("POST", request.path))
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, float):
                await asyncio.sleep(fault)
            else:
                return web.Response(status=fault, text="busy")
        if body.get("token") != self.token:
            return web.json_response({"error": "bad token"}, status=403)
        typed = body["message"].rsplit("User input:", 1)[-1].strip()
        return web.json_response({"answer": f"toy says: {typed}"})

    async def _token(self, request: web.Request) -> web.Response:
        self.requests.append(("POST", request.path))
        return web.json_response({"token": self.token})

    def start(self) -> ToySite:
        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/", self._page)
            app.router.add_post("/toychat/chat", self._chat)
            app.router.add_post("/toychat/token", self._token)
            self._runner = web.AppRunner(app, shutdown_timeout=0.1)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]

        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(5)
        return self

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def toy() -> Iterator[ToySite]:
    register()
    site = ToySite().start()
    try:
        yield site
    finally:
        site.stop()
        unregister_protocol(ToyProtocol.name)


def model_for(site: ToySite, **settings: Any) -> ChatChatGptEs:
    settings = {"timeout": 5, "max_retries": 2, "site_cache": SiteCache(), **settings}
    return ChatChatGptEs(base_url=site.base_url, **settings)


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_the_page_is_detected_and_answers_on_every_path(toy: ToySite, path: str) -> None:
    answer = await call(model_for(toy), path, "hello toy")
    assert answer.text == "toy says: hello toy"
    assert answer.response_metadata["site_plugin"] == "toychat"
    assert toy.requests == [("GET", "/"), ("POST", "/toychat/chat")]


async def test_plugin_names_it_and_is_validated(toy: ToySite) -> None:
    assert (await model_for(toy, plugin="toychat").ainvoke("hi")).text == "toy says: hi"
    with pytest.raises(ValueError, match="'toychat'"):
        ChatChatGptEs(plugin="toy-chat")  # the error lists the known names, the toy's too


async def test_the_policy_retries_and_refreshes_its_token(toy: ToySite) -> None:
    model = model_for(toy)
    toy.faults = [503]
    assert (await model.ainvoke("retried")).text == "toy says: retried"
    toy.token = "tok-2"  # the page's token is stale now: one refresh, then the answer
    assert (await model.ainvoke("refreshed")).text == "toy says: refreshed"
    assert toy.requests[1:] == [
        ("POST", "/toychat/chat"),
        ("POST", "/toychat/chat"),
        ("POST", "/toychat/chat"),
        ("POST", "/toychat/token"),
        ("POST", "/toychat/chat"),
    ]
    toy.faults = [503, 503, 503]
    with pytest.raises(HTTPStatusError):
        await model.ainvoke("too many")


async def test_a_cancelled_call_frees_its_slot(toy: ToySite) -> None:
    model = model_for(toy, max_concurrency=1)
    await model.ainvoke("warm")
    toy.faults = [5.0]  # hang
    task = asyncio.create_task(model.ainvoke("hangs"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()  # the only slot is free: the next call starts at once
    assert (await model.ainvoke("quick")).text == "toy says: quick"
    assert time.monotonic() - started < 1.0


def test_the_doctor_checks_it(toy: ToySite) -> None:
    out = io.StringIO()
    assert run_doctor(toy.base_url, proxy=None, timeout=5, impersonate="chrome", out=out)
    report = out.getvalue()
    assert re.search(r"^read page\s+OK .*toychat bot t1", report, re.M), report
    assert re.search(r"^token\s+OK .*fresh nonces \(tok-1\)", report, re.M), report
    assert re.search(r"^send prompt\s+OK .*answer received", report, re.M), report


def test_the_guide_shows_this_example_verbatim() -> None:
    source = Path(__file__).read_text()
    example = source.split("# --- the protocol ---", 1)[1].split("# --- the site ---", 1)[0]
    example = example.split("\n", 1)[1].strip()
    guide = (Path(__file__).parents[2] / "docs" / "adding-a-protocol.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    assert example in [block.strip() for block in blocks]
