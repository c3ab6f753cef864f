"""Against the real https://chatgpt.es: only with CHATGPTES_LIVE=1 (``make test-live``).

The site is a third party: these tests tell whether it still speaks the protocol the
package implements. Set CHATGPTES_PROXY to go through a proxy.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_chatgptes import BlockedError, ChatChatGptEs
from langchain_chatgptes._policy import Pipeline, Settings
from langchain_chatgptes._sessions import Runtime, SessionOptions
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes.protocols import Page, choose_bot

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("CHATGPTES_LIVE") != "1", reason="set CHATGPTES_LIVE=1 to reach chatgpt.es"
    ),
]

LIVE_URL = "https://chatgpt.es"


@pytest.fixture
def live_model() -> ChatChatGptEs:
    return ChatChatGptEs(base_url=LIVE_URL, timeout=90, max_retries=2, site_cache=SiteCache())


async def read_page(base_url: str) -> Page:
    """The live page as the model reads it (same session set-up, adapter and policy)."""
    runtime = Runtime(SessionOptions(proxy=os.environ.get("CHATGPTES_PROXY") or None))
    try:
        adapter = await runtime.adapter()
        return await Pipeline(Settings(base_url + "/", 90), SiteCache(), adapter).page()
    finally:
        await runtime.aclose()


def test_live_page_has_a_chat_box(live_model: ChatChatGptEs) -> None:
    try:
        page = asyncio.run(read_page(LIVE_URL))
    except BlockedError as exc:
        pytest.skip(f"blocked from this network: {exc}")
    assert choose_bot(page).nonce


def test_live_invoke_and_stream(live_model: ChatChatGptEs) -> None:
    try:
        answer = live_model.invoke("Reply with the single word: pong")
    except BlockedError as exc:
        pytest.skip(f"blocked from this network: {exc}")
    assert answer.text.strip()
    chunks: list[AIMessageChunk] = list(live_model.stream("Count from 1 to 5."))
    assert "".join(c.text for c in chunks).strip()
    assert chunks[-1].chunk_position == "last"


async def test_live_ainvoke(live_model: ChatChatGptEs) -> None:
    try:
        answer = await live_model.ainvoke("Say hello in Spanish.")
    except BlockedError as exc:
        pytest.skip(f"blocked from this network: {exc}")
    assert answer.text.strip()
