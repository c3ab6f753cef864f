"""The policy layer on scripted replies, without sockets (``scripted.ScriptedAdapter``)."""

from __future__ import annotations

import asyncio
import time

import pytest

from langchain_chatgptes import (
    HTTPStatusError,
    IncompleteAnswerError,
    NonceRejectedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseFormatError,
    TransportError,
)
from langchain_chatgptes._conversation import ChatInput, Turn, Visitor
from langchain_chatgptes._policy import Pipeline, Settings, StartGate
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes.protocols._base import Event, TextDelta

from .scripted import PAGE_URL, Scripted, ScriptedAdapter, json_answer, site

CHAT = ChatInput((Turn("user", "User", "hi"),), "", Visitor("0123456789", "uuid"))
EXPIRED = Scripted(403, [b"The link you followed has expired."])


def pipeline(adapter: ScriptedAdapter, **settings: float) -> Pipeline:
    return Pipeline(Settings(PAGE_URL, **settings), SiteCache(), adapter)  # type: ignore[arg-type]


async def answer(pipe: Pipeline) -> str:
    events: list[Event] = [event async for batch in pipe.chat(CHAT) for event in batch]
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def methods(adapter: ScriptedAdapter) -> list[str]:
    return [request.method for request in adapter.requests]


async def test_one_page_read_for_many_calls() -> None:
    adapter = ScriptedAdapter(site())
    pipe = pipeline(adapter)
    assert [await answer(pipe) for _ in range(3)] == ["default"] * 3
    assert methods(adapter) == ["GET", "POST", "POST", "POST"]
    post = adapter.requests[1]
    assert post.url == "https://site.example/wp-admin/admin-ajax.php"
    assert post.form is not None and dict(post.form)["_wpnonce"] == "a1b2c3d4e5"


async def test_concurrent_first_calls_share_one_page_read() -> None:
    adapter = ScriptedAdapter(site())
    pipe = pipeline(adapter)
    assert await asyncio.gather(*(answer(pipe) for _ in range(5))) == ["default"] * 5
    assert methods(adapter).count("GET") == 1


async def test_a_rejected_nonce_is_refreshed_once() -> None:
    adapter = ScriptedAdapter(site(EXPIRED, nonces=["old0000000", "new0000000"]))
    pipe = pipeline(adapter, max_retries=0)
    assert await answer(pipe) == "default"
    assert methods(adapter) == ["GET", "POST", "GET", "POST"]
    nonces = [dict(r.form or ())["_wpnonce"] for r in adapter.requests if r.method == "POST"]
    assert nonces == ["old0000000", "new0000000"]
    assert pipe.nonce_refreshes == 1


async def test_a_nonce_rejected_twice_is_an_error() -> None:
    adapter = ScriptedAdapter(site(EXPIRED, EXPIRED, Scripted(200, [json_answer("late")])))
    with pytest.raises(NonceRejectedError, match="freshly fetched nonce"):
        await answer(pipeline(adapter, max_retries=3))
    assert methods(adapter) == ["GET", "POST", "GET", "POST"]


@pytest.mark.parametrize(
    "failure",
    [
        Scripted(502, [b"Bad Gateway"]),
        Scripted(429, [b"slow down"], {"retry-after": "0"}),
        Scripted(error=TransportError("connection reset")),
    ],
    ids=["5xx", "429", "transport"],
)
async def test_transient_failures_are_retried(failure: Scripted) -> None:
    adapter = ScriptedAdapter(site(failure, Scripted(200, [json_answer("ok")])))
    assert await answer(pipeline(adapter, max_retries=1)) == "ok"
    assert methods(adapter) == ["GET", "POST", "POST"]


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (Scripted(error=RequestTimeoutError("slow")), RequestTimeoutError),
        (Scripted(200, [b"<html>maintenance</html>"]), ResponseFormatError),
        (Scripted(404, [b"gone"]), HTTPStatusError),
    ],
    ids=["timeout", "format", "4xx"],
)
async def test_what_a_retry_cannot_fix_is_not_retried(
    failure: Scripted, error: type[Exception]
) -> None:
    adapter = ScriptedAdapter(site(failure))
    with pytest.raises(error):
        await answer(pipeline(adapter, max_retries=3))
    assert methods(adapter) == ["GET", "POST"]


async def test_retries_stop_at_max_retries() -> None:
    adapter = ScriptedAdapter(site(*[Scripted(503, [b"busy"], {"retry-after": "0"})] * 5))
    with pytest.raises(HTTPStatusError):
        await answer(pipeline(adapter, max_retries=2))
    assert methods(adapter) == ["GET", "POST", "POST", "POST"]


async def test_nothing_is_retried_after_text_was_delivered() -> None:
    cut = Scripted(
        200,
        [b'data: {"choices":[{"delta":{"content":"Hal"}}]}\n\n'],
        error=TransportError("reset mid-stream"),
    )
    adapter = ScriptedAdapter(site(cut, streams=True))
    pipe = pipeline(adapter, max_retries=3)
    received: list[str] = []

    async def consume() -> None:
        async for batch in pipe.chat(CHAT):
            received.extend(event.text for event in batch if isinstance(event, TextDelta))

    # A connection that breaks after part of the answer is a cut answer, like a stream
    # that ends before its end marker (one rule for every way an answer can be cut).
    with pytest.raises(IncompleteAnswerError) as info:
        await consume()
    assert isinstance(info.value.__cause__, TransportError)
    assert info.value.is_retryable
    assert received == ["Hal"]
    assert methods(adapter) == ["GET", "POST"]


async def test_retry_after_beyond_the_timeout_is_raised_at_once() -> None:
    adapter = ScriptedAdapter(site(Scripted(429, [b"wait"], {"retry-after": "30"})))
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        await answer(pipeline(adapter, timeout=5, max_retries=2))
    assert time.monotonic() - started < 1
    assert info.value.retry_after == 30
    assert methods(adapter) == ["GET", "POST"]


async def test_retry_after_is_capped_without_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    adapter = ScriptedAdapter(site(Scripted(429, [b"wait"], {"retry-after": "3600"})))
    assert await answer(pipeline(adapter, timeout=None, max_retries=1)) == "default"  # type: ignore[arg-type]
    assert waits == [30.0]


async def test_page_fetch_failures_reach_every_waiting_caller_once() -> None:
    def handle(request: object) -> Scripted:
        return Scripted(403, [b"<title>Just a moment...</title>"], delay=0.05)

    adapter = ScriptedAdapter(handle)
    pipe = pipeline(adapter, max_retries=0)
    outcomes = await asyncio.gather(*(answer(pipe) for _ in range(4)), return_exceptions=True)
    assert all(type(outcome).__name__ == "BlockedError" for outcome in outcomes)
    assert methods(adapter) == ["GET"]


async def test_a_cancelled_page_fetch_hands_over_to_a_waiting_caller() -> None:
    slow_page = site()

    def handle(request: object) -> Scripted:
        reply = slow_page(request)  # type: ignore[arg-type]
        if len(adapter.requests) == 1:
            reply.delay = 10.0  # the first page fetch hangs; its caller gives up
        return reply

    adapter = ScriptedAdapter(handle)
    pipe = pipeline(adapter)
    first = asyncio.create_task(answer(pipe))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(answer(pipe))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await asyncio.wait_for(second, 2) == "default"
    assert methods(adapter) == ["GET", "GET", "POST"]
    assert adapter.open_now == 0


# --- the start gate ---------------------------------------------------------------------------


async def test_a_lone_call_passes_the_gate_without_waiting() -> None:
    gate = StartGate()
    loop = asyncio.get_running_loop()
    iterations = 0

    def tick() -> None:
        nonlocal iterations
        iterations += 1

    for _ in range(3):
        loop.call_soon(tick)
        before = iterations
        await gate.turn()
        assert iterations == before  # no loop iteration went by
        await asyncio.sleep(0)  # the next call comes later (as sequential calls do)


async def test_calls_started_together_pass_one_per_iteration() -> None:
    gate = StartGate()
    loop = asyncio.get_running_loop()
    passed: list[float] = []
    iteration = 0

    def count() -> None:
        nonlocal iteration
        iteration += 1
        loop.call_soon(count)

    loop.call_soon(count)

    async def start() -> None:
        await gate.turn()
        passed.append(iteration)

    await asyncio.gather(*(start() for _ in range(6)))
    assert len(set(passed)) == 6  # no two in the same iteration
    assert passed == sorted(passed)  # in the order they came


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    gate = StartGate()
    order: list[str] = []

    async def start(name: str) -> None:
        await gate.turn()
        order.append(name)

    first = asyncio.create_task(start("first"))
    second = asyncio.create_task(start("second"))
    third = asyncio.create_task(start("third"))
    await asyncio.sleep(0)  # all three came; the first went through
    second.cancel()
    await asyncio.wait_for(asyncio.gather(first, third), 1)
    assert order == ["first", "third"]
    assert second.cancelled()
