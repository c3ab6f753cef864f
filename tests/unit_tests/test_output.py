"""Client-side stop sequences, max_tokens and usage estimates."""

from __future__ import annotations

import pytest

from langchain_chatgptes._output import TextShaper, estimate_usage


def shape(pieces: list[str], **kwargs: object) -> tuple[str, str | None]:
    shaper = TextShaper(**kwargs)  # type: ignore[arg-type]
    out = "".join(shaper.feed(p) for p in pieces) + shaper.flush()
    return out, shaper.finish_reason


def test_without_limits_text_passes_through_at_once() -> None:
    shaper = TextShaper()
    assert shaper.feed("Hello") == "Hello"
    assert shaper.flush() == "" and shaper.finish_reason is None


@pytest.mark.parametrize(
    "pieces",
    [
        ["Hello you there"],
        ["Hello y", "ou there"],
        ["Hello ", "y", "o", "u", " there"],
    ],
)
def test_stop_sequence_also_when_split_across_pieces(pieces: list[str]) -> None:
    assert shape(pieces, stop=["you"]) == ("Hello ", "stop")


def test_earliest_of_several_stops_wins() -> None:
    assert shape(["a END b STOP c"], stop=["STOP", "END"]) == ("a ", "stop")


def test_held_back_text_is_released_when_no_stop_follows() -> None:
    shaper = TextShaper(stop=["STOP"])
    assert shaper.feed("abcST") == "ab"  # "cST" could start "STOP"
    assert shaper.feed("x") == "c"
    assert shaper.flush() == "STx"
    assert shaper.finish_reason is None


def test_max_tokens_truncates_with_length() -> None:
    assert shape(["x" * 100], max_tokens=5) == ("x" * 20, "length")


def test_max_tokens_not_reached() -> None:
    assert shape(["short"], max_tokens=5) == ("short", None)


def test_usage_estimate() -> None:
    usage = estimate_usage("p" * 40, 8)
    assert usage["output_tokens"] == 2
    assert usage["total_tokens"] == usage["input_tokens"] + 2
    assert usage["input_tokens"] >= 10
