"""Against real sites: chatgpt.es with ``CHATGPTES_LIVE=1`` (``make test-live``), or any list
of sites with ``CHATGPTES_LIVE_URLS`` (e.g. the real WordPress sites of
``shared/conformance``: ``CHATGPTES_LIVE_URLS="http://127.0.0.1:8081/ http://127.0.0.1:8082/
http://127.0.0.1:8083/"``). Skipped otherwise: CI stays offline.

The sites are third parties: these tests tell whether they still speak the protocols the
package implements. Set CHATGPTES_PROXY to go through a proxy.
"""

from __future__ import annotations

import asyncio
import io
import os

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from langchain_chatgptes import BlockedError, ChatChatGptEs
from langchain_chatgptes._doctor import run_doctor
from langchain_chatgptes._policy import Pipeline, Settings
from langchain_chatgptes._sessions import Runtime, SessionOptions
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes._trust import page_url, site_url
from langchain_chatgptes.protocols import Page, choose_bot

LIVE_URL = "https://chatgpt.es"


def live_urls() -> list[str]:
    """The sites to check: CHATGPTES_LIVE_URLS (comma or space separated), or chatgpt.es."""
    listed = os.environ.get("CHATGPTES_LIVE_URLS", "").replace(",", " ").split()
    if listed:
        return listed
    return [LIVE_URL] if os.environ.get("CHATGPTES_LIVE") == "1" else []


URLS = live_urls()
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not URLS, reason="set CHATGPTES_LIVE=1 or CHATGPTES_LIVE_URLS to reach real sites"
    ),
]
PROXY = os.environ.get("CHATGPTES_PROXY") or None


def live_model(url: str) -> ChatChatGptEs:
    return ChatChatGptEs(base_url=url, timeout=90, max_retries=2, site_cache=SiteCache())


async def read_page(base_url: str) -> Page:
    """The live page as the model reads it (same session set-up, adapter and policy)."""
    runtime = Runtime(SessionOptions(proxy=PROXY))
    try:
        adapter = await runtime.adapter()
        settings = Settings(page_url(site_url(base_url)), 90)
        return await Pipeline(settings, SiteCache(), adapter).page()
    finally:
        await runtime.aclose()


def skip_if_blocked(error: BaseException) -> None:
    if isinstance(error, BlockedError):
        pytest.skip(f"blocked from this network: {error}")


@pytest.fixture(params=URLS or [LIVE_URL])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_live_page_has_a_bot(url: str) -> None:
    try:
        page = asyncio.run(read_page(url))
    except BlockedError as exc:
        skip_if_blocked(exc)
        raise
    bot = choose_bot(page)
    assert bot.endpoint.startswith(("http://", "https://"))


def test_live_invoke_and_stream(url: str) -> None:
    model = live_model(url)
    try:
        answer = model.invoke("Reply with the single word: pong")
    except BlockedError as exc:
        skip_if_blocked(exc)
        raise
    assert answer.text.strip()
    assert answer.response_metadata["site_plugin"]
    chunks: list[AIMessageChunk] = list(model.stream("Count from 1 to 5."))
    assert "".join(c.text for c in chunks).strip()
    assert chunks[-1].chunk_position == "last"


async def test_live_ainvoke_astream_and_a_conversation(url: str) -> None:
    model = live_model(url)
    try:
        answer = await model.ainvoke("Say hello in Spanish.")
    except BlockedError as exc:
        skip_if_blocked(exc)
        raise
    assert answer.text.strip()
    streamed = [chunk.text async for chunk in model.astream("¿Qué tal? ünïcödé ✓")]
    assert "".join(streamed).strip()
    conversation = [HumanMessage("Hi"), AIMessage("Hello!"), HumanMessage("And now?")]
    assert (await model.ainvoke(conversation)).text.strip()
    many = await model.abatch(["one", "two", "three"])
    assert all(message.text.strip() for message in many)


def test_live_doctor_is_healthy(url: str) -> None:
    out = io.StringIO()
    healthy = run_doctor(url, proxy=PROXY, timeout=90, impersonate="chrome", out=out)
    assert healthy, out.getvalue()


async def test_live_sites_behind_one_model_move_past_a_dead_one() -> None:
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback
    model = ChatChatGptEs(base_url=[dead, *URLS], timeout=90, site_cache=SiteCache())
    try:
        answer = await model.ainvoke("Which site answers?")
    except BlockedError as exc:
        skip_if_blocked(exc)
        raise
    assert answer.text.strip()
    assert answer.response_metadata["site_url"] != dead
    health = model.site_health()
    assert health[0].state == "cooling"
    assert any(record.state == "healthy" for record in health[1:])
