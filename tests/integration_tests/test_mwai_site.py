"""The chat model against an emulated AI Engine site (Meow Apps, ``mwai``): detection, the
session, the conversation mapping, the length rule, nonces, errors, faults, cancellation.

What was sent is read from the emulator's records; the answers are the emulator's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_chatgptes import (
    ChatChatGptEs,
    HistoryTrimWarning,
    HTTPStatusError,
    IncompleteAnswerError,
    InvalidInputError,
    NonceNotFoundError,
    RateLimitError,
    RequestTimeoutError,
    SiteError,
    TransportError,
)
from langchain_chatgptes._conversation import SYSTEM_PROMPT
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes.emulator import Emulator, Reply, ScriptedResponder
from langchain_chatgptes.protocols import mwai

from .conftest import PATHS, call


@pytest.fixture
def site() -> Iterator[Emulator]:
    with Emulator(plugin="mwai") as emulator:
        yield emulator


def model_for(site: Emulator, **settings: Any) -> ChatChatGptEs:
    settings = {"timeout": 5, "max_retries": 0, **settings}
    return ChatChatGptEs(base_url=site.base_url, **settings)


def routes(site: Emulator) -> list[str]:
    return [request.route or request.method for request in site.requests]


# --- the call ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_every_path_answers_with_one_session_and_one_post_per_call(
    site: Emulator, path: str
) -> None:
    site.responder = ScriptedResponder(["Hola", "Adiós"])
    model = model_for(site)
    first = await call(model, path, "Say hi")
    second = await call(model, path, "Say bye")
    assert (first.text, second.text) == ("Hola", "Adiós")
    assert routes(site) == ["GET", mwai.SESSION_ROUTE, mwai.SUBMIT_ROUTE, mwai.SUBMIT_ROUTE]
    assert first.response_metadata["site_plugin"] == "mwai"
    assert first.response_metadata["site_bot_id"] == "default"
    # The site reports usage: it replaces the estimate.
    assert first.response_metadata["usage_is_estimate"] is False
    assert first.usage_metadata is not None and first.usage_metadata["output_tokens"] > 0


def test_what_is_sent(site: Emulator) -> None:
    model = model_for(site)
    model.invoke("first")
    model.invoke([SystemMessage("Be brief."), HumanMessage("Hi"), AIMessage("Hello!"), "Spain?"])
    session, (one, two) = site.session_requests()[0], site.submit_requests()
    assert "x-wp-nonce" not in session.headers  # a stale one would be refused
    nonce = site.current_nonce()
    assert one.headers["x-wp-nonce"] == two.headers["x-wp-nonce"] == nonce
    assert one.headers["content-type"].startswith("application/json")
    assert one.cookies["mwai_session_id"] == two.cookies["mwai_session_id"]
    # PHP's session cookie goes back too, as a browser sends it (one PHP session, not many).
    assert one.cookies["PHPSESSID"] == two.cookies["PHPSESSID"]
    assert one.json is not None and two.json is not None
    assert set(two.json) == {
        "botId",
        "messages",
        "newMessage",
        "stream",
        "chatId",
        "session",
        "contextId",
    }
    assert two.json["botId"] == "default" and two.json["stream"] is True
    assert two.json["messages"] == [
        {"role": "system", "content": f"{SYSTEM_PROMPT}\n\nBe brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert two.json["newMessage"] == "Spain?"
    assert one.json["chatId"] != two.json["chatId"]  # fresh per call
    assert one.json["session"] == one.cookies["mwai_session_id"]


def test_what_the_site_s_model_gets(site: Emulator) -> None:
    seen: list[list[dict[str, str]]] = []

    def responder(request: Any) -> str:
        seen.append(request.upstream_messages)
        return "ok"

    site.responder = responder
    model_for(site).invoke([SystemMessage("Be brief."), HumanMessage("Hi")])
    # The bot's own instructions, then ours (messages[0] is always kept), then the message.
    assert [m["role"] for m in seen[0]][-2:] == ["system", "user"]
    assert seen[0][-1]["content"] == "Hi"


def test_a_tool_round_trip_continues_with_the_results_in_messages(site: Emulator) -> None:
    from langchain_core.tools import tool

    from langchain_chatgptes.emulator import ToolModelResponder

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    site.responder = ToolModelResponder()
    bound = model_for(site).bind_tools([add])
    asked = bound.invoke("add 2 and 3")
    assert isinstance(asked, AIMessage) and asked.tool_calls
    result = ToolMessage("5", tool_call_id=asked.tool_calls[0]["id"])
    final = bound.invoke([HumanMessage("add 2 and 3"), asked, result])
    assert "5" in final.text
    body = site.submit_requests()[-1].json
    assert body is not None
    assert body["newMessage"] == mwai.CONTINUE
    assert body["messages"][-1]["content"].startswith("Tool result (")
    assert "<tools>" in body["messages"][0]["content"]


async def test_text_arrives_before_the_stream_ends(site: Emulator) -> None:
    site.responder = ScriptedResponder([Reply.sequence("First words ", Reply.hang(30))])
    model = model_for(site, timeout=10)
    stream = model.astream("hi")
    started, received = time.monotonic(), ""
    while received != "First words ":
        received += (await asyncio.wait_for(anext(stream), 5)).text
        assert "First words ".startswith(received)
    assert time.monotonic() - started < 2
    await stream.aclose()  # type: ignore[attr-defined]  # an async generator
    await model.aclose()


def test_thinking_and_status_events_are_not_text(site: Emulator) -> None:
    site.responder = ScriptedResponder(
        [
            Reply.sequence(
                Reply.mwai_event("thinking", "Let me think"),
                Reply.mwai_event("status", "Searching"),
                "Madrid",
            )
        ]
    )
    assert model_for(site).invoke("Capital of Spain?").text == "Madrid"


def test_without_usage_the_estimate_is_used(site: Emulator) -> None:
    site.mwai.usage = False
    message = model_for(site).invoke("hi")
    assert message.response_metadata["usage_is_estimate"] is True


# --- the length rule and the history window ---------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_a_message_longer_than_the_site_allows_is_refused_before_sending(
    site: Emulator, path: str
) -> None:
    with pytest.raises(
        InvalidInputError, match="513 characters long; this AI Engine site takes at most 512"
    ):
        await call(model_for(site), path, "x" * 513)
    assert site.submit_requests() == []


def test_the_limit_is_the_site_s_setting(site: Emulator) -> None:
    site.mwai.text_input_max_length = 20
    with pytest.raises(InvalidInputError, match="at most 20"):
        model_for(site).invoke("x" * 21)
    assert model_for(site).invoke("x" * 20).text
    # Long context in earlier turns or system messages is not covered by the rule.
    assert model_for(site).invoke([SystemMessage("s" * 2000), HumanMessage("short")]).text


def test_a_long_conversation_warns_that_the_site_drops_turns(site: Emulator) -> None:
    history: list[Any] = []
    for n in range(9):
        history += [HumanMessage(f"q{n}"), AIMessage(f"a{n}")]
    with pytest.warns(HistoryTrimWarning, match="the oldest 3 will not reach"):
        model_for(site).invoke([*history, HumanMessage("last")])


# --- which bot -----------------------------------------------------------------------------


def test_bot_id_picks_among_several_and_is_checked_here(site: Emulator) -> None:
    site.mwai.bots = ("default", "support")
    assert (
        model_for(site, bot_id="support").invoke("hi").response_metadata["site_bot_id"] == "support"
    )
    body = site.submit_requests()[-1].json
    assert body is not None and body["botId"] == "support"
    # The site would answer an unknown id with its default bot: the package refuses it.
    with pytest.raises(
        NonceNotFoundError, match=r"no bot with the id 'sales'.*'default'.*'support'"
    ):
        model_for(site, bot_id="sales").invoke("hi")


def test_a_custom_id_bot(site: Emulator) -> None:
    site.mwai.bots = ()
    site.mwai.custom_bots = ("a1b2",)
    message = model_for(site).invoke("x" * 600)  # no length rule for customId bots
    assert message.response_metadata["site_bot_id"] == "a1b2"
    body = site.submit_requests()[-1].json
    assert body is not None and body["customId"] == "a1b2" and "botId" not in body


def test_all_three_families_on_one_page(site: Emulator) -> None:
    site.page_variant = "mixed"  # a legacy box, an AIPKit bot, then the AI Engine bot
    assert model_for(site, plugin="mwai").invoke("hi").response_metadata["site_plugin"] == "mwai"
    assert (
        model_for(site, plugin="aipkit").invoke("hi").response_metadata["site_plugin"] == "aipkit"
    )
    # auto: the stale legacy box is passed over; the AIPKit bot comes first on the page.
    assert model_for(site).invoke("hi").response_metadata["site_plugin"] == "aipkit"


def test_the_plain_rest_url_style(site: Emulator) -> None:
    site.mwai.rest_url_style = "plain"
    assert model_for(site).invoke("hi").text
    assert all(r.query.get("rest_route") == mwai.SUBMIT_ROUTE for r in site.submit_requests())


def test_a_plugin_switched_off_is_named(site: Emulator) -> None:
    site.page_variant = "no_chat_box"
    with pytest.raises(NonceNotFoundError, match="AI Engine shortcode left as text"):
        model_for(site).invoke("hi")


# --- nonces and the session ----------------------------------------------------------------


async def test_concurrent_first_calls_share_one_session(site: Emulator) -> None:
    site.latency = 0.05
    model = model_for(site, max_concurrency=8)
    answers = await asyncio.gather(*(model.ainvoke(f"q{n}") for n in range(6)))
    assert all(answer.text for answer in answers)
    assert len(site.session_requests()) == 1 and len(site.submit_requests()) == 6
    await model.aclose()


def test_a_page_nonce_needs_no_session(site: Emulator) -> None:
    site.mwai.rest_nonce_in_page = True  # AI Engine 2.0.1 - 2.4.3
    model_for(site).invoke("hi")
    assert site.session_requests() == []
    assert site.submit_requests()[0].headers["x-wp-nonce"] == site.current_nonce()


def test_an_expired_nonce_starts_a_new_session_once(site: Emulator) -> None:
    model = model_for(site)
    model.invoke("first")
    site.advance(site.nonce_life * 2)
    assert model.invoke("second").text
    assert len(site.session_requests()) == 2
    statuses = [r.nonce_valid for r in site.submit_requests()]
    assert statuses == [True, False, True]
    model.invoke("third")
    assert len(site.session_requests()) == 2


def test_an_aging_nonce_is_replaced_by_new_token(site: Emulator) -> None:
    model = model_for(site)
    model.invoke("first")
    first = site.submit_requests()[0].headers["x-wp-nonce"]
    site.advance(site.nonce_life / 2 + 60)  # still valid, from the previous tick
    model.invoke("second")  # answered with a new_token
    model.invoke("third")
    nonces = [r.headers["x-wp-nonce"] for r in site.submit_requests()]
    assert nonces[1] == first and nonces[2] != first
    assert nonces[2] == site.current_nonce()
    assert len(site.session_requests()) == 1


def test_an_old_site_without_sessions_reads_the_page_again(site: Emulator) -> None:
    site.mwai.rest_nonce_in_page = True
    site.mwai.start_session = False
    model = model_for(site)
    model.invoke("first")
    site.advance(site.nonce_life * 2)
    assert model.invoke("second").text
    pages = [r for r in site.requests if r.method == "GET"]
    assert len(pages) == 2


def test_no_nonce_and_no_session_route_says_so(site: Emulator) -> None:
    site.mwai.start_session = False
    with pytest.raises(NonceNotFoundError, match="no session endpoint"):
        model_for(site).invoke("hi")


# --- errors and faults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (Reply.site_error("upstream down"), SiteError, "upstream down"),
        (Reply.error("No API key."), SiteError, "No API key"),
        (Reply.token_limit(), RateLimitError, "limit"),
    ],
)
@pytest.mark.parametrize("path", PATHS)
async def test_site_errors_are_typed_on_every_path(
    site: Emulator, reply: Reply, error: type[Exception], words: str, path: str
) -> None:
    site.responder = ScriptedResponder([reply])
    with pytest.raises(error, match=words):
        await call(model_for(site, max_retries=2), path, "hi")
    assert len(site.submit_requests()) == 1  # what a retry cannot fix is not retried


@pytest.mark.parametrize("path", PATHS)
async def test_banned_words_and_moderation_are_the_site_s_message(
    site: Emulator, path: str
) -> None:
    site.banned_words = ("forbidden",)
    with pytest.raises(SiteError, match="rejected"):
        await call(model_for(site), path, "a forbidden word")


def test_guests_over_the_usage_limit(site: Emulator) -> None:
    site.token_limit = 1
    model = model_for(site)
    model.invoke("one")
    with pytest.raises(RateLimitError, match="You have reached the limit"):
        model.invoke("two")


def test_a_site_without_ai_engine_routes_is_named(site: Emulator) -> None:
    site.mwai.rest_nonce_in_page = True
    model = model_for(site)
    model.invoke("warm")
    site.page_variant = "no_chat_box"  # the plugin is switched off: its routes are gone
    with pytest.raises(HTTPStatusError, match="does not run AI Engine's chat API"):
        model.invoke("again")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Reply.raw(502, "<html>Bad gateway</html>"), HTTPStatusError),
        (Reply.reset(), TransportError),
    ],
    ids=["502", "reset"],
)
def test_a_failed_session_is_retried(site: Emulator, fault: Reply, error: type[Exception]) -> None:
    site.mwai.session_faults.append(fault)
    assert model_for(site, max_retries=1).invoke("hi").text
    assert len(site.session_requests()) == 2
    # (Four: libcurl itself repeats a request whose kept-alive connection dropped unanswered.)
    site.mwai.session_faults.extend([fault] * 4)
    with pytest.raises(error):  # a model with a cache of its own has no session yet
        model_for(site, max_retries=1, site_cache=SiteCache()).invoke("hi")


@pytest.mark.parametrize(
    "fault", [Reply.raw(502, "Bad gateway"), Reply.reset()], ids=["502", "reset"]
)
def test_a_failed_submit_before_text_is_retried(site: Emulator, fault: Reply) -> None:
    site.responder = ScriptedResponder([fault, "second try"])
    assert model_for(site, max_retries=1).invoke("hi").text == "second try"


@pytest.mark.parametrize(
    "ending",
    [Reply.site_error("overloaded"), Reply.exception("timeout"), Reply.reset()],
    ids=["error-line", "exception", "reset"],
)
def test_a_stream_failing_mid_answer_is_never_retried(site: Emulator, ending: Reply) -> None:
    site.responder = ScriptedResponder([Reply.sequence("Half an ", ending)])
    with pytest.raises((IncompleteAnswerError, TransportError)):
        model_for(site, max_retries=2).invoke("hi")
    assert len(site.submit_requests()) == 1


def test_a_hung_submit_times_out_within_its_limit(site: Emulator) -> None:
    site.responder = ScriptedResponder([Reply.hang(30)])
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        model_for(site, timeout=1).invoke("hi")
    assert time.monotonic() - started < 4


# --- cancellation at the new await point: start_session -----------------------------------


@pytest.mark.parametrize("stage", ["session", "submit"])
async def test_cancelling_at_either_step_leaves_the_model_usable(
    site: Emulator, stage: str
) -> None:
    if stage == "session":
        site.mwai.session_faults.append(Reply.hang(30))
    else:
        site.responder = ScriptedResponder([Reply.hang(30)])
    model = model_for(site, timeout=30, max_concurrency=1)
    task = asyncio.create_task(model.ainvoke("hi"))
    seen = site.session_requests if stage == "session" else site.submit_requests
    for _ in range(500):
        if seen():
            break
        await asyncio.sleep(0.01)
    assert seen(), f"the {stage} request was never made"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    message = await asyncio.wait_for(model.ainvoke("again"), 5)
    assert message.text and time.monotonic() - started < 2
    await model.aclose()


async def test_a_waiter_takes_over_a_cancelled_session(site: Emulator) -> None:
    # Two first calls share one session request; cancelling the one that makes it hands
    # the work to the other, which still answers.
    site.mwai.session_faults.append(Reply.hang(30))
    model = model_for(site, timeout=30)
    first = asyncio.create_task(model.ainvoke("first"))
    for _ in range(500):
        if site.session_requests():
            break
        await asyncio.sleep(0.01)
    second = asyncio.create_task(model.ainvoke("second"))
    await asyncio.sleep(0.05)
    first.cancel()
    message = await asyncio.wait_for(second, 5)
    assert message.text
    assert len(site.session_requests()) == 2
    # The waiter started the session again itself before submitting: one submit, with the
    # new session's nonce (not a nonce-less submit refused and then refreshed).
    (submit,) = site.submit_requests()
    assert submit.headers["x-wp-nonce"] == site.current_nonce()
    await model.aclose()
