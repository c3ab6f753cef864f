"""Where requests go: the page decides (after redirects), not the text of ``base_url``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from langchain_chatgptes import ChatChatGptEs, RateLimitError
from langchain_chatgptes.emulator import Emulator, Reply, ScriptedResponder

from .conftest import PATHS, call


@pytest.fixture
def moved(emulator: Emulator) -> Iterator[Emulator]:
    """The site's old address: every request there is redirected (301) to ``emulator``."""
    with Emulator(redirect_to=emulator.base_url) as old:
        yield old


@pytest.mark.parametrize("path", PATHS)
async def test_a_redirected_base_url_posts_where_the_page_ended_up(
    emulator: Emulator, moved: Emulator, path: str
) -> None:
    emulator.stream = path.endswith("stream")
    model = ChatChatGptEs(base_url=moved.base_url, max_retries=0)
    assert "moved site" in (await call(model, path, "moved site")).text
    # Only the page GET went to the old address; the POST went straight to the new one,
    # with Origin and Referer of the page's final URL (newer plugins refuse a foreign Origin).
    assert [(r.method, r.path) for r in moved.requests] == [("GET", "/")]
    (post,) = emulator.chat_requests()
    assert post.nonce_valid
    assert post.headers["origin"] == emulator.base_url
    assert post.headers["referer"] == emulator.base_url + "/"


@pytest.mark.parametrize("path", PATHS)
async def test_a_chat_page_on_a_sub_path_posts_to_the_sites_endpoint(
    emulator: Emulator, path: str
) -> None:
    emulator.stream = path.endswith("stream")
    model = ChatChatGptEs(base_url=emulator.base_url + "/chat", max_retries=0)
    assert "sub page" in (await call(model, path, "sub page")).text
    page, post = emulator.requests
    assert (page.method, page.path) == ("GET", "/chat/")
    assert (post.method, post.path) == ("POST", "/wp-admin/admin-ajax.php")
    assert post.form["url"] == emulator.base_url + "/chat"  # the chat box's data-url
    assert post.headers["referer"] == emulator.base_url + "/chat/"


@pytest.mark.parametrize("path", PATHS)
async def test_retry_after_longer_than_the_timeout_is_not_waited_for(
    emulator: Emulator, path: str
) -> None:
    emulator.stream = path.endswith("stream")
    too_many = Reply.raw(429, "Too Many Requests", headers={"Retry-After": "12"})
    emulator.responder = ScriptedResponder([too_many] * 3)
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=2, max_retries=2)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        await call(model, path)
    assert time.monotonic() - started < 1.0  # not 24 s: the caller (or with_retry) decides
    assert info.value.retry_after == 12
    assert len(emulator.chat_requests()) == 1


async def test_retry_after_within_the_timeout_is_waited_for(emulator: Emulator) -> None:
    wait = Reply.raw(429, "Too Many Requests", headers={"Retry-After": "0.6"})
    emulator.responder = ScriptedResponder([wait, "finally"])
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=2, max_retries=2)
    started = time.monotonic()
    assert (await model.ainvoke("x")).text == "finally"
    assert time.monotonic() - started >= 0.55
    assert len(emulator.chat_requests()) == 2
