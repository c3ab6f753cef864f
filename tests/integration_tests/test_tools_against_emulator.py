"""Tool calling, structured output and create_agent against the emulator's stand-in model."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ToolStrategy
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_chatgptes import ChatChatGptEs, InvalidInputError
from langchain_chatgptes._prompt import correction
from langchain_chatgptes._tools import ToolChoice
from langchain_chatgptes.emulator import CallStyle, Emulator, ScriptedResponder, ToolModelResponder

from .conftest import PATHS, call, summed

MODES = [pytest.param(False, id="json"), pytest.param(True, id="sse")]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is 22 °C and sunny in {city}."


class WeatherReport(BaseModel):
    """A weather report."""

    city: str
    summary: str


def model_for(emulator: Emulator, **kwargs: Any) -> ChatChatGptEs:
    return ChatChatGptEs(base_url=emulator.base_url, timeout=5, **kwargs)


@pytest.mark.parametrize("style", ["tags", "tool_calls_json", "fenced", "lone", "string_arguments"])
@pytest.mark.parametrize("path", PATHS)
async def test_every_call_format_on_every_path(
    emulator: Emulator, style: CallStyle, path: str
) -> None:
    emulator.stream = path.endswith("stream")
    emulator.responder = ToolModelResponder(style=style)
    bound = model_for(emulator).bind_tools([add, get_weather])
    message = await call(bound, path, "Please add 3 and 4")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("add", {"a": 3, "b": 4})]
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert message.text == ""


@pytest.mark.parametrize("stream", MODES)
def test_text_streams_before_the_call_and_stream_equals_invoke(
    emulator: Emulator, stream: bool
) -> None:
    emulator.stream = stream
    emulator.chunk_delay = 0.01
    emulator.responder = ToolModelResponder(preamble="Let me look that up for you. ")
    bound = model_for(emulator).bind_tools([get_weather])
    chunks: list[Any] = list(bound.stream("What is the weather in Lima?"))
    streamed = summed(chunks)
    invoked = bound.invoke("What is the weather in Lima?")
    assert streamed.text == invoked.text == "Let me look that up for you."
    strip_ids = lambda m: [(c["name"], c["args"]) for c in m.tool_calls]  # noqa: E731
    assert strip_ids(streamed) == strip_ids(invoked) == [("get_weather", {"city": "Lima"})]
    assert chunks[-1].tool_call_chunks and not chunks[-1].text  # calls come on the last chunk
    if stream:  # the text arrived in pieces before the last chunk
        assert len([c for c in chunks[:-1] if c.text]) > 1


def test_tool_definitions_and_results_reach_the_site(emulator: Emulator) -> None:
    emulator.responder = ToolModelResponder()
    bound = model_for(emulator).bind_tools([get_weather])
    first = bound.invoke([HumanMessage("Weather in Kyoto?")])
    result = get_weather.invoke(first.tool_calls[0])
    assert isinstance(result, ToolMessage)
    final = bound.invoke([HumanMessage("Weather in Kyoto?"), first, result])
    assert final.text == "The tool says: It is 22 °C and sunny in Kyoto."
    sent = emulator.chat_requests()[-1].form["message"]
    assert '"name": "get_weather", "description": "Get the current weather in a city."' in sent
    assert f"Tool result ({first.tool_calls[0]['id']}): It is 22 °C and sunny in Kyoto." in sent


@pytest.mark.parametrize("path", PATHS)
async def test_multibyte_text_survives_both_ways(emulator: Emulator, path: str) -> None:
    emulator.stream = path.endswith("stream")
    emulator.responder = ToolModelResponder()

    @tool
    def unicode_customer(customer_name: str) -> str:
        """Create a customer (例如: 你好啊集团)."""
        return customer_name

    bound = model_for(emulator).bind_tools([unicode_customer], tool_choice="any")
    message = await call(bound, path, "Create a customer named '你好啊集团 🎉'")
    assert message.tool_calls[0]["args"] == {"customer_name": "你好啊集团 🎉"}
    assert "例如: 你好啊集团" in emulator.chat_requests()[-1].form["message"]


@pytest.mark.parametrize("path", PATHS)
async def test_required_call_is_asked_for_again(emulator: Emulator, path: str) -> None:
    emulator.stream = path.endswith("stream")
    emulator.responder = ToolModelResponder(malformed_first=2)  # no call, then a broken one
    bound = model_for(emulator, max_tool_retries=2).bind_tools([add], tool_choice="add")
    message = await call(bound, path, "Hello!")
    assert [c["name"] for c in message.tool_calls] == ["add"]
    posts = emulator.chat_requests()
    assert len(posts) == 3
    expected = correction(ToolChoice("named", "add"))
    assert posts[1].form["message"].endswith(f"User: {expected}\nAssistant:")


@pytest.mark.parametrize("path", PATHS)
async def test_retries_end_with_what_there_is(emulator: Emulator, path: str) -> None:
    emulator.stream = path.endswith("stream")
    emulator.responder = ToolModelResponder(malformed_first=2)
    bound = model_for(emulator, max_tool_retries=1).bind_tools([add], tool_choice="any")
    message = await call(bound, path, "Hello!")
    assert message.tool_calls == []
    assert len(message.invalid_tool_calls) == 1  # the broken block, with its raw text
    assert len(emulator.chat_requests()) == 2


async def test_auto_mode_does_not_insist(emulator: Emulator) -> None:
    emulator.responder = ToolModelResponder(malformed_first=1)
    bound = model_for(emulator, max_tool_retries=3).bind_tools([add])
    message = await bound.ainvoke("Please add 1 and 2")
    assert message.tool_calls == [] and message.text == "I am not sure which tool to use."
    assert len(emulator.chat_requests()) == 1


@pytest.mark.parametrize("path", PATHS)
async def test_unknown_tool_is_an_invalid_call_with_its_reason(
    emulator: Emulator, path: str
) -> None:
    emulator.stream = path.endswith("stream")
    emulator.responder = ScriptedResponder(
        ['<tool_call>{"name": "subtract", "arguments": {"a": 1}}</tool_call>']
    )
    message = await call(model_for(emulator).bind_tools([add]), path, "x")
    assert message.tool_calls == []
    [invalid] = message.invalid_tool_calls
    assert invalid["name"] == "subtract"
    if path.endswith("invoke"):  # a streamed chunk cannot carry the reason
        assert "unknown tool 'subtract'" in (invalid["error"] or "")


def test_tool_choice_none_leaves_tools_out(emulator: Emulator) -> None:
    emulator.responder = ToolModelResponder()
    message = model_for(emulator).bind_tools([add], tool_choice="none").invoke("add 1 and 2")
    assert message.tool_calls == []
    assert "<tools>" not in emulator.chat_requests()[0].form["message"]


def test_bad_tool_choice_fails_at_bind_time(emulator: Emulator) -> None:
    with pytest.raises(InvalidInputError, match="tool_choice='multiply'"):
        model_for(emulator).bind_tools([add], tool_choice="multiply")


# --- structured output ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
@pytest.mark.parametrize("path", PATHS)
async def test_structured_output_methods(
    emulator: Emulator, method: Literal["function_calling", "json_schema"], path: str
) -> None:
    emulator.stream = path.endswith("stream")
    emulator.responder = ToolModelResponder(fence_json=True)
    structured = model_for(emulator).with_structured_output(WeatherReport, method=method)
    prompt = "Report the weather in Oslo"
    if path == "invoke":
        result = structured.invoke(prompt)
    elif path == "ainvoke":
        result = await structured.ainvoke(prompt)
    elif path == "stream":
        result = list(structured.stream(prompt))[-1]
    else:
        result = [r async for r in structured.astream(prompt)][-1]
    assert isinstance(result, WeatherReport)
    assert result.city == "Oslo"


def test_json_schema_reply_is_clean_json_text(emulator: Emulator) -> None:
    emulator.responder = ToolModelResponder(fence_json=True)
    model = model_for(emulator).bind(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "WeatherReport", "schema": WeatherReport.model_json_schema()},
        }
    )
    message = model.invoke("Report the weather in Oslo")
    assert json.loads(message.text) == {"city": "Oslo", "summary": "Oslo"}
    assert not message.text.startswith("```")


def test_include_raw(emulator: Emulator) -> None:
    emulator.responder = ScriptedResponder(["not json at all"])
    structured = model_for(emulator).with_structured_output(
        WeatherReport, method="json_schema", include_raw=True
    )
    result = structured.invoke("x")
    assert isinstance(result, dict)
    assert isinstance(result["raw"], AIMessage) and result["parsed"] is None
    assert result["parsing_error"] is not None


# --- create_agent -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize("path", PATHS)
async def test_create_agent_loop(emulator: Emulator, stream: bool, path: str) -> None:
    emulator.stream = stream
    emulator.responder = ToolModelResponder()
    agent = create_agent(model_for(emulator), tools=[get_weather])
    state: Any = {"messages": [HumanMessage("What is the weather in Madrid?")]}
    if path == "invoke":
        messages = agent.invoke(state)["messages"]
    elif path == "ainvoke":
        messages = (await agent.ainvoke(state))["messages"]
    elif path == "stream":
        messages = list(agent.stream(state, stream_mode="values"))[-1]["messages"]
    else:
        messages = [s async for s in agent.astream(state, stream_mode="values")][-1]["messages"]
    _question, ai_call, tool_result, final = messages
    assert ai_call.tool_calls[0]["name"] == "get_weather"
    assert tool_result.content == "It is 22 °C and sunny in Madrid."
    assert final.text == "The tool says: It is 22 °C and sunny in Madrid."


@pytest.mark.parametrize("strategy", ["provider", "tool"])
async def test_create_agent_with_response_format(emulator: Emulator, strategy: str) -> None:
    emulator.responder = ToolModelResponder(fence_json=True)
    response_format: Any = WeatherReport if strategy == "provider" else ToolStrategy(WeatherReport)
    agent = create_agent(model_for(emulator), tools=[get_weather], response_format=response_format)
    state: Any = {"messages": [HumanMessage("What is the weather in Madrid?")]}
    result = await agent.ainvoke(state)
    report = result["structured_response"]
    assert isinstance(report, WeatherReport)
    assert report.city
    sent = [r.form["message"] for r in emulator.chat_requests()]
    if strategy == "provider":  # gpt-4o: LangChain binds response_format, not a tool
        assert "<response_schema>" in sent[-1]
    else:
        assert '"name": "WeatherReport"' in sent[-1]


# --- text that looks like a call, and calls after prose ------------------------------------------


@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize("path", PATHS)
async def test_a_tag_without_a_call_after_it_is_text(
    emulator: Emulator, path: str, stream: bool
) -> None:
    emulator.stream = stream
    answer = "Use <tool_call> tags to call tools. The weather is fine."
    emulator.responder = ScriptedResponder([answer])
    message = await call(model_for(emulator).bind_tools([get_weather]), path)
    assert message.text == answer  # not 'Use' with the rest in an invalid call
    assert message.invalid_tool_calls == [] and message.tool_calls == []
    assert message.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("stream", MODES)
@pytest.mark.parametrize("path", PATHS)
async def test_prose_then_a_fenced_call_keeps_only_the_prose(
    emulator: Emulator, path: str, stream: bool
) -> None:
    emulator.stream = stream
    emulator.chunk_delay = 0.005
    fenced = '{"name": "get_weather", "arguments": {"city": "Lima"}}'
    emulator.responder = ScriptedResponder([f"Let me check.\n```json\n{fenced}\n```"])
    message = await call(model_for(emulator).bind_tools([get_weather]), path)
    assert message.text == "Let me check."  # the call's JSON is not also content
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Lima"})
    ]
    assert message.response_metadata["finish_reason"] == "tool_calls"
