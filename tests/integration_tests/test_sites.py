"""Several sites behind one model: failover, cooldown, probes, health, over real HTTP.

Three emulated sites, one per plugin: the first (legacy) is broken in every way the fault
matrix knows, and the call must be answered by the next one, never twice, while the broken
one receives nothing during its cooldown (counted on the servers themselves).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from langchain_chatgptes import (
    AllSitesFailedError,
    ChatChatGptEs,
    IncompleteAnswerError,
    InvalidInputError,
)
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes.emulator import (
    Emulator,
    MwaiOptions,
    Reply,
    ScriptedResponder,
    SilentSite,
    ToolModelResponder,
)

from .conftest import PATHS, call, summed

NONCE_EXPIRED = "The link you followed has expired."


@dataclass
class Sites:
    """Three emulated sites, one per plugin, each answering ``from <plugin>``."""

    first: Emulator  # legacy (wpaicg): the one that breaks
    second: Emulator  # AIPKit
    third: Emulator  # AI Engine

    @property
    def urls(self) -> list[str]:
        return [self.first.base_url, self.second.base_url, self.third.base_url]


def answering(plugin: str) -> ScriptedResponder:
    return ScriptedResponder(fallback=lambda request: f"from {plugin}")


@pytest.fixture
def sites() -> Iterator[Sites]:
    with (
        Emulator(plugin="wpaicg") as first,
        Emulator(plugin="aipkit") as second,
        Emulator(plugin="mwai") as third,
    ):
        for site in (first, second, third):
            site.responder = answering(site.plugin)
        yield Sites(first, second, third)


def model_for(urls: list[str], **settings: Any) -> ChatChatGptEs:
    settings = {"timeout": 2, "site_cache": SiteCache(), **settings}
    return ChatChatGptEs(base_url=urls, **settings)


# --- the faults of the matrix, on the first site ---------------------------------------


async def cancel_once_it_hangs(
    model: ChatChatGptEs, prompt: str, hanging: SilentSite, connections: int
) -> None:
    """Start a call, see it hang on ``hanging`` (its ``connections``-th), then cancel it."""
    task = asyncio.create_task(model.ainvoke(prompt))
    await asyncio.sleep(0.3)
    assert hanging.connections == connections
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def refuse(sites: Sites) -> None:
    sites.first.stop()  # its port is closed now


def fail_5xx(sites: Sites) -> None:
    sites.first.responder = ScriptedResponder(fallback=lambda _: Reply.raw(502, "Bad Gateway"))


def rate_limit(sites: Sites) -> None:
    too_many = Reply.raw(429, "Too Many Requests", headers={"Retry-After": "30"})
    sites.first.responder = ScriptedResponder(fallback=lambda _: too_many)


def challenge(sites: Sites) -> None:
    sites.first.cloudflare = "both"


def reject_nonce(sites: Sites) -> None:
    expired = Reply.raw(403, NONCE_EXPIRED)
    sites.first.responder = ScriptedResponder(fallback=lambda _: expired)


def remove_bot(sites: Sites) -> None:
    sites.first.page_variant = "no_chat_box"


def cut_stream(sites: Sites) -> None:
    # The stream opens, then the connection drops before any answer text.
    sites.first.stream = True
    cut = Reply.reset(b": keep-alive\n\n", "text/event-stream")
    sites.first.responder = ScriptedResponder(fallback=lambda _: cut)


FAULTS = {
    "refused connection": refuse,
    "5xx": fail_5xx,
    "429 with Retry-After": rate_limit,
    "challenge page": challenge,
    "nonce rejected": reject_nonce,
    "bot removed": remove_bot,
    "stream cut before the answer": cut_stream,
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_the_next_site_answers_and_the_broken_one_cools_down(
    sites: Sites, fault: str, path: str
) -> None:
    urls = sites.urls
    FAULTS[fault](sites)
    model = model_for(urls, site_cooldown=60)
    first_requests = len(sites.first.requests)
    answer = await call(model, path, "hello")
    assert answer.text == "from aipkit"  # exactly one answer: nothing delivered twice
    assert answer.response_metadata["site_url"] == sites.second.base_url
    first, second, third = model.site_health()
    assert (first.state, first.consecutive_failures, first.failures) == ("cooling", 1, 1)
    assert first.cooldown_until is not None and first.last_error
    assert (second.state, second.calls, third.state) == ("healthy", 1, "unknown")
    # While it cools down, it receives nothing.
    tried = len(sites.first.requests)
    for _ in range(3):
        assert (await call(model, path, "again")).text == "from aipkit"
    assert len(sites.first.requests) == tried
    assert fault == "refused connection" or tried > first_requests


@pytest.mark.parametrize("path", PATHS)
async def test_a_site_that_hangs_before_headers_is_left_for_the_next(
    sites: Sites, hanging: SilentSite, path: str
) -> None:
    model = model_for([hanging.url, sites.second.base_url, sites.third.base_url], timeout=1)
    answer = await call(model, path, "hello")
    assert answer.text == "from aipkit"
    assert answer.response_metadata["site_url"] == sites.second.base_url
    assert model.site_health()[0].last_error == "RequestTimeoutError"
    assert (await call(model, path, "again")).text == "from aipkit"
    assert hanging.connections == 1  # cooling: nothing more


async def test_a_site_that_hangs_is_waited_for_once_per_cooldown(
    sites: Sites, hanging: SilentSite
) -> None:
    model = model_for([hanging.url, sites.second.base_url], timeout=1)
    started = time.monotonic()
    for _ in range(5):
        assert (await model.ainvoke("hi")).text == "from aipkit"
    assert time.monotonic() - started < 1 + 5 * 0.5  # one timeout, not five
    assert hanging.connections == 1


async def test_32_concurrent_calls_and_a_hanging_site(sites: Sites, hanging: SilentSite) -> None:
    model = model_for([hanging.url, sites.second.base_url], timeout=1, max_concurrency=64)
    answers = await asyncio.gather(*(model.ainvoke(f"call {n}") for n in range(32)))
    assert [a.text for a in answers] == ["from aipkit"] * 32
    assert hanging.connections <= 1  # one page GET for every caller: one wave at most
    answers = await asyncio.gather(*(model.ainvoke(f"more {n}") for n in range(32)))
    assert hanging.connections <= 1  # cooling: not asked again


async def test_after_the_cooldown_one_probe_puts_a_healthy_site_back_first(
    sites: Sites,
) -> None:
    fail_5xx(sites)
    model = model_for(sites.urls, site_cooldown=0.3)
    assert (await model.ainvoke("one")).text == "from aipkit"
    sites.first.responder = answering("wpaicg")  # it recovers
    await asyncio.sleep(0.35)
    before = len(sites.first.chat_requests())
    assert (await model.ainvoke("probe")).text == "from wpaicg"
    assert len(sites.first.chat_requests()) == before + 1  # one probe
    assert model.site_health()[0].state == "healthy"
    assert (await model.ainvoke("back first")).text == "from wpaicg"


async def test_only_one_call_probes_a_site_whose_cooldown_ended(
    sites: Sites, hanging: SilentSite
) -> None:
    model = model_for([hanging.url, sites.second.base_url], timeout=1, site_cooldown=0.2)
    assert (await model.ainvoke("cools it")).text == "from aipkit"
    await asyncio.sleep(0.25)
    # Eight calls at once: one probes the hanging site, the others go to the healthy one.
    started = time.monotonic()
    answers = await asyncio.gather(*(model.ainvoke(f"n{n}") for n in range(8)))
    assert [a.text for a in answers] == ["from aipkit"] * 8
    assert hanging.connections == 2  # the first wave's page GET, then the one probe
    assert time.monotonic() - started < 1.8
    assert model.site_health()[0].consecutive_failures == 2  # the probe failed: longer


async def test_a_failing_probe_cools_the_site_down_longer(sites: Sites) -> None:
    fail_5xx(sites)
    model = model_for(sites.urls, site_cooldown=0.2)
    await model.ainvoke("one")
    first_cooldown = model.site_health()[0].cooldown_until
    await asyncio.sleep(0.25)
    await model.ainvoke("probe fails")
    health = model.site_health()[0]
    assert health.consecutive_failures == 2
    assert first_cooldown is not None and health.cooldown_until is not None
    assert (health.cooldown_until - first_cooldown).total_seconds() > 0.3  # 0.4 s this time


async def test_a_cancelled_call_gives_back_its_probe(sites: Sites, hanging: SilentSite) -> None:
    model = model_for([hanging.url, sites.second.base_url], timeout=5, site_cooldown=0.2)
    await model.ainvoke("cools it")  # (5 s: the hang is cut short by cancellation below)
    await asyncio.sleep(0.25)
    await cancel_once_it_hangs(model, "probing", hanging, 2)  # the probe hangs there
    # The probe was given back: the next call may probe again (it hangs too: cancel it).
    await cancel_once_it_hangs(model, "probing again", hanging, 3)


async def test_when_every_site_cools_down_the_first_to_recover_is_tried(
    sites: Sites,
) -> None:
    for site in (sites.first, sites.second):
        site.responder = ScriptedResponder(fallback=lambda _: Reply.raw(502, "Bad Gateway"))
    model = model_for([sites.first.base_url, sites.second.base_url], site_cooldown=30)
    with pytest.raises(AllSitesFailedError) as info:
        await model.ainvoke("both fail")
    assert [site for site, _ in info.value.failures] == [
        sites.first.base_url,
        sites.second.base_url,
    ]
    assert sites.first.base_url in str(info.value) and "HTTPStatusError" in str(info.value)
    assert info.value.is_retryable
    # Both cool down now: the call still tries the one whose cooldown ends first.
    sites.first.responder = answering("wpaicg")
    assert (await model.ainvoke("try anyway")).text == "from wpaicg"


async def test_input_no_site_can_take_fails_at_once(sites: Sites) -> None:
    model = model_for(sites.urls)
    with pytest.raises(InvalidInputError):
        await model.ainvoke([])
    with pytest.raises(InvalidInputError):
        await model.ainvoke([HumanMessage(content=[{"type": "image", "url": "x"}])])
    assert all(not site.requests for site in (sites.first, sites.second, sites.third))


async def test_a_rule_of_one_site_moves_on_without_hurting_its_health(sites: Sites) -> None:
    sites.third.mwai = MwaiOptions(text_input_max_length=10)
    model = model_for([sites.third.base_url, sites.second.base_url])
    assert (await model.ainvoke("a message longer than ten")).text == "from aipkit"
    assert sites.third.submit_requests() == []
    assert model.site_health()[0].state != "cooling"  # a rule on input, not a failure
    assert (await model.ainvoke("short")).text == "from mwai"


async def test_retry_after_on_one_site_does_not_make_the_call_wait(sites: Sites) -> None:
    rate_limit(sites)
    model = model_for(sites.urls, timeout=60, site_cooldown=1)
    started = time.monotonic()
    assert (await model.ainvoke("hi")).text == "from aipkit"
    assert time.monotonic() - started < 1.0
    health = model.site_health()[0]
    assert health.cooldown_until is not None
    seconds = (health.cooldown_until - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert 25 < seconds <= 30  # its Retry-After, longer than site_cooldown


@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_no_failover_once_part_of_the_answer_went_up(sites: Sites, path: str) -> None:
    sites.first.stream = True
    cut = Reply.reset(b'data: {"choices":[{"delta":{"content":"Half"}}]}\n\n', "text/event-stream")
    sites.first.responder = ScriptedResponder([cut])
    model = model_for(sites.urls)
    chunks: list[str] = []

    async def read() -> None:
        if path == "stream":
            for chunk in model.stream("hi"):
                chunks.append(chunk.text)
        else:
            async for chunk in model.astream("hi"):
                chunks.append(chunk.text)

    with pytest.raises(IncompleteAnswerError):
        await read()
    assert "".join(chunks) == "Half"  # and nothing from the next site
    assert sites.second.requests == []
    assert model.site_health()[0].state == "cooling"


async def test_fastest_prefers_the_site_with_the_lowest_time_to_first_byte(
    sites: Sites,
) -> None:
    sites.first.latency = 0.15
    model = model_for([sites.first.base_url, sites.second.base_url], site_order="fastest")
    cache = model.site_cache
    listed = model_for([sites.second.base_url], site_cache=cache)
    assert (await listed.ainvoke("learn the second")).text == "from aipkit"
    assert (await model.ainvoke("learn the first")).text == "from aipkit"  # fastest known
    first, second = model.site_health()
    assert second.ttfb is not None and first.ttfb is None
    # Once both are known, the faster one keeps being preferred.
    assert (await model_for([sites.first.base_url], site_cache=cache).ainvoke("x")).text
    assert (await model.ainvoke("fastest")).text == "from aipkit"
    first, second = model.site_health()
    assert first.ttfb is not None and second.ttfb is not None and second.ttfb < first.ttfb


async def test_health_is_shared_by_every_model_of_the_cache(sites: Sites) -> None:
    fail_5xx(sites)
    cache = SiteCache()
    model = model_for(sites.urls, site_cache=cache)
    await model.ainvoke("one")
    other = model_for([sites.first.base_url, sites.third.base_url], site_cache=cache)
    before = len(sites.first.requests)
    assert (await other.ainvoke("two")).text == "from mwai"
    assert len(sites.first.requests) == before  # cooling for every model of the cache


async def test_a_state_change_is_logged_once(
    sites: Sites, caplog: pytest.LogCaptureFixture
) -> None:
    fail_5xx(sites)
    model = model_for(sites.urls, site_cooldown=0.2)
    with caplog.at_level(logging.INFO, logger="langchain_chatgptes.sites"):
        for _ in range(3):
            await model.ainvoke("x")
        await asyncio.sleep(0.25)
        sites.first.responder = answering("wpaicg")
        await model.ainvoke("probe")
        await model.ainvoke("y")
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "cooling down" in m]) == 1
    assert len([m for m in messages if "answers again" in m]) == 1


async def test_tools_and_structured_output_work_across_sites(sites: Sites) -> None:
    for site in (sites.second, sites.third):
        site.responder = ToolModelResponder()
    sites.third.mwai = MwaiOptions(text_input_max_length=100_000)
    fail_5xx(sites)
    model = model_for(sites.urls)

    def get_weather(city: str) -> str:
        """Get the weather in a city."""
        return f"sunny in {city}"

    message = await model.bind_tools([get_weather]).ainvoke("What is the weather in 'Madrid'?")
    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"

    class Joke(BaseModel):
        setup: str
        punchline: str

    joke = await model.with_structured_output(Joke).ainvoke("Tell me a joke about 'cats'")
    assert isinstance(joke, Joke)


def test_several_sites_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CHATGPTES_BASE_URL", "https://a.example, https://b.example\thttps://c.example"
    )
    assert ChatChatGptEs().base_url == [
        "https://a.example",
        "https://b.example",
        "https://c.example",
    ]
    monkeypatch.setenv("CHATGPTES_BASE_URL", "https://a.example/")
    assert ChatChatGptEs().base_url == "https://a.example"


def test_every_site_is_checked_at_construction() -> None:
    with pytest.raises(ValueError, match="base_url"):
        ChatChatGptEs(base_url=["https://a.example", "ftp://b.example"])
    with pytest.raises(ValueError, match="at least one site"):
        ChatChatGptEs(base_url=[])
    model = ChatChatGptEs(base_url=["https://a.example/", "https://a.example"])
    assert model.base_url == ["https://a.example"]  # each site once


def test_a_summed_stream_from_one_site_only(sites: Sites) -> None:
    fail_5xx(sites)
    chunks = list(model_for(sites.urls).stream("hello"))
    assert summed(chunks).text == "from aipkit"


async def test_a_call_cancelled_during_failover_frees_its_slot(
    sites: Sites, hanging: SilentSite
) -> None:
    model = model_for([hanging.url, sites.second.base_url], timeout=5, max_concurrency=1)
    await cancel_once_it_hangs(model, "hangs on the first site", hanging, 1)
    assert model.site_health()[0].failures == 0  # a cancellation is not the site's failure
    # The only slot is free again: the next call reaches the (still hanging) site at once.
    await cancel_once_it_hangs(model, "again", hanging, 2)


def test_the_guides_failover_example_runs() -> None:
    """docs/several-sites.md's offline failover example, run as written."""
    guide = (Path(__file__).parents[2] / "docs" / "several-sites.md").read_text()
    section = guide.split("## Testing failover offline", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert code is not None
    exec(compile(code[1], "several-sites.md", "exec"), {})  # noqa: S102 (our own guide)
