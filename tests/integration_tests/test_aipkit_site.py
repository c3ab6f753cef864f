"""The chat model against an emulated AIPKit site (AI Power 2.3+): detection, the two-step
call, nonce refresh of both kinds, error bodies and faults on each step, cancellation.

What was sent is read from the emulator's records; the answers are the emulator's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_chatgptes import (
    ChatChatGptEs,
    HTTPStatusError,
    IncompleteAnswerError,
    NonceNotFoundError,
    RateLimitError,
    RequestTimeoutError,
    SiteError,
    TransportError,
)
from langchain_chatgptes._conversation import SYSTEM_PROMPT
from langchain_chatgptes.emulator import Emulator, Reply, ScriptedResponder

from .conftest import PATHS, call

BOT = 123


@pytest.fixture
def site() -> Iterator[Emulator]:
    with Emulator(plugin="aipkit") as emulator:
        yield emulator


def model_for(site: Emulator, **settings: Any) -> ChatChatGptEs:
    settings = {"timeout": 5, "max_retries": 0, **settings}
    return ChatChatGptEs(base_url=site.base_url, **settings)


# --- the call ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_answers_with_two_requests_per_call(site: Emulator, path: str) -> None:
    site.responder = ScriptedResponder(["Hola", "Adiós"])
    model = model_for(site)
    first = await call(model, path, "Say hi")
    second = await call(model, path, "Say bye")
    assert (first.text, second.text) == ("Hola", "Adiós")
    # One page read, then a cache POST and a stream GET per call.
    steps = [(r.method, r.action) for r in site.requests]
    assert steps == [
        ("GET", ""),
        ("POST", "aipkit_cache_sse_message"),
        ("GET", "aipkit_frontend_chat_stream"),
        ("POST", "aipkit_cache_sse_message"),
        ("GET", "aipkit_frontend_chat_stream"),
    ]
    assert first.response_metadata["site_plugin"] == "aipkit"
    assert first.response_metadata["site_bot_id"] == str(BOT)
    assert first.response_metadata["finish_reason"] == "stop"


def test_what_is_sent_on_each_step(site: Emulator) -> None:
    model = model_for(site)
    model.invoke([SystemMessage("Be brief."), HumanMessage("Capital of Spain?")])
    model.invoke("Thanks")
    cache, stream = site.cache_requests(), site.stream_requests()
    assert [r.form["action"] for r in cache] == ["aipkit_cache_sse_message"] * 2
    # The same text as on the legacy plugin: chatgpt.es's preamble, then the conversation.
    assert cache[0].form["message"] == (
        f"{SYSTEM_PROMPT} System: Be brief.\nUser: Capital of Spain?\nAssistant:"
    )
    assert cache[1].form["message"] == f"{SYSTEM_PROMPT} Thanks"
    assert {r.form["_ajax_nonce"] for r in cache} == {site.current_nonce()}
    assert [r.form["bot_id"] for r in cache] == [str(BOT)] * 2
    assert cache[0].headers["origin"] == site.base_url
    # The stream GET names the key the POST returned, the bot and the visitor.
    assert all(r.query["cache_key"].startswith("aipkit_sse_") for r in stream)
    assert stream[0].query["cache_key"] != stream[1].query["cache_key"]
    assert {r.query["_ajax_nonce"] for r in stream} == {site.current_nonce()}
    assert stream[0].headers["accept"] == "text/event-stream"
    # One visitor (stable session), a fresh conversation per call: the site's history of
    # each call holds that call only, so the whole conversation is never doubled.
    assert stream[0].query["session_id"] == stream[1].query["session_id"]
    assert stream[0].query["conversation_uuid"] != stream[1].query["conversation_uuid"]
    history = site.aipkit_history(
        BOT, stream[1].query["conversation_uuid"], stream[1].query["session_id"]
    )
    assert [turn["role"] for turn in history] == ["user", "assistant"]
    assert history[0]["content"] == f"{SYSTEM_PROMPT} Thanks"


def test_two_models_are_two_visitors(site: Emulator) -> None:
    model_for(site).invoke("a")
    model_for(site).invoke("b")
    sessions = {r.query["session_id"] for r in site.stream_requests()}
    assert len(sessions) == 2


def test_metadata_events_reach_response_metadata(site: Emulator) -> None:
    site.responder = ScriptedResponder(
        [
            Reply.sequence(
                Reply.status_event({"type": "response.web_search_call.searching"}),
                "Madrid",
                Reply.citations([{"url": "https://es.example/madrid"}]),
                Reply.warning("Answer may be incomplete."),
            )
        ]
    )
    message = model_for(site).invoke("Capital of Spain?")
    assert message.text == "Madrid"  # progress and warnings are never answer text
    assert message.response_metadata["site_citations"] == [{"url": "https://es.example/madrid"}]
    assert message.response_metadata["site_warnings"] == ["Answer may be incomplete."]
    assert message.response_metadata["site_message_id"].startswith("aipkit-msg-")


async def test_text_arrives_before_the_stream_ends(site: Emulator) -> None:
    # The first words, then a stream that stalls: they must reach the caller during the stall.
    site.responder = ScriptedResponder([Reply.sequence("First words ", Reply.hang(30))])
    model = model_for(site, timeout=10)
    stream = model.astream("hi")
    started, received = time.monotonic(), ""
    while received != "First words ":
        received += (await asyncio.wait_for(anext(stream), 5)).text
        assert "First words ".startswith(received)
    assert time.monotonic() - started < 2  # long before the 30 s stall ends
    await stream.aclose()  # type: ignore[attr-defined]  # an async generator
    await model.aclose()


async def test_streaming_arrives_in_pieces(site: Emulator) -> None:
    # Events that arrive apart come apart (what arrives together goes up as one piece).
    site.chunk_delay = 0.02
    site.responder = ScriptedResponder(["one two three four five six seven eight"])
    chunks = [chunk async for chunk in model_for(site).astream("count")]
    texts = [chunk.text for chunk in chunks if chunk.text]
    assert len(texts) > 1
    assert "".join(texts) == "one two three four five six seven eight"


def test_a_2_4_0_bot_without_streaming_answers_one_json_post(site: Emulator) -> None:
    site.aipkit.version = "2.4.0"
    site.aipkit.stream_off = {BOT}
    site.responder = ScriptedResponder(["whole answer"])
    message = model_for(site).invoke("hi")
    assert message.text == "whole answer"
    assert [(r.method, r.action) for r in site.requests] == [
        ("GET", ""),
        ("POST", "aipkit_frontend_chat_message"),
    ]


# --- which bot -----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["inline", "popup"])
def test_inline_and_popup_bots_are_found(site: Emulator, layout: str) -> None:
    site.aipkit.layout = layout  # type: ignore[assignment]
    assert model_for(site).invoke("hi").response_metadata["site_bot_id"] == str(BOT)


def test_a_stale_legacy_box_is_passed_over(site: Emulator) -> None:
    site.page_variant = "both"
    message = model_for(site).invoke("hi")
    assert message.response_metadata["site_plugin"] == "aipkit"
    assert not [r for r in site.requests if r.form.get("action", "").startswith("wpaicg")]


def test_forcing_the_legacy_protocol_on_an_aipkit_site_says_why_it_fails(
    site: Emulator,
) -> None:
    site.page_variant = "both"
    with pytest.raises(HTTPStatusError, match="400") as info:
        model_for(site, plugin="wpaicg").invoke("hi")
    assert info.value.status_code == 400


def test_the_first_inline_bot_unless_bot_id_says_otherwise(site: Emulator) -> None:
    site.aipkit.bots = (7, 8, 9)
    site.aipkit.layout = {7: "popup"}
    assert model_for(site).invoke("hi").response_metadata["site_bot_id"] == "8"
    assert model_for(site, bot_id="9").invoke("hi").response_metadata["site_bot_id"] == "9"
    assert [r.form["bot_id"] for r in site.cache_requests()] == ["8", "9"]
    with pytest.raises(NonceNotFoundError, match=r"no bot with the id '4'.*'7'.*'8'.*'9'"):
        model_for(site, bot_id="4").invoke("hi")


def test_a_page_with_the_shortcode_as_text_says_so(site: Emulator) -> None:
    site.page_variant = "no_chat_box"
    with pytest.raises(NonceNotFoundError, match="AIPKit shortcode left as text"):
        model_for(site).invoke("hi")
    assert site.cache_requests() == []


def test_plugin_from_the_environment(site: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATGPTES_PLUGIN", "wpaicg")
    model = ChatChatGptEs(base_url=site.base_url, timeout=5, max_retries=0)
    assert model.plugin == "wpaicg"
    with pytest.raises(NonceNotFoundError, match="shows no wpaicg bot"):
        model.invoke("hi")  # the standard page has only the AIPKit bot
    monkeypatch.setenv("CHATGPTES_PLUGIN", "other")
    with pytest.raises(ValueError, match="plugin"):
        ChatChatGptEs(base_url=site.base_url)


# --- nonces --------------------------------------------------------------------------------


def test_an_expired_nonce_is_replaced_from_the_nonce_action(site: Emulator) -> None:
    model = model_for(site)
    model.invoke("first")
    site.advance(site.nonce_life * 2)  # the page's nonce is now dead
    assert model.invoke("second").text
    assert len(site.refresh_requests()) == 1
    assert [r.method for r in site.requests].count("GET") == 3  # page + 2 streams: no re-read
    cache = site.cache_requests()
    assert not cache[1].nonce_valid and cache[2].nonce_valid
    model.invoke("third")  # the fresh nonce is kept
    assert len(site.refresh_requests()) == 1


def test_without_the_nonce_action_the_page_is_read_again(site: Emulator) -> None:
    site.aipkit.nonce_refresh = False  # a plugin before 2.3.41
    model = model_for(site)
    model.invoke("first")
    site.advance(site.nonce_life * 2)
    assert model.invoke("second").text
    pages = [r for r in site.requests if r.method == "GET" and not r.action]
    assert len(pages) == 2


def test_a_nonce_action_that_fails_falls_back_to_reading_the_page(site: Emulator) -> None:
    # (A nonce refused by the stream GET itself is covered on scripted replies in
    # tests/unit_tests/test_aipkit.py: through this emulator both steps share one nonce.)
    model = model_for(site)
    model.invoke("warm")
    site.aipkit.refresh_faults.append(Reply.raw(400, "0"))
    site.advance(site.nonce_life * 2)
    assert model.invoke("again").text
    assert len(site.refresh_requests()) == 1
    pages = [r for r in site.requests if r.method == "GET" and not r.action]
    assert len(pages) == 2
    assert site.cache_requests()[-1].nonce_valid


# --- errors and faults on each step -------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (Reply.site_error("upstream down"), SiteError, "API Error: upstream down"),
        (Reply.error("API key missing for OpenAI."), SiteError, "API key missing"),
        (Reply.token_limit(), RateLimitError, "quota"),
    ],
)
@pytest.mark.parametrize("path", PATHS)
async def test_site_errors_are_typed_on_every_path(
    site: Emulator, reply: Reply, error: type[Exception], words: str, path: str
) -> None:
    site.responder = ScriptedResponder([reply])
    with pytest.raises(error, match=words):
        await call(model_for(site, max_retries=2), path, "hi")
    assert len(site.cache_requests()) == 1  # what a retry cannot fix is not retried


@pytest.mark.parametrize("path", PATHS)
async def test_a_refused_cache_post_is_typed_on_every_path(site: Emulator, path: str) -> None:
    # The cache POST's own error bodies (A.4): a bot closed to other origins, from a page
    # read as localhost whose ajaxUrl names 127.0.0.1 (see the CORS test below); the user
    # allowed that host, so the request is sent and the plugin's refusal is what comes back.
    model = ChatChatGptEs(
        base_url=site.base_url.replace("127.0.0.1", "localhost"),
        timeout=5,
        max_retries=2,
        allowed_hosts=["127.0.0.1"],
    )
    with pytest.raises(SiteError, match="not public"):
        await call(model, path, "hi")
    assert len(site.cache_requests()) == 1 and site.stream_requests() == []


def test_guests_disabled_is_a_rate_limit(site: Emulator) -> None:
    site.token_limit = 0
    with pytest.raises(RateLimitError, match="Access disabled for guests"):
        model_for(site).invoke("hi")


def test_a_banned_word_is_the_site_s_message(site: Emulator) -> None:
    site.banned_words = ("forbidden",)
    with pytest.raises(SiteError, match="prohibited words"):
        model_for(site).invoke("a forbidden word")


def test_an_unpublished_bot_is_the_site_s_message(site: Emulator) -> None:
    site.aipkit.unpublished = {BOT}
    with pytest.raises(SiteError, match="Invalid chatbot specified"):
        model_for(site).invoke("hi")


@pytest.mark.parametrize(
    ("pro", "allowed", "words"),
    [(False, (), "not available with your current plan"), (True, ("https://a.example",), "")],
    ids=["no-pro", "not-allowed"],
)
def test_a_bot_closed_to_other_origins_says_it_is_not_public(
    site: Emulator, pro: bool, allowed: tuple[str, ...], words: str
) -> None:
    # The page read as localhost names its endpoint on 127.0.0.1 (ajaxUrl is absolute):
    # the calls then come from another origin (the user allowed that host), which the
    # plugin refuses without Pro or outside the bot's allowed domains.
    site.aipkit.pro, site.aipkit.allowed_origins = pro, allowed
    other_host = site.base_url.replace("127.0.0.1", "localhost")
    model = ChatChatGptEs(
        base_url=other_host, timeout=5, max_retries=2, allowed_hosts=["127.0.0.1"]
    )
    with pytest.raises(SiteError, match="not public") as info:
        model.invoke("hi")
    assert words in str(info.value)
    assert len(site.cache_requests()) == 1  # not retried
    assert site.cache_requests()[0].headers["origin"] == other_host


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Reply.raw(502, "<html>Bad gateway</html>"), HTTPStatusError),
        (Reply.reset(), TransportError),
    ],
    ids=["502", "reset"],
)
def test_a_failed_cache_post_is_retried(
    site: Emulator, fault: Reply, error: type[Exception]
) -> None:
    site.aipkit.cache_faults.append(fault)
    assert model_for(site, max_retries=1).invoke("hi").text
    assert len(site.cache_requests()) == 2 and len(site.stream_requests()) == 1
    site.aipkit.cache_faults.extend([fault, fault])
    with pytest.raises(error):
        model_for(site, max_retries=1).invoke("hi")


@pytest.mark.parametrize(
    "fault", [Reply.raw(502, "Bad gateway"), Reply.reset()], ids=["502", "reset"]
)
def test_a_failed_stream_before_text_starts_again_at_the_cache_post(
    site: Emulator, fault: Reply
) -> None:
    site.responder = ScriptedResponder([fault, "second try"])
    assert model_for(site, max_retries=1).invoke("hi").text == "second try"
    # The key is single use, so the answer came from a second cache POST's key. (libcurl
    # may itself repeat a GET whose kept-alive connection dropped before any byte; that
    # repeat then finds the key used up, which is also answered by a new POST.)
    assert len(site.cache_requests()) == 2
    keys = [r.query["cache_key"] for r in site.stream_requests()]
    assert keys[-1] != keys[0]


@pytest.mark.parametrize(
    "ending",
    [Reply.site_error("overloaded"), Reply.exception("timeout"), Reply.reset()],
    ids=["api-error", "connection-error", "reset"],
)
def test_a_stream_failing_mid_answer_is_never_retried(site: Emulator, ending: Reply) -> None:
    site.responder = ScriptedResponder([Reply.sequence("Half an ", ending)])
    with pytest.raises((IncompleteAnswerError, TransportError)):
        model_for(site, max_retries=2).invoke("hi")
    assert len(site.stream_requests()) == 1


def test_a_hung_stream_times_out_within_its_limit(site: Emulator) -> None:
    site.responder = ScriptedResponder([Reply.hang(30)])
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        model_for(site, timeout=1).invoke("hi")
    assert time.monotonic() - started < 4


def test_a_gone_cache_key_sends_the_message_again(site: Emulator) -> None:
    bogus = json.dumps({"success": True, "data": {"cache_key": "aipkit_sse_gone"}})
    site.aipkit.cache_faults.append(Reply.raw(200, bogus, "application/json; charset=UTF-8"))
    assert model_for(site).invoke("hi").text
    assert len(site.cache_requests()) == 2
    keys = [r.query["cache_key"] for r in site.stream_requests()]
    assert keys[0] == "aipkit_sse_gone" and keys[1] != keys[0]


# --- cancellation between the steps -------------------------------------------------------


@pytest.mark.parametrize("stage", ["cache POST", "stream"])
async def test_cancelling_at_either_step_leaves_the_model_usable(
    site: Emulator, stage: str
) -> None:
    if stage == "cache POST":
        site.aipkit.cache_faults.append(Reply.hang(30))
    else:
        site.responder = ScriptedResponder([Reply.hang(30)])
    model = model_for(site, timeout=30)
    task = asyncio.create_task(model.ainvoke("hi"))
    seen = site.cache_requests if stage == "cache POST" else site.stream_requests
    for _ in range(500):
        if seen():
            break
        await asyncio.sleep(0.01)
    assert seen(), f"the {stage} was never made"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    message = await asyncio.wait_for(model.ainvoke("again"), 5)
    assert message.text and time.monotonic() - started < 2
    await model.aclose()


def test_each_call_s_history_is_left_on_the_site(site: Emulator) -> None:
    # Honest about a side effect: every call is its own conversation in the site's log.
    model = model_for(site)
    for text in ("a", "b", "c"):
        model.invoke(text)
    conversations = {r.query["conversation_uuid"] for r in site.stream_requests()}
    assert len(conversations) == 3


def test_tool_calls_round_trip_on_aipkit(site: Emulator) -> None:
    from langchain_core.tools import tool

    from langchain_chatgptes.emulator import ToolModelResponder

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    site.responder = ToolModelResponder()
    bound = model_for(site).bind_tools([add], tool_choice="add")
    message = bound.invoke("add 2 and 3")
    assert isinstance(message, AIMessage)
    assert message.tool_calls and message.tool_calls[0]["args"] == {"a": 2, "b": 3}
