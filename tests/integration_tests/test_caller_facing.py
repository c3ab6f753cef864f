"""What the caller sees of defects found by trying the package as a hostile site or an
unusual user would: an unreachable proxy, a bad ``response_format``, a named message on AI
Engine, the history warning, an infinite ``timeout``. Every path, over real HTTP.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_chatgptes import (
    ChatChatGptEs,
    HistoryTrimWarning,
    InvalidInputError,
    TransportError,
)
from langchain_chatgptes._doctor import run_doctor
from langchain_chatgptes.emulator import Emulator, MwaiOptions

from .conftest import PATHS, call

DEAD_PROXY = "http://alice:s3cretpass@127.0.0.1:1"  # nothing listens on port 1


# --- 9. an unreachable proxy is the proxy's failure ------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_an_unreachable_proxy_is_reported_as_the_proxys_failure(path: str) -> None:
    model = ChatChatGptEs(base_url="http://127.0.0.1:9", proxy=DEAD_PROXY, max_retries=0)
    with pytest.raises(TransportError) as info:
        await call(model, path)
    assert info.value.at_proxy
    assert "Check `proxy=`" in str(info.value)
    assert "s3cretpass" not in str(info.value)


def test_the_doctor_says_the_proxy_failed() -> None:
    out = io.StringIO()
    assert not run_doctor(
        "http://127.0.0.1:9", proxy=DEAD_PROXY, timeout=5, impersonate="chrome", out=out
    )
    report = out.getvalue()
    assert "the proxy http://***@127.0.0.1:1 failed" in report
    assert "unreachable" not in report
    assert "s3cretpass" not in report


# --- 10. response_format must be a dict ---------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("value", ["json", ["json_object"], 1, True])
async def test_a_response_format_that_is_not_a_dict_is_bad_input(
    emulator: Emulator, path: str, value: Any
) -> None:
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=5, max_retries=0)
    with pytest.raises(InvalidInputError, match="response_format must be a dict") as info:
        await call(model.bind(response_format=value), path)
    assert info.value.setting == "response_format"
    assert emulator.requests == []  # refused before anything is sent


# --- 11. AI Engine: newMessage is what the person typed -------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_a_named_human_message_is_sent_as_typed_on_ai_engine(path: str) -> None:
    with Emulator(plugin="mwai", mwai=MwaiOptions(text_input_max_length=512)) as site:
        model = ChatChatGptEs(base_url=site.base_url, timeout=5, max_retries=0)
        typed = "y" * 505  # 517 with a "User (bob): " label: refused before the fix
        message = HumanMessage(typed, name="bob")
        assert (await call(model, path, [message])).text  # type: ignore[arg-type]
        (submit,) = site.submit_requests()
        assert submit.json["newMessage"] == typed


# --- 12. the history warning is the caller's ---------------------------------------------


def long_conversation() -> list[Any]:
    history: list[Any] = []
    for n in range(9):
        history += [HumanMessage(f"q{n}"), AIMessage(f"a{n}")]
    return [*history, HumanMessage("last")]


@pytest.mark.parametrize("path", PATHS)
async def test_the_history_warning_is_raised_in_the_callers_code(path: str) -> None:
    with Emulator(plugin="mwai") as site:
        model = ChatChatGptEs(base_url=site.base_url, timeout=5, max_retries=0)
        for _ in range(2):  # every call, not once per process
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                await call(model, path, long_conversation())  # type: ignore[arg-type]
            trims = [w for w in seen if issubclass(w.category, HistoryTrimWarning)]
            assert len(trims) == 1, [str(w.message) for w in seen]
            # Attributed to the caller's frame (here: conftest.call), not the package's file.
            assert Path(trims[0].filename).name == "conftest.py"
            assert "the oldest 3 will not reach" in str(trims[0].message)


def test_a_filter_on_the_callers_module_silences_it() -> None:
    with Emulator(plugin="mwai") as site:
        model = ChatChatGptEs(base_url=site.base_url, timeout=5, max_retries=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.filterwarnings("ignore", category=HistoryTrimWarning, module=__name__)
            assert model.invoke(long_conversation()).text
            assert list(model.stream(long_conversation()))
        with pytest.warns(HistoryTrimWarning) as record:
            model.invoke(long_conversation())
        assert record[0].filename == __file__


# --- 6. timeout=inf ----------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_an_infinite_timeout_is_no_limit(emulator: Emulator, path: str) -> None:
    emulator.stream = path.endswith("stream")
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=float("inf"), max_retries=0)
    assert model.timeout is None
    assert "emulator" in (await call(model, path)).text
