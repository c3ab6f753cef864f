"""Answer text -> what the caller sees: client-side stop sequences, max_tokens, usage.

The site takes neither stop sequences nor a token limit, and reports no token counts, so
all three are done here, on text as it streams in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from langchain_core.messages import HumanMessage, UsageMetadata
from langchain_core.messages.utils import count_tokens_approximately

CHARS_PER_TOKEN = 4.0
"""The rule of ``count_tokens_approximately``; ``max_tokens`` truncates by the same rule."""


def tokens_for_chars(chars: int) -> int:
    """Estimated tokens of a plain text of ``chars`` characters (no per-message overhead)."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_usage(prompt: str, output_chars: int) -> UsageMetadata:
    """Estimated usage of one call: the prompt as sent and the answer as returned.

    Args:
        prompt: The whole ``message`` field sent to the site.
        output_chars: Length of the answer text returned to the caller.
    """
    input_tokens = count_tokens_approximately([HumanMessage(content=prompt)])
    output_tokens = tokens_for_chars(output_chars)
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


class TextShaper:
    """Applies stop sequences and ``max_tokens`` to text that arrives in pieces.

    A stop string split across two pieces is still found: the longest stop string minus
    one character is held back until the next piece (or :meth:`flush`) shows whether it
    starts a stop string.

    Attributes:
        finish_reason: ``"stop"`` when a stop sequence ended the text, ``"length"`` when
            ``max_tokens`` did, ``None`` while the text may go on.
    """

    def __init__(self, stop: Sequence[str] | None = None, max_tokens: int | None = None) -> None:
        """Create a shaper.

        Args:
            stop: Stop sequences; the text ends before the first occurrence of any.
            max_tokens: Limit of the answer in estimated tokens (4 characters each).
        """
        self._stops = [s for s in stop or () if s]
        self._holdback = max((len(s) for s in self._stops), default=1) - 1
        self._max_chars = None if max_tokens is None else int(max_tokens * CHARS_PER_TOKEN)
        self._pending = ""
        self._emitted = 0
        self.finish_reason: str | None = None

    def feed(self, text: str) -> str:
        """Take the next piece of text; return the part that is safe to show now."""
        if self.finish_reason is not None:
            return ""
        self._pending += text
        cut = min((i for i in (self._pending.find(s) for s in self._stops) if i != -1), default=-1)
        if cut != -1:
            ready, self._pending = self._pending[:cut], ""
            return self._take(ready, ended="stop")
        split = max(len(self._pending) - self._holdback, 0)
        ready, self._pending = self._pending[:split], self._pending[split:]
        return self._take(ready)

    def flush(self) -> str:
        """The text is complete: return what was held back."""
        if self.finish_reason is not None:
            return ""
        ready, self._pending = self._pending, ""
        return self._take(ready)

    def _take(self, ready: str, ended: str | None = None) -> str:
        if self._max_chars is not None and self._emitted + len(ready) > self._max_chars:
            ready = ready[: self._max_chars - self._emitted]
            ended = "length"
        self._emitted += len(ready)
        if ended is not None:
            self.finish_reason = ended
            self._pending = ""
        return ready
