"""The seam: your own curl_cffi sessions (``http_client``, ``http_async_client``) and cache."""

from __future__ import annotations

import copy
import pickle
from collections.abc import AsyncIterator, Iterator

import pytest
from curl_cffi.requests import AsyncSession, Response, Session

from langchain_chatgptes import ChatChatGptEs, InvalidInputError
from langchain_chatgptes._sessions import IOThread
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes.emulator import Emulator

from .conftest import summed


@pytest.fixture
def sync_session() -> Iterator[Session[Response]]:
    with Session(impersonate="safari", headers={"X-Session": "sync"}) as session:
        yield session


@pytest.fixture
async def async_session() -> AsyncIterator[AsyncSession[Response]]:
    async with AsyncSession(impersonate="firefox", headers={"X-Session": "async"}) as session:
        yield session


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_sync_methods_use_your_session(
    emulator: Emulator, sync_session: Session[Response], stream: bool
) -> None:
    emulator.stream = stream
    model = ChatChatGptEs(base_url=emulator.base_url, http_client=sync_session)
    assert "mine" in model.invoke("mine").text
    assert "streamed" in summed(list(model.stream("streamed"))).text
    assert all(request.headers.get("x-session") == "sync" for request in emulator.requests)
    assert "Safari" in emulator.requests[0].headers["user-agent"]
    model.close()
    assert not sync_session._closed  # the model never closes a session it was given
    assert "again" in model.invoke("again").text


def test_sync_methods_take_an_async_session_too(emulator: Emulator) -> None:
    # The sync methods run on the package's I/O thread, where this session gets bound.
    session: AsyncSession[Response] = AsyncSession(headers={"X-Session": "io"})
    model = ChatChatGptEs(base_url=emulator.base_url, http_client=session)
    assert "on the io loop" in model.invoke("on the io loop").text
    assert all(request.headers.get("x-session") == "io" for request in emulator.requests)
    IOThread.get().run(session.close())  # it is ours to close, on the loop it is bound to


async def test_async_methods_use_your_async_session(
    emulator: Emulator, async_session: AsyncSession[Response]
) -> None:
    model = ChatChatGptEs(base_url=emulator.base_url, http_async_client=async_session)
    assert "async mine" in (await model.ainvoke("async mine")).text
    chunks = [chunk async for chunk in model.astream("async streamed")]
    assert "async streamed" in summed(chunks).text
    assert all(request.headers.get("x-session") == "async" for request in emulator.requests)
    assert "Firefox" in emulator.requests[0].headers["user-agent"]
    await model.aclose()
    assert not async_session._closed
    assert "still" in (await model.ainvoke("still")).text


def test_copies_share_your_sessions_and_pickles_leave_them_out(
    emulator: Emulator, sync_session: Session[Response]
) -> None:
    cache = SiteCache()
    model = ChatChatGptEs(base_url=emulator.base_url, http_client=sync_session, site_cache=cache)
    model.invoke("warm up")
    for duplicate in (copy.copy(model), copy.deepcopy(model), model.model_copy(deep=True)):
        assert duplicate.http_client is sync_session
        assert duplicate.site_cache is cache
        assert "copy" in duplicate.invoke("copy").text
    restored = pickle.loads(pickle.dumps(model))  # noqa: S301 (our own object)
    assert restored.http_client is None and restored.site_cache is None
    assert restored.base_url == model.base_url
    assert "restored" in restored.invoke("restored").text
    assert len(emulator.page_requests()) == 2  # the copies used the given cache; the pickle not


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"proxy": "http://proxy.example:3128"}, "proxy"),
        ({"impersonate": "safari"}, "impersonate"),
        ({"verify": False}, "verify"),
    ],
)
@pytest.mark.parametrize("field", ["http_client", "http_async_client"])
def test_a_session_with_session_settings_is_bad_input(
    settings: dict[str, object], named: str, field: str
) -> None:
    session: object = AsyncSession() if field == "http_async_client" else Session()
    with pytest.raises(InvalidInputError, match=f"{named} cannot be combined with http_"):
        ChatChatGptEs(**{field: session}, **settings)


@pytest.mark.parametrize(
    ("field", "value"),
    [("http_client", object()), ("http_async_client", Session())],
)
def test_something_else_than_a_session_is_bad_input(field: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=f"{field} must be a curl_cffi"):
        ChatChatGptEs(**{field: value})


def test_models_share_the_process_cache_unless_given_their_own(emulator: Emulator) -> None:
    shared_a = ChatChatGptEs(base_url=emulator.base_url)
    shared_b = ChatChatGptEs(base_url=emulator.base_url)
    isolated = ChatChatGptEs(base_url=emulator.base_url, site_cache=SiteCache())
    for model in (shared_a, shared_b, isolated):
        model.invoke("x")
    assert len(emulator.page_requests()) == 2
