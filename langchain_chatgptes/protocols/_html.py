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


_RAW_TEXT = ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes")
"""Elements whose content is text, not markup (raw text and RCDATA in the HTML standard);
``noscript`` too, as a browser that runs the chat box's script reads it so, and
``plaintext``, which no end tag closes."""
_TEXT_END = {
    **{name: re.compile(rf"</{name}[\s/>]", re.IGNORECASE) for name in (*_RAW_TEXT, "noscript")},
    "plaintext": re.compile(r"(?!)"),
}
_NOT_RUN = ("text/html", "text/plain", "application/json", "application/ld+json", "importmap")
"""``<script type>`` values of data blocks and templates, which a browser does not run
(optimisers' own types, e.g. ``rocketlazyloadscript``, are run later: they count)."""


@dataclass(frozen=True)
class Tag:
    """A start tag: its lower-cased name, attributes (entities decoded, first wins), offset.

    ``text`` is the span of an element whose content is text (``script``, ``style``,
    ``textarea``...): ``(start, end)`` offsets into the document.
    """

    name: str
    attrs: dict[str, str]
    start: int = 0
    text: tuple[int, int] | None = None

    @property
    def classes(self) -> frozenset[str]:
        """The words of its ``class`` attribute."""
        return frozenset(self.attrs.get("class", "").split())


def _skip_markup(html: str, start: int) -> int | None:
    """Where a comment or declaration at ``start`` ends (``None``: not one)."""
    if html.startswith("<!--", start):
        for empty in ("<!-->", "<!--->"):  # an empty comment closes at once
            if html.startswith(empty, start):
                return start + len(empty)
        end = html.find("-->", start + 4)
        return len(html) if end == -1 else end + 3
    bogus = html.startswith(("<!", "<?"), start)  # doctype, CDATA, processing instruction
    if bogus or (html.startswith("</", start) and not html[start + 2 : start + 3].isalpha()):
        end = html.find(">", start + 2)  # ("</" and no tag name: a bogus comment too)
        return len(html) if end == -1 else end + 1
    return None


def _attributes(html: str, position: int) -> tuple[dict[str, str], int]:
    """The attributes of a start tag from ``position`` on, and where they end."""
    attrs: dict[str, str] = {}
    while (attribute := _ATTRIBUTE.match(html, position)) is not None:
        if attribute.end() == position:
            break
        value = next((v for v in attribute.group(2, 3, 4) if v is not None), "")
        attrs.setdefault(attribute.group(1).lower(), unescape(value))
        position = attribute.end()
    return attrs, position


def _tags(html: str) -> Iterator[Tag]:
    """Every start tag outside comments, element text and ``<template>``, in one pass."""
    position, templates = 0, 0
    while (start := html.find("<", position)) != -1:
        if (skipped := _skip_markup(html, start)) is not None:
            position = skipped
            continue
        closing = html.startswith("</", start)
        name = _TAG_NAME.match(html, start + 2 if closing else start + 1)
        if name is None:
            position = start + 1
            continue
        tag_name = name.group().lower()
        if closing:
            templates -= tag_name == "template" and templates > 0
            position = name.end()
            continue
        attrs, position = _attributes(html, name.end())
        text = None
        if (text_end := _TEXT_END.get(tag_name)) is not None:
            opened = html.find(">", position)
            content = len(html) if opened == -1 else opened + 1
            closed = text_end.search(html, content)
            text = (content, len(html) if closed is None else closed.start())
            position = text[1]
        if tag_name == "template":
            templates += 1  # inert until a script clones it: never what a visitor sees
        elif not templates:
            yield Tag(tag_name, attrs, start, text)


def start_tags(html: str) -> Iterator[Tag]:
    """Every start tag a browser would render, in order, in one pass.

    Attributes are read one after the other from the tag name on (as an HTML tokenizer
    does), so a ``>`` inside a quoted value does not end the tag; any order, quoting or
    minification works. A quoted value only fails to close at the last quote of its kind
    in the document, so the scan stays linear. Comments, declarations, the text of
    ``script``, ``style``, ``textarea``, ``title``, ``noscript``... and the content of
    ``<template>`` are skipped, as a browser does not render them: a chat box there is
    not a chat box.
    """
    return _tags(html)


def script_object(html: str, variable: str) -> dict[str, Any] | None:
    """The first JSON object assigned to ``variable`` in the page's ``<script>`` elements.

    Reads ``var wpaicgParams = {...};``-style assignments (``=`` or ``:``) with a JSON
    decoder from the opening brace, inside scripts only (not comments or other text). Only
    the first few occurrences of the name are tried, each within a bounded window (a
    decoding error costs time proportional to what it reads), so the cost stays linear in
    the page however often the name occurs.
    """
    tries = 0
    for tag in _tags(html):
        if tag.name != "script" or tag.text is None or _not_run(tag):
            continue
        position, end = tag.text
        while tries < _SCRIPT_TRIES and (found := html.find(variable, position, end)) != -1:
            tries += 1
            position = found + len(variable)
            if (value := _object_at(html, position, end)) is not None:
                return value
        if tries >= _SCRIPT_TRIES:
            break
    return None


def _not_run(script: Tag) -> bool:
    kind = script.attrs.get("type", "").strip().lower()
    return kind in _NOT_RUN or kind.endswith("template")


def _object_at(html: str, position: int, end: int) -> dict[str, Any] | None:
    """The JSON object assigned at ``position`` (``= {...}`` or ``: {...}``), if any."""
    assignment = _ASSIGNMENT.match(html, position, end)
    if assignment is None or not html.startswith("{", assignment.end(), end):
        return None
    window = html[assignment.end() : min(end, assignment.end() + _SCRIPT_WINDOW)]
    try:
        value, _ = json.JSONDecoder().raw_decode(window)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def json_attribute(value: str) -> Any:
    """The JSON an attribute carries (already entity-decoded), or ``None``."""
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None
