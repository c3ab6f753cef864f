"""What a site's reply means, as the answer engine consumes it: text, metadata, usage, end.

Also :class:`Notice`: a warning for the caller about the call.

Protocol modules produce these (``protocols._base`` re-exports them); the chat model reads
them. Kept apart from the protocols so that importing the chat model does not import them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextDelta:
    """A piece of answer text."""

    text: str


@dataclass(frozen=True)
class Metadata:
    """Facts about the answer that are not its text (e.g. citations)."""

    values: Mapping[str, Any]


@dataclass(frozen=True)
class Usage:
    """Token counts the site reported (they replace the package's estimate)."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class End:
    """The answer is complete."""

    finish_reason: str = "stop"


@dataclass(frozen=True)
class Notice:
    """A warning for the caller (e.g. ``HistoryTrimWarning``).

    Never raised where it is found: the chat model raises it in the caller's thread,
    attributed to the caller's code, so warning filters keyed on the caller's module work.
    """

    warning: Warning


Event = TextDelta | Metadata | Usage | End | Notice
