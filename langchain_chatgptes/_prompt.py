"""LangChain messages -> the conversation a site receives (:class:`ChatInput`).

Messages become text turns (earlier tool calls written into their assistant turn, tool
results labelled with their call id); tools and the answer format become instruction
text. How a protocol sends them is its own business (``_conversation.flatten`` writes the
one text box of the legacy plugin: :data:`SYSTEM_PROMPT`, one space, a lone user message
verbatim, or role-labelled lines ending with ``Assistant:``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_chatgptes._conversation import (
    SYSTEM_PROMPT,
    ChatInput,
    Role,
    Turn,
    Visitor,
    flatten,
)
from langchain_chatgptes._tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, ToolChoice
from langchain_chatgptes.errors import InvalidInputError

__all__ = ["SYSTEM_PROMPT", "build_message", "chat_input", "correction", "render_instructions"]

# What the model is told about tools and answer formats; the emulator's tool-using responder
# reads these tags back, and ``_tools.parse_reply`` reads the answers.
CALL_FORMAT = (
    f"To call a tool, write a {TOOL_CALL_OPEN}{TOOL_CALL_CLOSE} block holding one JSON object "
    'with the tool\'s "name" and its "arguments", for example: '
    f'{TOOL_CALL_OPEN}{{"name": "tool_name", "arguments": {{"argument": "value"}}}}'
    f"{TOOL_CALL_CLOSE}. Write one block per call; several blocks call several tools. Tool "
    'results come back as "Tool result (<call id>)" lines.'
)
TOOL_RULES = {
    "auto": "Call a tool only when it helps; otherwise answer in plain text.",
    "required": f"You MUST call at least one tool now: reply with {TOOL_CALL_OPEN} blocks only.",
    "named": f'You MUST call the tool "{{name}}" now: reply with {TOOL_CALL_OPEN} blocks only.',
}
JSON_SCHEMA_RULE = (
    "When you give your final answer (not a tool call), reply with only a JSON object that "
    "matches the JSON Schema in <response_schema></response_schema>, with no other text."
)
JSON_OBJECT_RULE = (
    "When you give your final answer (not a tool call), reply with only a valid JSON object, "
    "with no other text."
)
CORRECTION = (
    f"You did not call a tool. Reply now with only {TOOL_CALL_OPEN} blocks calling {{target}}."
)

# Blocks an earlier assistant turn may carry that are not part of its visible text: tool
# calls are rendered from ``AIMessage.tool_calls`` instead, reasoning is not replayed.
_AI_NON_TEXT_BLOCKS = frozenset(
    {
        "tool_use",
        "tool_call",
        "tool_call_chunk",
        "invalid_tool_call",
        "server_tool_call",
        "server_tool_call_chunk",
        "server_tool_result",
        "reasoning",
        "thinking",
        "redacted_thinking",
    }
)


def _label(message: BaseMessage) -> str:
    if isinstance(message, SystemMessage):
        return "System"
    if isinstance(message, HumanMessage):
        return "User"
    if isinstance(message, AIMessage):
        return "Assistant"
    if isinstance(message, ToolMessage):
        status = " error" if message.status == "error" else ""
        return f"Tool result{status} ({message.tool_call_id})"
    if isinstance(message, FunctionMessage):
        return f"Function result ({message.name})"
    if isinstance(message, ChatMessage):
        return message.role.capitalize()
    return message.type.capitalize()


def message_text(message: BaseMessage, index: int = 0) -> str:
    """The text of one message; text blocks are joined with newlines.

    Args:
        message: The message.
        index: Its position in the conversation, for error messages.

    Raises:
        InvalidInputError: The message holds a non-text block (image, audio, file, ...).
    """
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(message, AIMessage) and kind in _AI_NON_TEXT_BLOCKS:
            continue
        else:
            raise InvalidInputError(
                f"chatgpt.es accepts text only, but message {index} ({message.type}) has a "
                f"{kind!r} content block. Remove it, or describe its content in text."
            )
    return "\n".join(parts)


def _render_tool_calls(message: AIMessage) -> list[str]:
    return [
        "<tool_call>"
        + json.dumps(
            {"id": call["id"], "name": call["name"], "arguments": call["args"]},
            ensure_ascii=False,
        )
        + "</tool_call>"
        for call in message.tool_calls
    ]


def render_instructions(
    tools: Sequence[Mapping[str, Any]] | None,
    choice: ToolChoice,
    response_format: Mapping[str, Any] | None,
) -> str:
    """The tools, the tool rule and the answer format asked for, as prompt text.

    Args:
        tools: Bound tools in OpenAI format (``convert_to_openai_tool``).
        choice: What the model must do with them; ``none`` leaves them out.
        response_format: A bound ``{"type": "json_schema", "json_schema": {...}}`` or
            ``{"type": "json_object"}``.

    Raises:
        InvalidInputError: A ``response_format`` that is not such a dict.
    """
    parts = []
    if tools and choice.mode != "none":
        listing = json.dumps([tool["function"] for tool in tools], ensure_ascii=False)
        rule = TOOL_RULES[choice.mode].format(name=choice.name)
        parts += [f"<tools>\n{listing}\n</tools>", CALL_FORMAT, rule]
    if response_format is not None:
        if not isinstance(response_format, Mapping):
            raise InvalidInputError(
                f"response_format must be a dict such as {{'type': 'json_object'}}, not "
                f"{type(response_format).__name__} {str(response_format)[:80]!r}.",
                setting="response_format",
            )
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = json.dumps(spec.get("schema", spec), ensure_ascii=False)
            parts += [JSON_SCHEMA_RULE, f"<response_schema>\n{schema}\n</response_schema>"]
        elif kind == "json_object":
            parts.append(JSON_OBJECT_RULE)
        else:
            raise InvalidInputError(
                f"response_format of type {kind!r} is not supported: use "
                '{"type": "json_schema", "json_schema": {...}} or {"type": "json_object"}.',
                setting="response_format",
            )
    return "\n".join(parts)


def correction(choice: ToolChoice) -> str:
    """The follow-up message when a required tool call did not come."""
    target = f'the tool "{choice.name}"' if choice.mode == "named" else "one of the tools"
    return CORRECTION.format(target=target)


def _role(message: BaseMessage) -> Role:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, (ToolMessage, FunctionMessage)):
        return "tool"
    if isinstance(message, ChatMessage) and message.role in ("system", "assistant", "tool"):
        return message.role  # type: ignore[return-value]
    return "user"


def to_turns(messages: Sequence[BaseMessage]) -> tuple[Turn, ...]:
    """The conversation as text turns, each with its role and its label.

    Raises:
        InvalidInputError: No messages, nothing but empty text, or a non-text block.
    """
    if not messages:
        raise InvalidInputError("No messages to send: pass at least one message.")
    turns = []
    for index, message in enumerate(messages):
        if isinstance(message, RemoveMessage):
            continue  # a LangGraph instruction to drop a message, never conversation text
        text = message_text(message, index)
        label = _label(message)
        if message.name and isinstance(message, (HumanMessage, AIMessage, SystemMessage)):
            label = f"{label} ({message.name})"
        if isinstance(message, AIMessage) and message.tool_calls:
            text = "\n".join(filter(None, [text, *_render_tool_calls(message)]))
        turns.append(Turn(_role(message), label, text))
    if not turns:
        raise InvalidInputError("No messages to send: pass at least one message.")
    if not any(turn.text.strip() for turn in turns):
        raise InvalidInputError("Every message is empty: there is no text to send.")
    return tuple(turns)


def _check_unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"The messages contain text that is not valid Unicode ({exc.reason} at "
            f"position {exc.start}); remove lone surrogate characters."
        ) from exc


def chat_input(
    messages: Sequence[BaseMessage], instructions: str, visitor: Visitor, *, follow_up: bool = False
) -> ChatInput:
    """What a call sends: the turns, the instructions and the visitor's ids.

    ``follow_up`` marks a re-ask (the last message is the package's own correction).

    Raises:
        InvalidInputError: See :func:`to_turns`; also text that is not valid Unicode
            (lone surrogates), which could not be sent.
    """
    turns = to_turns(messages)
    for text in (instructions, *(turn.text for turn in turns)):
        _check_unicode(text)
    return ChatInput(turns, instructions, visitor, follow_up)


_NO_VISITOR = Visitor(client_id="", session_id="")


def build_message(messages: Sequence[BaseMessage], instructions: str = "") -> str:
    """The legacy plugin's ``message`` field for a conversation (see ``flatten``)."""
    return flatten(chat_input(messages, instructions, _NO_VISITOR))
