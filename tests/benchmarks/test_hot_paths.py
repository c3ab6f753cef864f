"""pytest-benchmark timings of the hot pure functions, so regressions show (``make bench``).

``make test`` runs them once each (``--benchmark-disable``), as plain tests.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pytest_benchmark.fixture import BenchmarkFixture

from langchain_chatgptes._prompt import build_message
from langchain_chatgptes._tools import parse_reply
from langchain_chatgptes.emulator import Emulator
from langchain_chatgptes.protocols import choose_bot, read_page
from langchain_chatgptes.protocols._base import Bot
from langchain_chatgptes.protocols.wpaicg import StreamDecoder


@pytest.fixture(scope="module")
def page() -> str:
    with Emulator() as emulator, urllib.request.urlopen(emulator.base_url + "/") as reply:  # noqa: S310
        return str(reply.read().decode())


def test_parse_page(benchmark: BenchmarkFixture, page: str) -> None:
    def parse() -> Bot:
        return choose_bot(read_page(page, "https://chatgpt.es"))

    bot = benchmark(parse)
    assert bot.nonce


def test_build_message_ten_turns(benchmark: BenchmarkFixture) -> None:
    messages: list[BaseMessage] = [SystemMessage("Be concise.")]
    for i in range(5):
        messages += [HumanMessage(f"Question {i}: " + "words " * 40), AIMessage("Answer " * 60)]
    text = benchmark(build_message, messages)
    assert text.endswith("Assistant:")


def test_decode_100kb_event_stream_in_1kb_pieces(benchmark: BenchmarkFixture) -> None:
    event = "data: " + json.dumps({"choices": [{"delta": {"content": "token "}}]}) + "\n\n"
    body = (event * (100_000 // len(event)) + "data: [DONE]\n\n").encode()
    pieces = [body[i : i + 1024] for i in range(0, len(body), 1024)]

    def decode() -> int:
        decoder = StreamDecoder()
        events = [event for piece in pieces for event in decoder.feed(piece)]
        return len(events + decoder.finish())

    assert benchmark(decode) > 1000


def test_parse_reply_with_three_calls(benchmark: BenchmarkFixture) -> None:
    block = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Madrid", "days": 3}}</tool_call>'
    )
    reply = "Let me check three cities.\n" + block * 3
    parsed = benchmark(parse_reply, reply, ("get_weather",))
    assert len(parsed.tool_calls) == 3
