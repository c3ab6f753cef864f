"""ChatChatGptEs against the local emulator over loopback: what is sent and received."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_chatgptes import (
    BlockedError,
    ChatChatGptEs,
    ChatGptEsError,
    ConsentRequiredError,
    HTTPStatusError,
    InvalidInputError,
    NonceNotFoundError,
    NonceRejectedError,
    RateLimitError,
    RequestTimeoutError,
    ResponseFormatError,
    SiteError,
    TransportError,
)
from langchain_chatgptes._prompt import build_message
from langchain_chatgptes.emulator import Emulator, Reply, ScriptedResponder

from .conftest import PATHS, RecordingProxy, call, summed

MODES = [pytest.param(False, id="json"), pytest.param(True, id="sse")]


# --- the four paths and batches -----------------------------------------------------------


@pytest.mark.parametrize("stream", MODES)
async def test_every_path_returns_the_site_answer(emulator: Emulator, stream: bool) -> None:
    emulator.stream = stream
    emulator.responder = ScriptedResponder(["uno", "dos", "tres", "cuatro", "cinco", "seis"])
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=5)
    assert model.invoke("a").content == "uno"
    assert (await model.ainvoke("b")).content == "dos"
    assert summed(list(model.stream("c"))).content == "tres"
    assert summed([c async for c in model.astream("d")]).content == "cuatro"
    assert sorted(m.content for m in model.batch(["e", "f"])) == ["cinco", "seis"]
    await model.aclose()


@pytest.mark.parametrize("stream", MODES)
async def test_abatch(emulator: Emulator, stream: bool) -> None:
    emulator.stream = stream
    emulator.page_latency = 0.2
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=5)
    results = await model.abatch([f"question {i}" for i in range(8)])
    assert all(f"question {i}" in r.text for i, r in enumerate(results))
    assert len(emulator.chat_requests()) == 8
    assert len(emulator.page_requests()) == 1  # concurrent callers share one page fetch


def test_threads_share_one_page_fetch(emulator: Emulator) -> None:
    emulator.page_latency = 0.2
    model = ChatChatGptEs(base_url=emulator.base_url)
    assert len(model.batch([f"q{i}" for i in range(6)], config={"max_concurrency": 6})) == 6
    assert len(emulator.page_requests()) == 1


def test_sync_invoke_works_inside_a_running_event_loop(model: ChatChatGptEs) -> None:
    # What Jupyter does: a loop is already running in this thread.
    async def inside() -> str:
        return model.invoke("from a notebook").text

    assert "from a notebook" in asyncio.run(inside())


# --- what goes over the wire ------------------------------------------------------------------


def test_every_form_field_of_the_post(emulator: Emulator, model: ChatChatGptEs) -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Hola"),
        AIMessage("¡Hola!"),
        HumanMessage("¿Qué tal?"),
    ]
    model.invoke(messages)
    model.invoke("second call")
    page, first, second = emulator.requests
    assert (page.method, page.path) == ("GET", "/")
    assert first.method == "POST" and first.path == "/wp-admin/admin-ajax.php"
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    assert first.nonce_valid is True
    assert first.form == {
        "_wpnonce": emulator.current_nonce(),
        "post_id": "2173",
        "url": emulator.base_url,
        "action": "wpaicg_chat_shortcode_message",
        "message": build_message(messages),
        "bot_id": "0",
        "chatbot_identity": "shortcode",
        "wpaicg_chat_client_id": model._client_id,
        "wpaicg_chat_history": "[]",
    }
    assert list(first.form) == list(second.form)  # same order every time
    assert second.form["wpaicg_chat_client_id"] == first.form["wpaicg_chat_client_id"]
    assert second.form["message"].endswith(" second call")


def test_impersonation_brings_its_own_user_agent(emulator: Emulator, model: ChatChatGptEs) -> None:
    model.invoke("hi")
    for request in emulator.requests:
        assert "Chrome/" in request.headers["user-agent"]
        assert "sec-ch-ua" in request.headers
    post = emulator.chat_requests()[0]
    assert post.headers["origin"] == emulator.base_url
    assert post.headers["referer"] == emulator.base_url + "/"


def test_multi_turn_reaches_the_model_as_one_text(emulator: Emulator, model: ChatChatGptEs) -> None:
    history = [
        HumanMessage("My name is Ana."),
        AIMessage("Nice to meet you, Ana."),
        HumanMessage("Name?"),
    ]
    model.invoke(history)
    message = emulator.chat_requests()[0].form["message"]
    assert message.endswith(
        "User: My name is Ana.\nAssistant: Nice to meet you, Ana.\nUser: Name?\nAssistant:"
    )


def test_two_instances_look_like_two_browsers(emulator: Emulator) -> None:
    a = ChatChatGptEs(base_url=emulator.base_url)
    b = ChatChatGptEs(base_url=emulator.base_url)
    a.invoke("x")
    b.invoke("y")
    ids = {r.form["wpaicg_chat_client_id"] for r in emulator.chat_requests()}
    assert len(ids) == 2


# --- the page and its nonce -----------------------------------------------------------------


async def test_one_page_get_for_many_calls_and_instances(emulator: Emulator) -> None:
    models = [ChatChatGptEs(base_url=emulator.base_url) for _ in range(3)]
    for model in models:
        model.invoke("sync")
        await model.ainvoke("async")
        list(model.stream("stream"))
    assert len(emulator.page_requests()) == 1
    assert len(emulator.chat_requests()) == 9


def test_construction_does_no_network_io(emulator: Emulator) -> None:
    for _ in range(5):
        ChatChatGptEs(base_url=emulator.base_url)
    assert emulator.requests == []


@pytest.mark.parametrize("failure", ["modern", "legacy"])
@pytest.mark.parametrize("stream", MODES)
async def test_expired_nonce_is_refreshed_transparently(
    emulator: Emulator, failure: str, stream: bool
) -> None:
    emulator.nonce_failure = failure  # type: ignore[assignment]
    emulator.stream = stream
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=0)
    model.invoke("first")
    emulator.advance(3 * 86400)  # the cached nonce is now two days too old
    assert "second" in model.invoke("second").text
    emulator.advance(3 * 86400)
    assert "third" in (await model.ainvoke("third")).text
    emulator.advance(3 * 86400)
    assert "fourth" in summed(list(model.stream("fourth"))).text
    emulator.advance(3 * 86400)
    assert "fifth" in summed([c async for c in model.astream("fifth")]).text
    kinds = [(r.method, r.nonce_valid) for r in emulator.requests]
    assert (
        kinds
        == [("GET", None), ("POST", True)] + [("POST", False), ("GET", None), ("POST", True)] * 4
    )


STALE_PAGE_REPLIES = {
    # What the endpoint says when the page keeps serving a nonce it no longer accepts
    # (e.g. a caching plugin with a stale copy of the page).
    "modern": Reply.raw(403, "The link you followed has expired."),
    "legacy": Reply.raw(
        200, '{"status":"error","msg":"Nonce verification failed"}', "application/json"
    ),
}


@pytest.mark.parametrize("failure", ["modern", "legacy"])
def test_nonce_rejected_after_refresh_is_an_error(emulator: Emulator, failure: str) -> None:
    emulator.responder = lambda request: STALE_PAGE_REPLIES[failure]
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=3)
    with pytest.raises(NonceRejectedError, match="freshly fetched nonce"):
        model.invoke("x")
    assert [r.method for r in emulator.requests] == ["GET", "POST", "GET", "POST"]


def test_page_without_chat_box_says_what_was_looked_for(emulator: Emulator) -> None:
    # The chat box is found by the plugin's class and data attributes, so a page without
    # one says what was looked for rather than which attribute was missing.
    emulator.page_variant = "no_chat_box"
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=2)
    with pytest.raises(NonceNotFoundError, match=r"shows no chat bot .* looked for") as info:
        model.invoke("x")
    assert info.value.missing == ()
    # Every protocol's chat box is named (the legacy one among them).
    assert any("div.wpaicg-chat-shortcode" in item for item in info.value.looked_for)
    assert any("div.aipkit_chat_container" in item for item in info.value.looked_for)
    assert [r.method for r in emulator.requests] == ["GET"]  # nothing posted, not retried


def test_chat_box_without_any_nonce_says_what_is_missing(emulator: Emulator) -> None:
    emulator.page_variant = "no_nonce"
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=2)
    with pytest.raises(NonceNotFoundError, match=r"missing the nonce \(data-nonce") as info:
        model.invoke("x")
    assert info.value.missing == ("nonce",)
    assert [r.method for r in emulator.requests] == ["GET"]


@pytest.mark.parametrize("path", PATHS)
async def test_chat_box_without_data_nonce_uses_the_search_nonce(
    emulator: Emulator, path: str
) -> None:
    # Caching and optimisation plugins strip or defer attributes: the box is still the
    # plugin's chat box, and wpaicgParams.search_nonce is as valid as data-nonce.
    emulator.page_variant = "no_data_nonce"
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=0)
    assert "found" in (await call(model, path, "found")).text
    (post,) = emulator.chat_requests()
    assert post.nonce_valid and post.form["post_id"] == emulator.post_id


# --- streaming --------------------------------------------------------------------------------


async def test_sse_chunks_arrive_before_the_answer_ends(emulator: Emulator) -> None:
    emulator.stream = True
    emulator.chunk_delay = 0.15
    emulator.responder = ScriptedResponder(["one two three four five six"] * 2)
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=5)
    sync_arrivals = [(time.monotonic(), chunk.text) for chunk in model.stream("go")]
    async_arrivals = [(time.monotonic(), chunk.text) async for chunk in model.astream("go")]
    for arrivals in (sync_arrivals, async_arrivals):
        texts = [text for _, text in arrivals if text]
        assert "".join(texts) == "one two three four five six"
        assert len(texts) >= 4
        # The first words reached us while the emulator was still sending the rest.
        assert arrivals[-1][0] - arrivals[0][0] >= 3 * 0.15


@pytest.mark.parametrize("stream", MODES)
def test_metadata_and_usage_on_exactly_one_chunk(emulator: Emulator, stream: bool) -> None:
    emulator.stream = stream
    model = ChatChatGptEs(base_url=emulator.base_url)
    chunks = list(model.stream("hello there"))
    assert chunks[-1].chunk_position == "last"
    with_usage = [c for c in chunks if c.usage_metadata]
    with_meta = [c for c in chunks if c.response_metadata.get("model_name")]
    assert len(with_usage) == len(with_meta) == 1
    total = summed(chunks)
    assert total.response_metadata["model_provider"] == "chatgptes"
    assert total.response_metadata["finish_reason"] == "stop"
    assert total.response_metadata["usage_is_estimate"] is True
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] > 0


@pytest.mark.parametrize("stream", MODES)
def test_stop_sequence_split_across_chunks(emulator: Emulator, stream: bool) -> None:
    emulator.stream = stream
    emulator.responder = ScriptedResponder(["Hello there, general Kenobi"] * 4)
    model = ChatChatGptEs(base_url=emulator.base_url, stop=["re, gen"])
    assert model.invoke("x").text == "Hello the"
    streamed = summed(list(model.stream("x")))
    assert streamed.text == "Hello the"
    assert streamed.response_metadata["finish_reason"] == "stop"
    assert model.invoke("x", stop=["Kenobi"]).text == "Hello there, general "


@pytest.mark.parametrize("stream", MODES)
async def test_max_tokens_truncates_with_length(emulator: Emulator, stream: bool) -> None:
    emulator.stream = stream
    emulator.responder = ScriptedResponder(["x" * 400] * 2)
    model = ChatChatGptEs(base_url=emulator.base_url, max_tokens=10)
    message = model.invoke("x")
    assert message.text == "x" * 40
    assert message.response_metadata["finish_reason"] == "length"
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] == 10
    streamed = summed([c async for c in model.astream("x")])
    assert streamed.text == "x" * 40


@pytest.mark.parametrize("path", PATHS)
async def test_the_sites_finish_reason_is_reported(emulator: Emulator, path: str) -> None:
    emulator.stream = True
    chunks = [
        {"choices": [{"delta": {"content": "cut sh"}}]},
        {"choices": [{"delta": {}, "finish_reason": "length"}]},
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    emulator.responder = lambda request: Reply.raw(200, body, "text/event-stream")
    answer = await call(ChatChatGptEs(base_url=emulator.base_url), path)
    assert answer.text == "cut sh"
    assert answer.response_metadata["finish_reason"] == "length"


def test_per_call_model_label(emulator: Emulator, model: ChatChatGptEs) -> None:
    assert model.invoke("x", model="gpt-4o-mini").response_metadata["model_name"] == "gpt-4o-mini"


# --- the site's errors ----------------------------------------------------------------------


ERRORS = [
    (Reply.site_error("Incorrect API key provided."), SiteError, "Incorrect API key"),
    (Reply.exception("Upstream exploded"), SiteError, "Upstream exploded"),
    (Reply.token_limit(), RateLimitError, "token limit"),
    (
        Reply.flag("ipBanned", "You are not allowed to access this feature."),
        SiteError,
        "not allowed",
    ),
    (Reply.flag("messageFlagged", "Flagged."), SiteError, "Flagged"),
    (Reply.checkbox(), ConsentRequiredError, "Kästchen"),
    (Reply.raw(500, "<h1>Internal Server Error</h1>"), HTTPStatusError, "HTTP 500"),
    (Reply.raw(200, "<html>maintenance</html>"), ResponseFormatError, "HTML page"),
    (
        Reply.raw(200, '{"status":"success","data":""}', "application/json"),
        ResponseFormatError,
        "empty answer",
    ),
    (Reply.raw(200, "data: [DONE]\n\n", "text/event-stream"), ResponseFormatError, "empty"),
    (Reply.raw(429, "Too Many Requests", headers={"Retry-After": "0"}), RateLimitError, "429"),
]


@pytest.mark.parametrize(("reply", "error", "match"), ERRORS)
@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize("path", PATHS)
async def test_each_error_body_maps_to_its_class(
    emulator: Emulator,
    reply: Reply,
    error: type[ChatGptEsError],
    match: str,
    stream: bool,
    path: str,
) -> None:
    emulator.stream = stream
    emulator.responder = ScriptedResponder(
        [reply], fallback=lambda request: Reply.raw(599, "unexpected second call")
    )
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=0, timeout=5)
    with pytest.raises(error, match=match):
        await call(model, path)
    assert len(emulator.chat_requests()) == 1


def test_banned_words_and_empty_message_errors(emulator: Emulator, model: ChatChatGptEs) -> None:
    emulator.banned_words = ["forbidden"]
    with pytest.raises(SiteError, match="prohibited words") as info:
        model.invoke("this is forbidden talk")
    assert "prohibited words" in info.value.site_message


def test_checkbox_mode_of_the_site(emulator: Emulator, model: ChatChatGptEs) -> None:
    emulator.checkbox_field = "check_51710191"
    with pytest.raises(ConsentRequiredError):
        model.invoke("x")


@pytest.mark.parametrize("where", ["get", "post"])
def test_cloudflare_challenge_is_blocked(
    emulator: Emulator, model: ChatChatGptEs, where: str
) -> None:
    emulator.cloudflare = where  # type: ignore[assignment]
    with pytest.raises(BlockedError, match="proxy") as info:
        model.invoke("x")
    assert info.value.status_code == 403


# --- retries, proxy and time limits -------------------------------------------------------------


@pytest.mark.parametrize("stream", MODES)
async def test_server_errors_are_retried_up_to_max_retries(
    emulator: Emulator, stream: bool
) -> None:
    emulator.stream = stream
    emulator.responder = ScriptedResponder([Reply.raw(502, "Bad Gateway"), "recovered"])
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=1)
    assert (await model.ainvoke("x")).text == "recovered"
    emulator.responder = ScriptedResponder([Reply.raw(502, "Bad Gateway"), "recovered"])
    with pytest.raises(HTTPStatusError):
        ChatChatGptEs(base_url=emulator.base_url, max_retries=0).invoke("x")


@pytest.mark.parametrize("path", PATHS)
async def test_proxy_carries_page_get_and_post(
    emulator: Emulator, proxy: RecordingProxy, path: str
) -> None:
    emulator.stream = path.endswith("stream")
    model = ChatChatGptEs(
        base_url=emulator.base_url, proxy=f"http://alice:s3cret@127.0.0.1:{proxy.port}"
    )
    assert "via proxy" in (await call(model, path, "via proxy")).text
    credentials = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert proxy.seen == [
        ("GET", emulator.base_url + "/", credentials),
        ("POST", emulator.base_url + "/wp-admin/admin-ajax.php", credentials),
    ]


async def test_dead_proxy_is_a_transport_error_without_credentials(emulator: Emulator) -> None:
    model = ChatChatGptEs(
        base_url=emulator.base_url, proxy="http://alice:s3cret@127.0.0.1:9", max_retries=0
    )
    for path in PATHS:
        with pytest.raises(TransportError) as info:
            await call(model, path)
        assert "s3cret" not in str(info.value)
    assert emulator.requests == []


@pytest.mark.parametrize("path", PATHS)
async def test_timeout_is_enforced(emulator: Emulator, path: str) -> None:
    emulator.latency = 3.0
    emulator.stream = path.endswith("stream")
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError) as info:
        await call(model, path)
    assert time.monotonic() - started < 2.5
    assert isinstance(info.value, TimeoutError)


@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_stream_idle_timeout_between_chunks(emulator: Emulator, path: str) -> None:
    emulator.stream = True
    emulator.chunk_delay = 3.0
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError, match="next chunk"):
        await call(model, path)
    assert time.monotonic() - started < 2.5


async def test_max_concurrency_bounds_requests_in_flight(emulator: Emulator) -> None:
    emulator.latency = 0.3
    model = ChatChatGptEs(base_url=emulator.base_url, max_concurrency=3)
    await model.ainvoke("warm the page cache")
    started = time.monotonic()
    await asyncio.gather(*(model.ainvoke(f"q{i}") for i in range(6)))
    elapsed = time.monotonic() - started
    assert 2 * 0.3 <= elapsed < 3 * 0.3  # two waves of three, not one wave of six


async def test_async_calls_do_not_block_the_event_loop(emulator: Emulator) -> None:
    emulator.latency = 0.4
    model = ChatChatGptEs(base_url=emulator.base_url)
    await model.ainvoke("warm the page cache")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.gather(model.ainvoke("a"), model.ainvoke("b"), model.ainvoke("c"))
    task.cancel()
    # 0.4 s of waiting on the site at 10 ms per tick: a blocked loop would tick ~0 times.
    assert ticks >= 15


async def test_sessions_are_reused_across_calls(emulator: Emulator, model: ChatChatGptEs) -> None:
    model.invoke("a")
    model.invoke("b")
    await model.ainvoke("c")
    await model.ainvoke("d")
    a, b, c, d = (request.peer for request in emulator.chat_requests())
    assert a == b  # the sync calls' kept-alive connection
    assert c == d and c != a  # the event loop's own session and connection
    await model.aclose()
    model.invoke("e")
    await model.ainvoke("f")
    e, f = (request.peer for request in emulator.chat_requests()[4:])
    assert e != a and f != c  # closed: new sessions, new connections


def test_sessions_of_finished_event_loops_are_let_go(emulator: Emulator) -> None:
    model = ChatChatGptEs(base_url=emulator.base_url)
    for _ in range(4):
        asyncio.run(model.ainvoke("x"))  # a new loop each time, as scripts do
    # Only the last loop's state can still be held (and only until the next async call).
    assert model._get_runtime().loop_count <= 1


def test_changing_a_setting_closes_the_old_session(emulator: Emulator) -> None:
    model = ChatChatGptEs(base_url=emulator.base_url)
    model.invoke("x")
    old = model._get_runtime()
    model.timeout = 7
    model.max_concurrency = 8
    assert "x" in model.invoke("x").text
    assert model._get_runtime() is not old
    assert old.loop_count == 0
    first, second = (request.peer for request in emulator.chat_requests())
    assert first != second


# --- what is not retried, and what is ------------------------------------------------------------


async def test_abandoned_streams_are_aborted_and_free_their_connections(
    emulator: Emulator,
) -> None:
    emulator.stream = True
    emulator.latency = 1.0
    emulator.chunk_delay = 0.2
    long_answer = " ".join(["slow"] * 100)  # ~20 s to send if nobody aborted it
    emulator.responder = lambda request: long_answer if "slow" in request.message else "ok"
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=0.5, max_retries=0, max_concurrency=4)
    outcomes = await asyncio.gather(
        *(call(model, "astream", "slow") for _ in range(6)), return_exceptions=True
    )  # more than the model's 4 connections
    gave_up = time.time()
    assert all(isinstance(outcome, RequestTimeoutError) for outcome in outcomes)
    emulator.latency = 0.0
    started = time.monotonic()
    with contextlib.suppress(RequestTimeoutError):
        await call(model, "ainvoke", "quick")  # all connections still taken: may time out ...
    assert time.monotonic() - started < 0.5 + 0.3  # ... but within its own limit
    await asyncio.sleep(0.8)  # the slow replies have started: their transfers are aborted
    assert (await call(model, "ainvoke", "quick")).text == "ok"
    # A connection freed by an aborted transfer may serve a caller still waiting, but no
    # request is sent once its caller has given up (the emulator notes a request a moment
    # after it was sent: 0.2 s of slack, while a request sent late would come seconds later).
    slow = [r for r in emulator.chat_requests() if "slow" in r.form["message"]]
    assert 4 <= len(slow) <= 6
    assert all(request.time <= gave_up + 0.2 for request in slow)


@pytest.mark.parametrize("path", PATHS)
async def test_long_streamed_answers_are_limited_per_silence_not_in_total(
    emulator: Emulator, path: str
) -> None:
    emulator.stream = True
    emulator.chunk_delay = 0.1
    emulator.responder = ScriptedResponder([" ".join(["word"] * 12)])
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=0.5, max_retries=0)
    started = time.monotonic()
    assert (await call(model, path)).text == " ".join(["word"] * 12)
    assert time.monotonic() - started > 0.5  # longer than `timeout`, yet no timeout


@pytest.mark.parametrize("path", PATHS)
async def test_timeouts_are_not_retried(emulator: Emulator, path: str) -> None:
    emulator.stream = path.endswith("stream")
    emulator.latency = 1.0
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=0.3, max_retries=3)
    with pytest.raises(RequestTimeoutError):
        await call(model, path)
    assert len(emulator.chat_requests()) == 1


@pytest.mark.parametrize("path", PATHS)
async def test_nothing_is_retried_after_text_was_delivered(emulator: Emulator, path: str) -> None:
    emulator.stream = True
    cut_short = "data: " + json.dumps({"choices": [{"delta": {"content": "Hal"}}]}) + "\n\n"
    emulator.responder = ScriptedResponder(
        [Reply.raw(200, cut_short, "text/event-stream")], fallback=lambda r: "again"
    )
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=3)
    with pytest.raises(ResponseFormatError, match="ended before"):
        await call(model, path)
    assert len(emulator.chat_requests()) == 1


async def test_retry_after_is_honoured(emulator: Emulator) -> None:
    emulator.responder = ScriptedResponder(
        [Reply.raw(429, "Too Many Requests", headers={"Retry-After": "1"}), "finally"]
    )
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=1)
    started = time.monotonic()
    assert (await model.ainvoke("x")).text == "finally"
    assert time.monotonic() - started >= 0.95


@pytest.mark.parametrize("path", PATHS)
async def test_unknown_impersonate_target_is_bad_input_not_retried(
    emulator: Emulator, path: str
) -> None:
    model = ChatChatGptEs(base_url=emulator.base_url, impersonate="netscape4", max_retries=3)
    started = time.monotonic()
    with pytest.raises(InvalidInputError, match="impersonate='netscape4'"):
        await call(model, path)
    assert time.monotonic() - started < 0.5
    assert emulator.requests == []


# --- per-call arguments follow the fields' rules -------------------------------------------------

SENTENCES = "Hello world. Goodbye world. END tail"


@pytest.mark.parametrize("path", PATHS)
async def test_a_stop_string_is_one_stop_sequence(emulator: Emulator, path: str) -> None:
    emulator.responder = ScriptedResponder([SENTENCES] * 2)
    model = ChatChatGptEs(base_url=emulator.base_url)
    answer = await call(model.bind(stop="world"), path)  # not five one-letter sequences
    assert answer.text == "Hello "
    assert answer.response_metadata["finish_reason"] == "stop"
    constructed = ChatChatGptEs(base_url=emulator.base_url, stop="END")
    assert constructed.stop == ["END"]
    assert (await call(constructed, path)).text == "Hello world. Goodbye world. "


@pytest.mark.parametrize("path", PATHS)
async def test_per_call_max_tokens_is_read_as_the_field(emulator: Emulator, path: str) -> None:
    emulator.responder = ScriptedResponder([SENTENCES])
    model = ChatChatGptEs(base_url=emulator.base_url)
    answer = await call(model.bind(max_tokens="3"), path)  # as max_tokens="3" at construction
    assert answer.text == "Hello world."  # 3 tokens of 4 characters
    assert answer.response_metadata["finish_reason"] == "length"


def test_remove_messages_are_not_conversation_text(
    emulator: Emulator, model: ChatChatGptEs
) -> None:
    from langchain_core.messages import RemoveMessage

    model.invoke([HumanMessage("Hi", id="1"), RemoveMessage(id="1"), HumanMessage("Bye")])
    message = emulator.chat_requests()[0].form["message"]
    assert "Remove" not in message
    assert message.endswith("User: Hi\nUser: Bye\nAssistant:")


# --- the consent sentence: an error only when it is the whole reply -----------------------------

CHECKBOX = "Du musst das Kästchen anklicken!"


@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize("path", PATHS)
async def test_an_answer_quoting_the_consent_sentence_is_an_answer(
    emulator: Emulator, stream: bool, path: str
) -> None:
    emulator.stream = stream
    quoted = f'In German: "{CHECKBOX}"'
    emulator.responder = ScriptedResponder([quoted])
    assert (await call(ChatChatGptEs(base_url=emulator.base_url), path)).text == quoted


@pytest.mark.parametrize("path", PATHS)
async def test_a_streamed_consent_sentence_is_the_consent_error(
    emulator: Emulator, path: str
) -> None:
    emulator.stream = True
    pieces = ["Du musst ", "das Kästchen ", "anklicken!"]
    body = "".join(
        "data: " + json.dumps({"choices": [{"delta": {"content": p}}]}) + "\n\n" for p in pieces
    )
    emulator.responder = ScriptedResponder(
        [Reply.raw(200, body + "data: [DONE]\n\n", "text/event-stream")]
    )
    received: list[str] = []
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=0)

    async def consume() -> None:
        if path in ("stream", "astream"):
            chunks = model.astream("x") if path == "astream" else _aiter(model.stream("x"))
            async for chunk in chunks:
                received.append(chunk.text)
        else:
            await call(model, path)

    with pytest.raises(ConsentRequiredError):
        await consume()
    assert received == []  # held back while it could still be the sentence: nothing shown


async def _aiter(chunks: Any) -> Any:
    for chunk in chunks:
        yield chunk
