"""A stand-in model that follows langchain-chatgptes' tool-calling prompt, for tests.

It reads what the client put into the ``message`` field: the ``<tools>`` listing, the tool
rule, a ``<response_schema>`` (or the plain JSON rule), and the conversation's last turn.
Deterministic and simple: it calls the tool the user's words point at (or the one it must
call), fills the arguments from numbers and quoted text in the user's words, and otherwise
answers in text, or with JSON built from the response schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_chatgptes.emulator.responders import ChatRequest, EchoResponder, Reply

CallStyle = Literal["tags", "tool_calls_json", "fenced", "lone", "string_arguments"]

_TOOLS = re.compile(r"<tools>\n(.*?)\n</tools>", re.S)
_SCHEMA = re.compile(r"<response_schema>\n(.*?)\n</response_schema>", re.S)
_NAMED = re.compile(r'You MUST call the tool "([^"]+)"')
_TURN = re.compile(r"^(User|Tool result(?: error)?)(?: \([^)\n]*\))?: ", re.M)
_LABELLED = re.compile(r"^[A-Z][a-z]+(?: [a-z]+)*(?: \([^)\n]*\))?: ")


def _prompt_text(request: ChatRequest) -> str:
    """The whole prompt as one text, whatever the plugin.

    AI Engine takes the conversation as a list (``upstream_messages``): it is written as the
    one-text form this model reads (system text, then ``Label: text`` turns). A closing
    "Continue." turn only asks to go on from the turn before it.
    """
    if request.body is None:
        return request.message
    lines = []
    for item in request.upstream_messages:
        role, content = item.get("role", ""), item.get("content", "")
        if role == "system" or _LABELLED.match(content):
            lines.append(content)
        else:
            lines.append(f"{'Assistant' if role == 'assistant' else 'User'}: {content}")
    if lines and lines[-1] == "User: Continue.":
        lines.pop()
    return "\n".join(lines) + "\nAssistant:"


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"['\"“‘「«]([^'\"”’」»]+)['\"”’」»]")  # noqa: RUF001 (typographic quotes are meant)
_PLACE = re.compile(r"\bin ([^?.!]+)")
_CALLED = re.compile(r'<tool_call>\{"id": "[^"]*", "name": "([^"]+)"')  # calls in the history


def _example(schema: Any, text: str, defs: dict[str, Any], numbers: list[str]) -> Any:
    """A value that fits ``schema``, taken from ``text`` where it can be."""
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return _example(defs.get(schema["$ref"].rsplit("/", 1)[-1]), text, defs, numbers)
    option = _first_option(schema)
    if option is not None:
        return _example(option, text, defs, numbers)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    return _EXAMPLES.get(kind, _text_example)(schema, text, defs, numbers)


def _first_option(schema: dict[str, Any]) -> Any:
    """The first option of ``anyOf``, ``oneOf`` or ``allOf`` that is not ``null``, if any."""
    for key in ("anyOf", "oneOf", "allOf"):
        options = [s for s in schema.get(key, []) if s.get("type") != "null"]
        if options:
            return options[0]
    return None


def _object_example(
    schema: dict[str, Any], text: str, defs: dict[str, Any], numbers: list[str]
) -> Any:
    properties = schema.get("properties", {})
    names = schema.get("required") or list(properties)
    return {name: _example(properties[name], text, defs, numbers) for name in names}


def _number_example(
    schema: dict[str, Any], text: str, defs: dict[str, Any], numbers: list[str]
) -> Any:
    value = float(numbers.pop(0)) if numbers else 1
    return int(value) if schema.get("type") == "integer" else value


def _array_example(
    schema: dict[str, Any], text: str, defs: dict[str, Any], numbers: list[str]
) -> Any:
    return [_example(schema.get("items", {}), text, defs, numbers)]


def _text_example(
    schema: dict[str, Any], text: str, defs: dict[str, Any], numbers: list[str]
) -> Any:
    quoted = _QUOTED.search(text)
    place = _PLACE.search(text)
    return quoted.group(1) if quoted else place.group(1).strip() if place else text


_EXAMPLES: dict[str, Callable[[dict[str, Any], str, dict[str, Any], list[str]], Any]] = {
    "object": _object_example,
    "integer": _number_example,
    "number": _number_example,
    "boolean": lambda schema, text, defs, numbers: True,
    "array": _array_example,
}
"""How :func:`_example` fills each JSON Schema type (anything else: a string)."""


@dataclass(frozen=True)
class _Prompt:
    """What the model reads in a prompt.

    Attributes:
        message: The whole prompt as one text.
        tools: The ``<tools>`` listing (empty: none).
        schema: The ``<response_schema>`` (None: none).
        turn: The last user or tool-result turn's text.
        after_tool: Whether that turn is a tool result.
        forced: The tool the prompt says must be called, if any.
        must_call: Whether some tool must be called.
    """

    message: str
    tools: list[dict[str, Any]]
    schema: Any
    turn: str
    after_tool: bool
    forced: str | None
    must_call: bool

    @classmethod
    def read(cls, message: str) -> _Prompt:
        """Read the client's tool prompt out of ``message``."""
        tools = json.loads(match.group(1)) if (match := _TOOLS.search(message)) else []
        schema = json.loads(match.group(1)) if (match := _SCHEMA.search(message)) else None
        turns = list(_TURN.finditer(message))
        last = turns[-1] if turns else None
        turn = message[last.end() :] if last else message
        forced = _NAMED.search(message)
        return cls(
            message=message,
            tools=tools,
            schema=schema,
            turn=turn.removesuffix("Assistant:").strip(),
            after_tool=last is not None and last.group(1).startswith("Tool result"),
            forced=forced.group(1) if forced else None,
            must_call=bool(forced) or "You MUST call at least one tool" in message,
        )


@dataclass
class ToolModelResponder:
    """Answers like a cooperative model that understands the client's tool prompt.

    Attributes:
        style: How calls are written: ``tags`` (``<tool_call>`` blocks), ``tool_calls_json``
            (``{"tool_calls": [...]}``), ``fenced`` (a ```json fenced lone call), ``lone``
            (a bare ``{"name", "parameters"}``), ``string_arguments`` (arguments as a JSON
            string inside a tag).
        preamble: Text written before the calls (to see text stream before a call).
        malformed_first: How many replies to get wrong first, alternating between plain
            text without the required call and an undecodable ``<tool_call>`` block.
        fence_json: Wrap JSON answers in a ```json fence, as chatty models do.
    """

    style: CallStyle = "tags"
    preamble: str = ""
    malformed_first: int = 0
    fence_json: bool = False

    def __post_init__(self) -> None:
        self._mistakes = 0

    def __call__(self, request: ChatRequest) -> Reply | str:
        """Read the prompt and answer as described in the class docstring."""
        prompt = _Prompt.read(_prompt_text(request))
        call = self._tool_call(prompt)
        if call is not None:
            return call
        schema = prompt.schema
        if schema is None and "reply with only a valid JSON object" in prompt.message:
            # JSON mode: the user's words name the keys ("... with 'setup' and 'punchline' keys").
            keys = _QUOTED.findall(prompt.turn) or ["answer"]
            schema = {"type": "object", "properties": {key: {"type": "string"} for key in keys}}
        if schema is not None:
            numbers = _NUMBER.findall(prompt.turn)
            value = _example(schema, prompt.turn, schema.get("$defs", {}), numbers)
            answer = json.dumps(value, ensure_ascii=False)
            return f"```json\n{answer}\n```" if self.fence_json else answer
        if prompt.after_tool:
            return f"The tool says: {prompt.turn}"
        return EchoResponder()(request)

    def _tool_call(self, prompt: _Prompt) -> str | None:
        """The call the prompt asks for (or a planned mistake), or None to answer in text."""
        tools = prompt.tools
        if not tools or (prompt.after_tool and not prompt.must_call):
            return None
        called = set(_CALLED.findall(prompt.message))
        tool = self._pick(tools, prompt.turn, prompt.forced, prompt.must_call, called)
        if prompt.after_tool and prompt.forced is None:  # e.g. the structured-answer tool
            tool = next((t for t in tools if t["name"] not in called), tools[0])
        if tool is None:
            return None
        if self._mistakes < self.malformed_first:
            self._mistakes += 1
            if self._mistakes % 2:
                return "I am not sure which tool to use."
            return f"<tool_call>I would call {tool['name']} now</tool_call>"
        parameters = tool.get("parameters", {})
        defs = parameters.get("$defs", {})
        args = _example(parameters, prompt.turn, defs, _NUMBER.findall(prompt.turn)) or {}
        return self.preamble + self._call(tool["name"], args)

    @staticmethod
    def _pick(
        tools: list[dict[str, Any]],
        turn: str,
        forced: str | None,
        must_call: bool,
        called: set[str],
    ) -> dict[str, Any] | None:
        by_name = {tool["name"]: tool for tool in tools}
        if forced in by_name:
            return by_name[forced]
        lowered = turn.lower()
        for tool in tools:
            words = [w for w in re.split(r"[_\W]+", tool["name"].lower()) if len(w) > 3]
            if tool["name"].lower() in lowered or any(word in lowered for word in words):
                return tool
        if must_call or "tool" in lowered:
            return next((t for t in tools if t["name"] not in called), tools[0])
        return None

    def _call(self, name: str, args: dict[str, Any]) -> str:
        call = {"name": name, "arguments": args}
        dumps = json.dumps
        if self.style == "tool_calls_json":
            return dumps({"tool_calls": [call]}, ensure_ascii=False)
        if self.style == "fenced":
            return f"```json\n{dumps(call, ensure_ascii=False)}\n```"
        if self.style == "lone":
            return dumps({"name": name, "parameters": args}, ensure_ascii=False)
        if self.style == "string_arguments":
            call["arguments"] = dumps(args, ensure_ascii=False)
        return f"<tool_call>{dumps(call, ensure_ascii=False)}</tool_call>"
