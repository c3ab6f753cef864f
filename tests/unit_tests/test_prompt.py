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
from langchain_chatgptes._conversation import render_turns
from langchain_chatgptes._prompt import SYSTEM_PROMPT, build_message, to_turns
from langchain_chatgptes.protocols import choose_bot, read_page
from langchain_chatgptes.protocols._base import Bot
from langchain_chatgptes.protocols.wpaicg import build_form

# What the old SiteInfo(nonce, post_id, url) stood for: a bot with bot_id "0", not streaming.
BOT = Bot(
    protocol="wpaicg",
    bot_id="0",
    page_url="https://chatgpt.es",
    endpoint="https://chatgpt.es/wp-admin/admin-ajax.php",
    nonce="5f1e2d3c4b",
    facts={"post_id": "2173", "url": "https://chatgpt.es", "streams": False},
)


def render_conversation(messages: list[BaseMessage]) -> str:
    """The old ``_prompt.render_conversation``: the text after the system prompt."""
    return render_turns(to_turns(messages))


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
    form = build_form(BOT, BOT.nonce, build_message(CONVERSATIONS[name]), "0123456789")
    assert list(form) == snapshot  # a list keeps the order fields are sent in


def test_the_bot_read_from_a_page_gives_the_same_form() -> None:
    page = (
        '<div class="wpaicg-chat-shortcode" data-nonce="5f1e2d3c4b" data-post-id="2173" '
        'data-url="https://chatgpt.es" data-bot-id="0" data-openai_stream_nav="0"></div>'
    )
    bot = choose_bot(read_page(page, "https://chatgpt.es"))
    message = build_message(CONVERSATIONS["one_turn"])
    assert build_form(bot, bot.nonce, message, "0123456789") == build_form(
        BOT, BOT.nonce, message, "0123456789"
    )


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
