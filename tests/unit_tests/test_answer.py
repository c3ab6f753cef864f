"""The answer engine on scripted events, without sockets."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import pytest
from langchain_core.messages import HumanMessage

from langchain_chatgptes._answer import AnswerEngine, AnswerSpec
from langchain_chatgptes._conversation import ChatInput, Visitor
from langchain_chatgptes._events import End, Event, Metadata, TextDelta, Usage
from langchain_chatgptes._tools import ToolChoice

VISITOR = Visitor("0123456789", "uuid")
CALL = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'


class Script:
    """Answers each call with the next list of batches; records what was sent."""

    def __init__(self, *replies: Sequence[Sequence[Event]]) -> None:
        self.replies = list(replies)
        self.sent: list[ChatInput] = []

    async def __call__(self, chat: ChatInput) -> AsyncGenerator[list[Event], None]:
        self.sent.append(chat)
        for batch in self.replies.pop(0):
            yield list(batch)


async def run(engine: AnswerEngine, script: Script) -> list[str]:
    return [piece async for piece in engine.pieces(script)]


def engine(**spec: object) -> AnswerEngine:
    return AnswerEngine(AnswerSpec(model_name="gpt-4o", **spec), [HumanMessage("hi")], VISITOR)  # type: ignore[arg-type]


async def test_text_is_shown_as_it_comes_and_the_end_rides_on_the_result() -> None:
    answer = engine()
    script = Script([[TextDelta("Hel")], [TextDelta("lo")], [TextDelta(" there"), End()]])
    assert await run(answer, script) == ["Hel", "lo"]
    result = answer.result
    assert result.lead == " there"  # arrived with the end: goes out on the last chunk
    assert result.message("Hello").text == "Hello there"
    assert result.response_metadata["finish_reason"] == "stop"
    assert result.response_metadata["usage_is_estimate"] is True


async def test_metadata_and_real_usage_reach_the_result() -> None:
    answer = engine()
    citations = [{"url": "https://example.com"}]
    script = Script([[TextDelta("ok"), Metadata({"citations": citations}), Usage(12, 3), End()]])
    await run(answer, script)
    result = answer.result
    assert result.response_metadata["citations"] == citations
    assert result.response_metadata["usage_is_estimate"] is False
    assert result.usage == {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}


async def test_stop_and_max_tokens_end_the_answer_on_the_client() -> None:
    answer = engine(stop=("world",))
    shown = await run(answer, Script([[TextDelta("Hello wo")], [TextDelta("rld. More"), End()]]))
    assert shown == ["Hell"]  # "o wo" held back: it might start "world"
    assert answer.result.message("".join(shown)).text == "Hello "
    assert answer.result.response_metadata["finish_reason"] == "stop"
    limited = engine(max_tokens=1)
    await run(limited, Script([[TextDelta("abcdefgh"), End()]]))
    assert limited.result.message("").text == "abcd"
    assert limited.result.response_metadata["finish_reason"] == "length"


async def test_a_required_call_is_asked_for_again_max_tool_retries_times() -> None:
    spec = {"tool_names": ("add",), "choice": ToolChoice("required"), "max_tool_retries": 2}
    answer = engine(**spec)
    script = Script(
        [[TextDelta("no"), End()]], [[TextDelta("still no"), End()]], [[TextDelta(CALL), End()]]
    )
    await run(answer, script)
    assert [c["name"] for c in answer.result.tool_calls] == ["add"]
    assert len(script.sent) == 3
    assert script.sent[1].turns[-1].role == "user"  # the correction
    once = engine(**{**spec, "max_tool_retries": 0})
    script = Script([[TextDelta("no"), End()]])
    await run(once, script)
    assert once.result.tool_calls == [] and len(script.sent) == 1


def test_the_result_is_not_there_before_the_end() -> None:
    with pytest.raises(RuntimeError, match="has not ended"):
        _ = engine().result
