"""Bad input: each case ends in a clear, typed error that says what to change, or works."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

from langchain_chatgptes import ChatChatGptEs, HTTPStatusError, InvalidInputError
from langchain_chatgptes.emulator import Emulator

from .conftest import PATHS, call

CALLS: list[tuple[str, Any, dict[str, Any], type[Exception] | None, str]] = [
    ("empty message list", [], {}, InvalidInputError, "at least one message"),
    (
        "an image block",
        [HumanMessage(content=[{"type": "image", "url": "https://x/y.png"}])],
        {},
        InvalidInputError,
        "'image' content block",
    ),
    (
        "an unknown per-call model",
        "hi",
        {"model": "gpt-5"},
        InvalidInputError,
        "model='gpt-5' is not valid for this call: Input should be 'gpt-4', 'gpt-4o' or",
    ),
    (
        "a negative per-call max_tokens",
        "hi",
        {"max_tokens": -1},
        InvalidInputError,
        "max_tokens=-1 is not valid for this call: Input should be greater than or equal to 1",
    ),
    (
        "a zero per-call max_tokens",
        "hi",
        {"max_tokens": 0},
        InvalidInputError,
        "max_tokens=0 is not valid for this call: Input should be greater than or equal to 1",
    ),
    (
        "a per-call max_tokens that is no number",
        "hi",
        {"max_tokens": "three"},
        InvalidInputError,
        "max_tokens='three' is not valid for this call: Input should be a valid integer",
    ),
    (
        "a per-call stop that is no text",
        "hi",
        {"stop": [3]},
        InvalidInputError,
        r"stop=\[3\] is not valid for this call: Input should be a valid string",
    ),
    (
        "a per-call response_format of another kind",
        "hi",
        {"response_format": {"type": "text"}},
        InvalidInputError,
        "response_format of type 'text' is not supported",
    ),
    ("lone surrogates", "bad \ud800 text", {}, InvalidInputError, "surrogate"),
    (
        "control characters",
        "bell \x07 and nul \x00 inside",
        {},
        None,
        "bell \x07 and nul \x00 inside",
    ),
    ("a 1 MB prompt", "a" * 1_000_000, {}, None, "a" * 200),
    (
        "a prompt over the site's 8 MB post limit",
        "a" * 9_000_000,
        {},
        HTTPStatusError,
        "HTTP 413",
    ),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("case", "prompt", "bound", "error", "text"), CALLS, ids=[c[0] for c in CALLS]
)
async def test_bad_call_input(
    emulator: Emulator,
    case: str,
    prompt: Any,
    bound: dict[str, Any],
    error: type[Exception] | None,
    text: str,
    path: str,
) -> None:
    model: Any = ChatChatGptEs(base_url=emulator.base_url, max_retries=1)
    if bound:
        model = model.bind(**bound)
    if error is None:
        assert text in (await call(model, path, prompt)).text
    else:
        with pytest.raises(error, match=text) as info:
            await call(model, path, prompt)
        if error is InvalidInputError:
            assert emulator.chat_requests() == []  # refused before anything was sent
            if bound:
                assert info.value.setting == next(iter(bound))  # type: ignore[attr-defined]


SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    ("an unknown model", {"model": "gpt-5"}, "Input should be 'gpt-4', 'gpt-4o' or 'gpt-4o-mini'"),
    ("a malformed proxy URL", {"proxy": "proxy.example:3128"}, "proxy must be a URL"),
    ("a proxy with an unknown scheme", {"proxy": "ftp://u:s3cret@host:21"}, "proxy must be a URL"),
    ("a zero timeout", {"timeout": 0}, r"timeout\n +Input should be greater than 0"),
    ("a negative timeout", {"timeout": -5}, r"timeout\n +Input should be greater than 0"),
    (
        "negative max_retries",
        {"max_retries": -1},
        r"max_retries\n +Input should be greater than or equal to 0",
    ),
    (
        "negative max_tool_retries",
        {"max_tool_retries": -1},
        r"max_tool_retries\n +Input should be greater than or equal to 0",
    ),
    (
        "zero max_concurrency",
        {"max_concurrency": 0},
        r"max_concurrency\n +Input should be greater than or equal to 1",
    ),
    ("zero max_tokens", {"max_tokens": 0}, r"max_tokens\n +Input should be greater than or equal"),
    (
        "a stop sequence that is no text",
        {"stop": [3]},
        r"stop\.0\n +Input should be a valid string",
    ),
    ("a base URL without scheme", {"base_url": "chatgpt.es"}, "base_url must be an http"),
]


@pytest.mark.parametrize(("case", "settings", "text"), SETTINGS, ids=[c[0] for c in SETTINGS])
def test_bad_settings(case: str, settings: dict[str, Any], text: str) -> None:
    with pytest.raises(ValidationError, match=text) as info:
        ChatChatGptEs(**settings)
    assert isinstance(info.value, ValueError)
    assert "s3cret" not in str(info.value)
