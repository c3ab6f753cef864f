"""Reply text -> tool calls, leniently; and which streamed text may be shown at once.

The site has no native tools: the prompt asks the model to answer with
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (see ``_prompt``), and this
module reads whatever came back. It never raises: anything it cannot use as a call becomes an
``invalid_tool_call`` with the reason, and text outside the calls stays as content.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import InvalidToolCall, ToolCall
from langchain_core.messages.tool import invalid_tool_call, tool_call

from langchain_chatgptes.errors import InvalidInputError

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_SPACE = re.compile(r"\s*")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")


# --- tool_choice ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolChoice:
    """What the model is asked to do with the bound tools.

    Attributes:
        mode: ``auto`` (may call), ``required`` (must call one), ``named`` (must call
            ``name``) or ``none`` (tools left out of the prompt).
        name: The tool that must be called, for ``named``.
    """

    mode: Literal["auto", "required", "named", "none"] = "auto"
    name: str | None = None

    @property
    def forces_call(self) -> bool:
        """Whether the answer must be a tool call."""
        return self.mode in ("required", "named")


def tool_choice_of(choice: Any, tool_names: Sequence[str]) -> ToolChoice:
    """Read LangChain's ``tool_choice`` values.

    Args:
        choice: ``None``/``"auto"``, ``"any"``/``"required"``/``True``, ``"none"``, a tool
            name, or ``{"type": "function", "function": {"name": ...}}``.
        tool_names: Names of the bound tools.

    Raises:
        InvalidInputError: An unknown value or tool name.
    """
    if choice is None or choice == "auto":
        return ToolChoice("auto")
    if choice is True or choice in ("any", "required"):
        return ToolChoice("required")
    if choice == "none":
        return ToolChoice("none")
    name = choice
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
    if isinstance(name, str) and name in tool_names:
        return ToolChoice("named", name)
    raise InvalidInputError(
        f"tool_choice={choice!r} is not understood: use None, 'auto', 'any', 'required', "
        f"'none', True, or the name of a bound tool ({', '.join(tool_names) or 'none bound'}).",
        setting="tool_choice",
    )


# --- parsing ----------------------------------------------------------------------------------


@dataclass
class ParsedReply:
    """A reply split into visible text and tool calls."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_tool_calls: list[InvalidToolCall] = field(default_factory=list)


def _decode(text: str) -> Any:
    """JSON from model text: strict first, then repaired (trailing commas, quotes, ...)."""
    text = text.strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        import json_repair  # imported when first needed: it costs ~8 ms at import time

        try:
            return json_repair.loads(text)
        except Exception:  # the repair helper's own failures: treat as undecodable
            return None


def _call_objects(obj: Any) -> list[Any] | None:
    """The call objects a decoded JSON value holds, or ``None`` if it is not a call."""
    if isinstance(obj, Mapping):
        calls = obj.get("tool_calls")
        if isinstance(calls, list):
            return calls
        if isinstance(obj.get("name"), str) and any(key in obj for key in _ARGUMENT_KEYS):
            return [obj]
    if isinstance(obj, list) and obj and all(_call_objects(item) == [item] for item in obj):
        return obj
    return None


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _arguments(obj: Mapping[str, Any]) -> Any:
    for key in _ARGUMENT_KEYS:
        if key in obj:
            return obj[key]
    return {}


def _build(raw: str, obj: Any, tool_names: Collection[str], parsed: ParsedReply) -> None:
    """Add one call (valid or not) to ``parsed``."""
    if isinstance(obj, Mapping) and isinstance(obj.get("function"), Mapping):
        obj = obj["function"]  # the OpenAI shape {"type": "function", "function": {...}}
    name = obj.get("name") if isinstance(obj, Mapping) else None
    if not isinstance(obj, Mapping) or not isinstance(name, str) or not name:
        error = 'not a JSON object with a "name" and "arguments"'
        parsed.invalid_tool_calls.append(
            invalid_tool_call(name=None, args=raw.strip(), id=_new_id(), error=error)
        )
        return
    args = _arguments(obj)
    if isinstance(args, str):
        args = _decode(args) if args.strip() else {}
    if args is None:
        args = {}
    raw_args = json.dumps(_arguments(obj), ensure_ascii=False)
    if not isinstance(args, dict):
        error = f"the arguments of {name!r} are not a JSON object"
        parsed.invalid_tool_calls.append(
            invalid_tool_call(name=name, args=raw_args, id=_new_id(), error=error)
        )
    elif tool_names and name not in tool_names:
        error = f"unknown tool {name!r}; the tools are: {', '.join(sorted(tool_names))}"
        parsed.invalid_tool_calls.append(
            invalid_tool_call(name=name, args=raw_args, id=_new_id(), error=error)
        )
    else:
        parsed.tool_calls.append(tool_call(name=name, args=args, id=_new_id()))


def _blocks(text: str) -> list[tuple[int, int, str, Any]]:
    """The ``<tool_call>`` blocks of a reply: (start, end, raw JSON text, decoded value).

    The JSON is read from the tag on, so a ``</tool_call>`` inside a JSON string does not
    end the block; an undecodable body ends at the closing tag (or the end of the reply).
    A tag followed neither by a JSON object or list nor, later, by a closing tag is text
    (a reply that mentions the tag), not a broken call.
    """
    blocks = []
    decoder = json.JSONDecoder()
    start = text.find(TOOL_CALL_OPEN)
    while start != -1:
        body = _SPACE.match(text, start + len(TOOL_CALL_OPEN)).end()  # type: ignore[union-attr]
        if text[body : body + 1] not in ("{", "[") and text.find(TOOL_CALL_CLOSE, body) == -1:
            start = text.find(TOOL_CALL_OPEN, start + len(TOOL_CALL_OPEN))
            continue
        try:
            value, stop = decoder.raw_decode(text, body)
            raw = text[body:stop]
        except (ValueError, RecursionError):
            stop = body
            close = text.find(TOOL_CALL_CLOSE, body)
            raw = text[body : close if close != -1 else len(text)]
            value = _decode(raw)
        close = text.find(TOOL_CALL_CLOSE, stop)
        end = len(text) if close == -1 else close + len(TOOL_CALL_CLOSE)
        blocks.append((start, end, raw, value))
        start = text.find(TOOL_CALL_OPEN, end)
    return blocks


def _parse(text: str, tool_names: Collection[str]) -> ParsedReply:
    blocks = _blocks(text)
    if blocks:
        kept, previous_end = [], 0
        for start, end, _, _ in blocks:
            kept.append(text[previous_end:start])
            previous_end = end
        parsed = ParsedReply(("".join(kept) + text[previous_end:]).strip())
        for _, _, raw, obj in blocks:
            calls = _call_objects(obj)
            for item in calls if calls is not None else [obj]:
                _build(raw, item, tool_names, parsed)
        return parsed
    # No blocks: a fenced JSON block, or the whole reply as JSON, may still be calls.
    candidates = [(m.group(1), text[: m.start()] + text[m.end() :]) for m in _FENCE.finditer(text)]
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        candidates.append((stripped, ""))
    for raw, rest in candidates:
        calls = _call_objects(_decode(raw))
        if calls:
            parsed = ParsedReply(rest.strip())
            for item in calls:
                _build(raw, item, tool_names, parsed)
            return parsed
    return ParsedReply(text.strip())


def parse_reply(text: str, tool_names: Collection[str]) -> ParsedReply:
    """Split a reply into content, valid tool calls and invalid ones. Never raises.

    Accepted: ``<tool_call>`` blocks (an unclosed last one too); a fenced or bare
    ``{"tool_calls": [...]}``; a lone ``{"name": ..., "arguments"|"parameters": ...}``
    (or a list of them); arguments given as a JSON string; JSON slips such as trailing
    commas, repaired. Calls to names outside ``tool_names`` (when given) are invalid.

    Args:
        text: The whole reply.
        tool_names: The bound tools' names.
    """
    try:
        return _parse(text, tool_names)
    except Exception as exc:  # a parser bug must not lose the answer
        return ParsedReply(
            text.strip(),
            invalid_tool_calls=[
                invalid_tool_call(name=None, args=text, id=_new_id(), error=repr(exc))
            ],
        )


def json_answer(text: str) -> str:
    """The JSON object in a reply as clean JSON text (fences and chatter stripped).

    Returns ``text`` unchanged when no JSON value can be read from it, so the caller's
    parser reports the problem.
    """
    for raw in [*(m.group(1) for m in _FENCE.finditer(text)), text]:
        stripped = raw.strip()
        start = min((i for i in (stripped.find("{"), stripped.find("[")) if i != -1), default=-1)
        if start == -1:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(stripped[start:])
        except (ValueError, RecursionError):
            value = _decode(stripped[start:])
        if isinstance(value, (dict, list)) and value:
            return json.dumps(value, ensure_ascii=False)
    return text


# --- streaming ----------------------------------------------------------------------------------


_FENCE_INFO = re.compile(r"[ \t]*\w*[ \t]*")  # a code fence's info string ("json")
_MARKERS = (TOOL_CALL_OPEN, "```")


def _call_follows(text: str, marker: str, at: int) -> bool | None:
    """Whether a tool call may start at the marker found at ``at``: None while unknown.

    A ``<tool_call>`` tag may always start one (whether it is only mentioned shows at the
    end of the reply); a code fence starts one when a JSON object or list opens its body
    (right after the fence, or on the next line).
    """
    if marker == TOOL_CALL_OPEN:
        return True
    position = _FENCE_INFO.match(text, at + len(marker)).end()  # type: ignore[union-attr]
    if position == len(text):
        return None
    if text[position] not in "\r\n{[":
        return False
    body = text[position:].lstrip()
    return None if not body else body[0] in "{["


class ReplyFilter:
    """Decides which streamed reply text can be shown at once when tools are bound.

    Text is shown as it arrives until a tool call may start: a ``<tool_call>`` tag or a
    code fence followed by a JSON object (or the reply opening like a bare JSON call, or
    ``hold`` set); from there everything is held back for :func:`parse_reply`. A fence
    followed by anything else is text. Whitespace right before a possible call (and
    at the start) is held too, so the text shown is a prefix of the parsed content.
    """

    def __init__(self, *, hold: bool = False) -> None:
        """Create a filter; ``hold=True`` shows nothing (the whole reply is parsed at the end)."""
        self._holding = hold
        self._pending = ""
        self._shown = False

    def feed(self, text: str) -> str:
        """Take the next piece of the reply; return the part to show now."""
        if self._holding:
            return ""
        pending = self._pending + text
        if not self._shown:
            pending = pending.lstrip()
            if pending[:1] in ("{", "["):  # perhaps a bare JSON call
                self._holding = True
                return ""
        cut = self._safe_end(pending)
        ready = pending[:cut].rstrip()
        self._pending = pending[len(ready) :]
        self._shown = self._shown or bool(ready)
        return ready

    def _safe_end(self, text: str) -> int:
        """Where the text that is surely not a call ends; sets holding when one starts."""
        position = 0
        while True:
            found = [(text.find(m, position), m) for m in _MARKERS]
            hits = [(at, marker) for at, marker in found if at != -1]
            if not hits:
                return min(_partial_start(text, marker) for marker in _MARKERS)
            at, marker = min(hits)
            verdict = _call_follows(text, marker, at)
            if verdict is None:
                return at  # wait for what follows the marker
            if verdict:
                self._holding = True
                return at
            position = at + len(marker)  # text that merely looks like a marker


def _partial_start(text: str, marker: str) -> int:
    """Where a suffix of ``text`` begins that could still grow into ``marker``."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return len(text) - size
    return len(text)
