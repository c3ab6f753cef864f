"""The lenient tool-call parser, the streaming filter and tool_choice, on literal text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from syrupy.assertion import SnapshotAssertion

from langchain_chatgptes import InvalidInputError
from langchain_chatgptes._prompt import build_message, correction, render_instructions
from langchain_chatgptes._tools import (
    ReplyFilter,
    ToolChoice,
    _parse,
    json_answer,
    parse_reply,
    tool_choice_of,
)

NAMES = ("add", "get_weather")


def calls(text: str, names: tuple[str, ...] = NAMES) -> list[tuple[str, dict[str, Any]]]:
    return [(c["name"], c["args"]) for c in parse_reply(text, names).tool_calls]


# --- tool_choice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, ToolChoice("auto")),
        ("auto", ToolChoice("auto")),
        ("any", ToolChoice("required")),
        ("required", ToolChoice("required")),
        (True, ToolChoice("required")),
        ("none", ToolChoice("none")),
        ("add", ToolChoice("named", "add")),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            ToolChoice("named", "get_weather"),
        ),
    ],
)
def test_tool_choice_values(choice: Any, expected: ToolChoice) -> None:
    assert tool_choice_of(choice, NAMES) == expected


@pytest.mark.parametrize("choice", ["subtract", {"type": "function", "function": {"name": "x"}}, 3])
def test_unknown_tool_choice_is_a_clear_error(choice: Any) -> None:
    with pytest.raises(InvalidInputError, match="add, get_weather"):
        tool_choice_of(choice, NAMES)


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>',
        '<tool_call>\n  {"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>',
        '{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}',
        '```json\n{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}\n```',
        '```json\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n```',
        '{"name": "add", "parameters": {"a": 1, "b": 2}}',
        '[{"name": "add", "arguments": {"a": 1, "b": 2}}]',
        '<tool_call>{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}</tool_call>',
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2,},}</tool_call>',
        "<tool_call>{'name': 'add', 'arguments': {'a': 1, 'b': 2}}</tool_call>",
        '<tool_call>{"type": "function", "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}',  # noqa: E501
    ],
)
def test_every_accepted_format(text: str) -> None:
    assert calls(text) == [("add", {"a": 1, "b": 2})]


def test_text_outside_blocks_stays_content_and_ids_are_unique() -> None:
    reply = parse_reply(
        'Let me check both.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Madrid"}}'
        '</tool_call><tool_call>{"name": "get_weather", "arguments": {"city": "Lima"}}</tool_call>'
        "\nDone.",
        NAMES,
    )
    assert reply.content == "Let me check both.\n\nDone."
    assert [c["args"]["city"] for c in reply.tool_calls] == ["Madrid", "Lima"]
    ids = [c["id"] for c in reply.tool_calls]
    assert all(ids) and len(set(ids)) == 2
    assert all(c["type"] == "tool_call" for c in reply.tool_calls)


def test_closing_tag_inside_a_json_string_does_not_end_the_block() -> None:
    text = '<tool_call>{"name": "add", "arguments": {"note": "</tool_call>"}}</tool_call> ok'
    reply = parse_reply(text, NAMES)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("add", {"note": "</tool_call>"})]
    assert reply.content == "ok"


def test_no_arguments_means_empty_args() -> None:
    assert calls('<tool_call>{"name": "add"}</tool_call>') == [("add", {})]
    assert calls('<tool_call>{"name": "add", "arguments": ""}</tool_call>') == [("add", {})]


def test_multibyte_arguments_survive() -> None:
    args = {"who": "你好啊集团 🎉", "jp": "こんにちは"}
    call = json.dumps({"name": "add", "arguments": args}, ensure_ascii=False)
    text = f"<tool_call>{call}</tool_call>"
    assert calls(text) == [("add", args)]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<tool_call>I would call add now</tool_call>", "not a JSON object"),
        ('<tool_call>{"arguments": {"a": 1}}</tool_call>', "not a JSON object"),
        ('<tool_call>{"name": "add", "arguments": [1, 2]}</tool_call>', "not a JSON object"),
        ('<tool_call>{"name": "subtract", "arguments": {"a": 1}}</tool_call>', "unknown tool"),
    ],
)
def test_unusable_calls_become_invalid_with_the_reason(text: str, error: str) -> None:
    reply = parse_reply(text, NAMES)
    assert reply.tool_calls == []
    [invalid] = reply.invalid_tool_calls
    assert error in (invalid["error"] or "")
    assert invalid["id"]


def test_plain_text_and_plain_json_are_not_calls() -> None:
    assert parse_reply("The answer is 3.", NAMES).content == "The answer is 3."
    reply = parse_reply('{"setup": "Why?", "punchline": "Because."}', NAMES)
    assert reply.tool_calls == [] and reply.invalid_tool_calls == []
    assert json.loads(reply.content) == {"setup": "Why?", "punchline": "Because."}


CALLISH = (
    st.text(
        alphabet=st.sampled_from(list('<>/{}[]":,` \njsonametool_calargumentsadd123')), max_size=80
    )
    | st.text()
)


@settings(max_examples=400, deadline=None)
@given(CALLISH)
def test_the_parser_itself_raises_nothing_on_arbitrary_text(text: str) -> None:
    # parse_reply catches every exception (a parser bug must not lose the answer), so the
    # parts it runs are tested without that net: they must not raise at all.
    reply = _parse(text, NAMES)
    assert isinstance(reply.content, str)
    for call in reply.tool_calls:
        assert call["name"] in NAMES and isinstance(call["args"], dict) and call["id"]
    assert isinstance(json_answer(text), str)
    reply_filter = ReplyFilter()
    shown = "".join(reply_filter.feed(text[i : i + 3]) for i in range(0, len(text), 3))
    assert isinstance(shown, str)


@settings(max_examples=200, deadline=None)
@given(CALLISH)
def test_shown_text_is_a_prefix_of_the_content(text: str) -> None:
    # What streams before the end must never have to be taken back.
    reply_filter = ReplyFilter()
    shown = "".join(reply_filter.feed(text[i : i + 2]) for i in range(0, len(text), 2))
    content = _parse(text, NAMES).content
    assert content.startswith(shown), (text, shown, content)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(NAMES), st.dictionaries(st.text(), JSON_VALUES, max_size=4)),
        min_size=1,
        max_size=4,
    ),
    st.text(alphabet=st.characters(blacklist_characters="<>{}[]`"), max_size=40),
)
def test_valid_blocks_round_trip(expected: list[tuple[str, dict[str, Any]]], prose: str) -> None:
    blocks = "".join(
        "<tool_call>"
        + json.dumps({"name": name, "arguments": args}, ensure_ascii=False)
        + "</tool_call>"
        for name, args in expected
    )
    reply = parse_reply(prose + blocks, NAMES)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == expected
    assert reply.content == prose.strip()


# --- JSON answers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        'Sure! Here it is:\n```\n{"a": 1}\n```\nAnything else?',
        'Here: {"a": 1} — enjoy',
    ],
)
def test_json_answer_strips_fences_and_chatter(text: str) -> None:
    assert json.loads(json_answer(text)) == {"a": 1}


def test_json_answer_leaves_non_json_alone() -> None:
    assert json_answer("no json here") == "no json here"


# --- streaming filter ------------------------------------------------------------------------


def shown(pieces: list[str], **kwargs: bool) -> str:
    reply_filter = ReplyFilter(**kwargs)
    return "".join(reply_filter.feed(piece) for piece in pieces)


def test_text_before_a_call_is_shown_the_call_is_held() -> None:
    pieces = ["Let me ", "check. <tool", '_call>{"name": "add"', "}</tool_call> bye"]
    assert shown(pieces) == "Let me check."


def test_partial_tag_is_held_until_it_is_clearly_not_a_tag() -> None:
    reply_filter = ReplyFilter()
    assert reply_filter.feed("a <too") == "a"
    assert reply_filter.feed("k and more") == " <took and more"


def test_a_reply_that_opens_like_json_is_held_whole() -> None:
    assert shown(["  ", '{"tool_calls": ', "[]}"]) == ""
    assert shown(["```json\n", "{}", "\n```"]) == ""


def test_hold_shows_nothing() -> None:
    assert shown(["plain text"], hold=True) == ""


# --- the prompt, snapshotted ---------------------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def unicode_customer(customer_name: str) -> str:
    """Create a customer; the name stays in its own script (例: 你好)."""
    return customer_name


TOOLS = [convert_to_openai_tool(add), convert_to_openai_tool(unicode_customer)]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "Joke",
        "schema": {
            "type": "object",
            "properties": {"setup": {"type": "string"}},
            "required": ["setup"],
        },
    },
}
HISTORY = [
    HumanMessage("What is 1 + 2?"),
    AIMessage("", tool_calls=[{"id": "call_1", "name": "add", "args": {"a": 1, "b": 2}}]),
    ToolMessage("3", tool_call_id="call_1"),
]


@pytest.mark.parametrize(
    ("name", "choice", "response_format"),
    [
        ("auto", ToolChoice("auto"), None),
        ("required", ToolChoice("required"), None),
        ("named", ToolChoice("named", "unicode_customer"), None),
        ("none", ToolChoice("none"), None),
        ("tools_and_schema", ToolChoice("auto"), SCHEMA),
        ("json_object_only", ToolChoice("auto"), {"type": "json_object"}),
    ],
    ids=["auto", "required", "named", "none", "tools_and_schema", "json_object_only"],
)
def test_rendered_prompt_snapshot(
    name: str,
    choice: ToolChoice,
    response_format: dict[str, Any] | None,
    snapshot: SnapshotAssertion,
) -> None:
    tools = [] if name == "json_object_only" else TOOLS
    assert build_message(HISTORY, render_instructions(tools, choice, response_format)) == snapshot


def test_unsupported_response_format_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="json_schema"):
        render_instructions([], ToolChoice(), {"type": "text"})


def test_correction_names_the_tool() -> None:
    assert '"add"' in correction(ToolChoice("named", "add"))
    assert "one of the tools" in correction(ToolChoice("required"))
