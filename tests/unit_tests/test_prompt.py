"""Messages -> the site's one text box, and the exact form fields sent (snapshots)."""

from __future__ import annotations

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from syrupy.assertion import SnapshotAssertion

from langchain_chatgptes import InvalidInputError
from langchain_chatgptes._prompt import SYSTEM_PROMPT, build_message, render_conversation
from langchain_chatgptes._protocol import SiteInfo, build_form

SITE = SiteInfo(nonce="5f1e2d3c4b", post_id="2173", url="https://chatgpt.es")

CONVERSATIONS: dict[str, list[BaseMessage]] = {
    "one_turn": [HumanMessage("What is the capital of Spain?")],
    "multi_turn": [
        HumanMessage("Hi, I am Ana."),
        AIMessage("Hello Ana! How can I help?"),
        HumanMessage("What is my name?"),
    ],
    "system": [SystemMessage("Answer in one word."), HumanMessage("Colour of the sky?")],
    "unicode": [
        HumanMessage("¿Qué significa 「日本語」? 🎌"),
        AIMessage("Significa «idioma japonés» — 日本語."),
        HumanMessage("Gracias 🙏\nY en coreano: 한국어?"),
    ],
    "long": [HumanMessage("Lorem ipsum dolor sit amet. " * 40)],
    "content_blocks": [
        HumanMessage(content=[{"type": "text", "text": "First part."}, "Second part."]),
    ],
    "tool_history": [
        HumanMessage("Weather in Madrid?"),
        AIMessage(
            content=[
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "weather",
                    "input": {"city": "Madrid"},
                },
            ],
            tool_calls=[{"id": "call_1", "name": "weather", "args": {"city": "Madrid"}}],
        ),
        ToolMessage("22 °C, sunny", tool_call_id="call_1"),
        ToolMessage("service down", tool_call_id="call_2", status="error"),
    ],
}


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_form_fields_snapshot(name: str, snapshot: SnapshotAssertion) -> None:
    form = build_form(SITE, build_message(CONVERSATIONS[name]), "0123456789")
    assert list(form.items()) == snapshot  # a list keeps the order fields are sent in


def test_message_is_system_prompt_space_conversation() -> None:
    message = build_message([HumanMessage("Hola")])
    assert message == f"{SYSTEM_PROMPT} Hola"


def test_lone_user_message_is_verbatim() -> None:
    assert render_conversation([HumanMessage("  keep\n spacing ")]) == "  keep\n spacing "


def test_labelled_lines_end_with_assistant() -> None:
    text = render_conversation(
        [SystemMessage("S"), HumanMessage("U1"), AIMessage("A1"), HumanMessage("U2")]
    )
    assert text == "System: S\nUser: U1\nAssistant: A1\nUser: U2\nAssistant:"


def test_named_user_is_labelled_not_dropped() -> None:
    text = render_conversation([HumanMessage("hello", name="example_user")])
    assert text == "User (example_user): hello\nAssistant:"


def test_tool_calls_are_rendered_once_from_tool_calls() -> None:
    text = render_conversation(CONVERSATIONS["tool_history"])
    assert (
        text.count("Madrid") == 2
    )  # the question and the one rendered call, not the tool_use block
    assert '<tool_call>{"id": "call_1", "name": "weather", "arguments": {"city": "Madrid"}}' in text
    assert "Tool result error (call_2): service down" in text


def test_empty_message_list_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="at least one message"):
        build_message([])


def test_all_empty_messages_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        build_message([HumanMessage(""), HumanMessage("   ")])


@pytest.mark.parametrize(
    ("block", "kind"),
    [
        ({"type": "image_url", "image_url": {"url": "https://x/y.png"}}, "image_url"),
        ({"type": "image", "url": "https://x/y.png"}, "image"),
        ({"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}, "audio"),
        ({"type": "file", "url": "https://x/doc.pdf"}, "file"),
    ],
)
def test_non_text_block_names_its_type(block: dict[str, object], kind: str) -> None:
    message = HumanMessage(content=[{"type": "text", "text": "Look:"}, block])
    with pytest.raises(InvalidInputError, match=f"'{kind}' content block") as info:
        build_message([message])
    assert isinstance(info.value, ValueError)


def test_lone_surrogate_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="surrogate"):
        build_message([HumanMessage("bad \ud800 text")])
