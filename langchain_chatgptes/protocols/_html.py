"""Reading untrusted HTML in linear time: start tags with their attributes, script JSON.

Pages come from a third party (or whatever answers instead of it), so nothing here may take
more than linear time, whatever the input: each ``<`` is looked at once, attribute values
are read by anchored regular expressions that never rescan, and JSON is read with
``raw_decode`` from a known start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

_TAG_NAME = re.compile(r"[A-Za-z][\w:-]*")
_ATTRIBUTE = re.compile(
    r"""[\s/]*([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?"""
)
_ASSIGNMENT = re.compile(r"\s*[=:]\s*")
_SCRIPT_TRIES = 8  # occurrences of a variable's name tried before giving up
_SCRIPT_WINDOW = 256 * 1024  # a script object larger than this is not read


@dataclass(frozen=True)
class Tag:
    """A start tag: its lower-cased name, attributes (entities decoded, first wins), offset."""

    name: str
    attrs: dict[str, str]
    start: int = 0

    @property
    def classes(self) -> frozenset[str]:
        """The words of its ``class`` attribute."""
        return frozenset(self.attrs.get("class", "").split())


def start_tags(html: str) -> Iterator[Tag]:
    """Every start tag of a document, in order, in one pass.

    Attributes are read one after the other from the tag name on (as an HTML tokenizer
    does), so a ``>`` inside a quoted value does not end the tag; any order, quoting or
    minification works. A quoted value only fails to close at the last quote of its kind
    in the document, so the scan stays linear.
    """
    position = 0
    while (start := html.find("<", position)) != -1:
        name = _TAG_NAME.match(html, start + 1)
        if name is None:
            position = start + 1
            continue
        attrs: dict[str, str] = {}
        position = name.end()
        while (attribute := _ATTRIBUTE.match(html, position)) is not None:
            if attribute.end() == position:
                break
            value = next((v for v in attribute.group(2, 3, 4) if v is not None), "")
            attrs.setdefault(attribute.group(1).lower(), unescape(value))
            position = attribute.end()
        yield Tag(name.group().lower(), attrs, start)


def script_object(html: str, variable: str) -> dict[str, Any] | None:
    """The first JSON object assigned to ``variable`` in the page's scripts.

    Reads ``var wpaicgParams = {...};``-style assignments (``=`` or ``:``) with a JSON
    decoder from the opening brace. Only the first few occurrences of the name are tried,
    each within a bounded window (a decoding error costs time proportional to what it
    reads), so the cost stays linear in the page however often the name occurs.
    """
    position = 0
    for _ in range(_SCRIPT_TRIES):
        found = html.find(variable, position)
        if found == -1:
            break
        position = found + len(variable)
        assignment = _ASSIGNMENT.match(html, position)
        if assignment is None or not html.startswith("{", assignment.end()):
            continue
        window = html[assignment.end() : assignment.end() + _SCRIPT_WINDOW]
        try:
            value, _ = json.JSONDecoder().raw_decode(window)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def json_attribute(value: str) -> Any:
    """The JSON an attribute carries (already entity-decoded), or ``None``."""
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None
