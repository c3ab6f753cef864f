"""A conversation as the sites receive it: turns of text, and the one-text form.

Every protocol gets a :class:`ChatInput` (turns, instructions, visitor ids); how it sends
them is its own business. The legacy plugin takes one text box, built by :func:`flatten`;
a protocol that takes turns as a list maps :attr:`ChatInput.turns` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SYSTEM_PROMPT = (
    "Your default language is English. Always respond in English unless the user's message "
    "is in a different language. If the user's message is not in English, respond in the "
    "language of the user's message. Maintain this language behavior throughout the "
    "conversation unless explicitly instructed otherwise. User input:"
)
"""The preamble every prompt starts with (verbatim from the protocol reference)."""

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Turn:
    """One message of the conversation, as text.

    Attributes:
        role: Who speaks.
        label: How the turn is named when the conversation is written as one text
            (``User``, ``Assistant (bob)``, ``Tool result (call_1)``...).
        text: The message text (earlier tool calls already written into it).
    """

    role: Role
    label: str
    text: str


@dataclass(frozen=True)
class Visitor:
    """Who the site sees: stable per model instance, like one browser.

    Attributes:
        client_id: 10 lower-case hex characters (the legacy plugin's guest id).
        session_id: A UUID4 (the newer plugins' guest session id).
    """

    client_id: str
    session_id: str


@dataclass(frozen=True)
class ChatInput:
    """What one chat call sends, whatever the protocol.

    Attributes:
        turns: The conversation, oldest first (never empty).
        instructions: Tools, the tool rule and the answer format, as prompt text ("" if
            none); the protocol decides where it goes.
        visitor: The visitor's ids.
        follow_up: A re-ask (the last turn is the package's own correction, not the
            user's): protocols that send the latest human turn apart treat it as context.
    """

    turns: tuple[Turn, ...]
    instructions: str
    visitor: Visitor
    follow_up: bool = False


def render_turns(turns: tuple[Turn, ...], *, labelled: bool = False) -> str:
    """The conversation as text: a lone user turn verbatim, else labelled lines.

    A lone, unnamed user turn is written as it is (unless ``labelled``); anything else
    becomes ``Label: text`` lines ending with ``Assistant:``, so the model answers as the
    next turn.
    """
    if len(turns) == 1 and turns[0].role == "user" and turns[0].label == "User" and not labelled:
        return turns[0].text
    return "\n".join(f"{turn.label}: {turn.text}" for turn in turns) + "\nAssistant:"


def flatten(chat: ChatInput) -> str:
    """The whole call as one text: :data:`SYSTEM_PROMPT`, one space, the conversation.

    With instructions they come first, then a blank line and the conversation as
    labelled lines. Every protocol that takes one text box sends this (chatgpt.es's page
    script prepends the preamble; the calls are stateless, so the whole conversation goes).
    """
    conversation = render_turns(chat.turns, labelled=bool(chat.instructions))
    body = f"{chat.instructions}\n\n{conversation}" if chat.instructions else conversation
    return f"{SYSTEM_PROMPT} {body}"
