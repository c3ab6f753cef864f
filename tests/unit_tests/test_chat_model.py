"""ChatChatGptEs construction, validation and metadata that need no network."""

from __future__ import annotations

import logging
import re

import pytest
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

import langchain_chatgptes
from langchain_chatgptes import (
    KNOWN_MODELS,
    ChatChatGptEs,
    ChatGptEsError,
    InvalidInputError,
    errors,
)

SECRET_PROXY = "http://alice:s3cr3t-pw@proxy.example.test:3128"


def test_public_surface() -> None:
    expected = [
        "ChatChatGptEs",
        "KNOWN_MODELS",
        "SiteCache",
        "SiteHealth",
        "__version__",
        *errors.__all__,
    ]
    assert sorted(langchain_chatgptes.__all__) == sorted(expected)
    for name in langchain_chatgptes.__all__:
        obj = getattr(langchain_chatgptes, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, ChatGptEsError)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATGPTES_BASE_URL", raising=False)
    monkeypatch.delenv("CHATGPTES_PROXY", raising=False)
    model = ChatChatGptEs()
    assert (model.model_name, model.model, model.base_url) == (
        "gpt-4o",
        "gpt-4o",
        "https://chatgpt.es",
    )
    assert (model.impersonate, model.proxy, model.verify) == ("chrome", None, True)
    assert model._llm_type == "chatgptes-gpt-4o"


@pytest.mark.parametrize("name", KNOWN_MODELS)
def test_known_models_by_alias_and_field_name(name: str) -> None:
    assert ChatChatGptEs(model=name).model_name == name
    assert ChatChatGptEs(model_name=name).model_name == name


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="'gpt-4', 'gpt-4o' or 'gpt-4o-mini'"):
        ChatChatGptEs(model="claude-3")


def test_unknown_model_per_call_is_a_typed_error() -> None:
    # The same rule as the field's, raised as InvalidInputError naming the argument.
    with pytest.raises(InvalidInputError, match="model='o3' is not valid for this call"):
        ChatChatGptEs().invoke("hi", model="o3")


@pytest.mark.parametrize(
    "proxy",
    [
        "http://proxy:3128",
        "https://proxy:443",
        "socks5://u:p@proxy:1080",
        "socks5h://proxy:1080",
    ],
)
def test_proxy_schemes_accepted(proxy: str) -> None:
    model = ChatChatGptEs(proxy=proxy)
    assert model.proxy is not None and model.proxy.get_secret_value() == proxy


@pytest.mark.parametrize(
    "proxy",
    ["ftp://alice:s3cr3t-pw@proxy:21", "alice:s3cr3t-pw@proxy", "http://:3128", "http://h:x"],
)
def test_bad_proxy_is_a_clear_error_without_the_secret(proxy: str) -> None:
    with pytest.raises(ValidationError, match="proxy must be a URL") as info:
        ChatChatGptEs(proxy=proxy)
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"), [("timeout", 0), ("timeout", -1), ("max_retries", -1), ("max_tokens", 0)]
)
def test_bad_numbers(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        ChatChatGptEs(**{field: value})


def test_bad_base_url() -> None:
    with pytest.raises(ValidationError, match="base_url must be an http"):
        ChatChatGptEs(base_url="chatgpt.es")


def test_proxy_credentials_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    model = ChatChatGptEs(proxy=SECRET_PROXY)
    logging.getLogger("test").debug("model: %r %s", model, model)
    shown = [
        repr(model),
        str(model),
        caplog.text,
        str(model._get_ls_params()),
        str(model.model_dump()),
        repr(model._session_options()),
    ]
    assert all("s3cr3t" not in text for text in shown)


def test_mask_proxy() -> None:
    from langchain_chatgptes._http import mask_proxy, scrub_proxy

    assert mask_proxy(SECRET_PROXY) == "http://***@proxy.example.test:3128"
    assert mask_proxy("socks5://host:1080") == "socks5://host:1080"
    assert mask_proxy("http://u:p@host:notaport") == "***"
    # Credentials are masked where they stand as in a URL (curl echoes the proxy URL, or a
    # form of it), never wherever their letters happen to occur in the message.
    echoed = f"curl: (5) Could not resolve proxy {SECRET_PROXY} (alice:s3cr3t-pw@proxy)"
    assert "s3cr3t" not in scrub_proxy(echoed, SECRET_PROXY)
    short = "http://u:e@proxy.example.test:3128"
    assert scrub_proxy("Failed to perform, curl: (5) bad proxy", short) == (
        "Failed to perform, curl: (5) bad proxy"
    )
    assert scrub_proxy(f"Unsupported proxy syntax in '{short}'", short) == (
        "Unsupported proxy syntax in 'http://***@proxy.example.test:3128'"
    )
    assert scrub_proxy("nothing secret", None) == "nothing secret"


def test_ls_params_honour_per_call_model() -> None:
    model = ChatChatGptEs(model="gpt-4o-mini", temperature=0.2, max_tokens=7, stop=["x"])
    assert model._get_ls_params() == {
        "ls_provider": "chatgptes",
        "ls_model_name": "gpt-4o-mini",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 7,
        "ls_stop": ["x"],
    }
    assert model._get_ls_params(model="gpt-4")["ls_model_name"] == "gpt-4"


def test_tokens_are_counted_offline() -> None:
    model = ChatChatGptEs()
    assert model.get_num_tokens("abcdefgh") == 2
    assert model.get_num_tokens_from_messages([HumanMessage("abcdefgh")]) > 2


def test_client_ids_are_browser_like_and_differ_between_instances() -> None:
    # (That one instance keeps its id from call to call is checked on the wire, in
    # test_every_form_field_of_the_post.)
    a, b = ChatChatGptEs(), ChatChatGptEs()
    assert a._client_id != b._client_id
    assert re.fullmatch("[0-9a-f]{10}", a._client_id)


def test_profile_is_text_only_without_native_structured_output() -> None:
    profile = ChatChatGptEs().profile
    assert profile is not None
    assert profile["text_inputs"] and not profile["image_inputs"]
    assert profile["structured_output"] is False


def test_construction_builds_no_runtime() -> None:
    assert ChatChatGptEs()._runtime is None


def test_a_curl_cffi_internals_change_is_reported_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one place that reaches into curl_cffi (freeing a closed loop's session) says so
    clearly when curl_cffi changed, and goes on."""
    from langchain_chatgptes import _sessions

    class ChangedSession:  # a session object without the attributes this version knows
        pass

    state = _sessions._LoopState(session=ChangedSession())  # type: ignore[arg-type]
    _sessions._internals_warned = False
    with caplog.at_level("WARNING", logger="langchain_chatgptes"):
        _sessions._free_on_closed_loop(state)
        _sessions._free_on_closed_loop(_sessions._LoopState(session=ChangedSession()))  # type: ignore[arg-type]
    assert state.session is None
    (record,) = [r for r in caplog.records if "changed the internals" in r.getMessage()]
    assert "AttributeError" in record.getMessage()
