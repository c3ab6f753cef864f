"""Bad input: each case ends in a clear, typed error that says what to change, or works."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

from langchain_chatgptes import ChatChatGptEs, HTTPStatusError, InvalidInputError
from langchain_chatgptes.emulator import Emulator

from .conftest import PATHS, call

CALLS: list[tuple[str, Any, type[Exception] | None, str]] = [
    ("empty message list", [], InvalidInputError, "at least one message"),
    (
        "an image block",
        [HumanMessage(content=[{"type": "image", "url": "https://x/y.png"}])],
        InvalidInputError,
        "'image' content block",
    ),
    ("an unknown per-call model", "hi", InvalidInputError, "use one of gpt-4, gpt-4o"),
    ("lone surrogates", "bad \ud800 text", InvalidInputError, "surrogate"),
    ("control characters", "bell \x07 and nul \x00 inside", None, "bell \x07 and nul \x00 inside"),
    ("a 1 MB prompt", "a" * 1_000_000, None, "a" * 200),
    ("a prompt over the site's 8 MB post limit", "a" * 9_000_000, HTTPStatusError, "HTTP 413"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("case", "prompt", "error", "text"), CALLS, ids=[c[0] for c in CALLS])
async def test_bad_call_input(
    emulator: Emulator, case: str, prompt: Any, error: type[Exception] | None, text: str, path: str
) -> None:
    model = ChatChatGptEs(base_url=emulator.base_url, max_retries=1)
    if case == "an unknown per-call model":
        model = model.bind(model="gpt-5")  # type: ignore[assignment]
    if error is None:
        assert text in (await call(model, path, prompt)).text
    else:
        with pytest.raises(error, match=text):
            await call(model, path, prompt)
        if error is InvalidInputError:
            assert emulator.chat_requests() == []  # refused before anything was sent


SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    ("an unknown model", {"model": "gpt-5"}, "gpt-4, gpt-4o, gpt-4o-mini"),
    ("a malformed proxy URL", {"proxy": "proxy.example:3128"}, "proxy must be a URL"),
    ("a proxy with an unknown scheme", {"proxy": "ftp://u:s3cret@host:21"}, "proxy must be a URL"),
    ("a zero timeout", {"timeout": 0}, "timeout must be a positive number"),
    ("a negative timeout", {"timeout": -5}, "timeout must be a positive number"),
    ("negative max_retries", {"max_retries": -1}, "max_retries must be 0 or more"),
    ("zero max_concurrency", {"max_concurrency": 0}, "max_concurrency must be at least 1"),
    ("a base URL without scheme", {"base_url": "chatgpt.es"}, "base_url must be an http"),
]


@pytest.mark.parametrize(("case", "settings", "text"), SETTINGS, ids=[c[0] for c in SETTINGS])
def test_bad_settings(case: str, settings: dict[str, Any], text: str) -> None:
    with pytest.raises(ValidationError, match=text) as info:
        ChatChatGptEs(**settings)
    assert isinstance(info.value, ValueError)
    assert "s3cret" not in str(info.value)
