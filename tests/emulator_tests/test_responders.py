"""Responders and Reply factories, without a server."""

from __future__ import annotations

import dataclasses

import pytest

from langchain_chatgptes.emulator import ChatRequest, EchoResponder, Reply, ScriptedResponder


def chat(message: str) -> ChatRequest:
    return ChatRequest(message=message, form={}, client_id="c", upstream_messages=[])


def test_echo_is_deterministic_and_bounded() -> None:
    echo = EchoResponder()
    long = "word " * 100 + "THE END"
    answer = echo(chat(long))
    assert answer == echo(chat(long))
    assert isinstance(answer, str)
    assert answer.startswith("This answer comes from the local chatgpt.es emulator. You wrote: ")
    assert answer.endswith("word THE END")
    assert len(answer.split("You wrote: ", 1)[1]) == 300


@pytest.mark.parametrize(
    ("message", "quoted"),
    [
        ("Preamble. User input: What time is it?", "What time is it?"),
        ("Preamble. User input: User: Hi\nAssistant: Hello\nUser: Bye now\nAssistant:", "Bye now"),
        ("System: S\nUser (ana): named turn\nAssistant:", "named turn"),
        ("no labels at all", "no labels at all"),
    ],
)
def test_echo_quotes_the_last_user_turn(message: str, quoted: str) -> None:
    assert EchoResponder()(chat(message)) == (
        f"This answer comes from the local chatgpt.es emulator. You wrote: {quoted}"
    )


def test_scripted_queue_then_fallback() -> None:
    scripted = ScriptedResponder(["one", Reply.site_error("two")], fallback=lambda r: "fb")
    assert scripted.remaining == 2
    assert scripted(chat("a")) == "one"
    assert scripted(chat("a")) == Reply.site_error("two")
    assert scripted(chat("a")) == "fb"
    scripted.push("three", "four")
    assert scripted.remaining == 2
    assert scripted(chat("a")) == "three"


def test_scripted_default_fallback_is_echo() -> None:
    assert ScriptedResponder([])(chat("hi")) == EchoResponder()(chat("hi"))


def test_reply_factories() -> None:
    assert Reply.text("a") == Reply("text", "a")
    raw = Reply.raw(500, "boom", headers={"X-A": "1"})
    assert (raw.status, raw.body, raw.headers) == (500, b"boom", (("X-A", "1"),))
    assert Reply.flag("ipBanned", "m").kind == "ipBanned"
    with pytest.raises(dataclasses.FrozenInstanceError):
        raw.status = 200  # type: ignore[misc]
