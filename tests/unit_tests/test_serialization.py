"""Serialization (``dumpd``/``load``) and LangChain's caches: conventions of a partner package.

``load`` admits a class outside langchain-core's own allowlist only when it is named in
``allowed_objects``, as users load any partner model that langchain-core does not list.
"""

from __future__ import annotations

import json

import pytest
from langchain_core.load import dumpd, dumps, load
from langchain_core.prompts import ChatPromptTemplate

from langchain_chatgptes import ChatChatGptEs

SECRET = "socks5://user:hunter2pass@proxy.example.test:1080"


def test_the_model_round_trips_and_its_proxy_stays_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = ChatChatGptEs(
        base_url=["https://a.example", "https://b.example"],
        plugin="aipkit",
        bot_id="5",
        proxy=SECRET,
        site_order="fastest",
        timeout=12,
    )
    text = dumps(model)
    assert "hunter2pass" not in text
    assert json.loads(text)["kwargs"]["proxy"] == {
        "lc": 1,
        "type": "secret",
        "id": ["CHATGPTES_PROXY"],
    }
    monkeypatch.setenv("CHATGPTES_PROXY", SECRET)
    loaded = load(
        dumpd(model),
        allowed_objects=[ChatChatGptEs],
        valid_namespaces=["langchain_chatgptes"],
        secrets_from_env=True,
    )
    assert isinstance(loaded, ChatChatGptEs)
    assert loaded.model_dump() == model.model_dump()
    assert loaded.proxy is not None and loaded.proxy.get_secret_value() == SECRET


def test_a_chain_holding_the_model_round_trips() -> None:
    chain = ChatPromptTemplate.from_messages([("human", "Say {word}")]) | ChatChatGptEs(
        base_url="https://a.example", timeout=5
    )
    # langchain-core's own classes, and this one named: the recipe of the docs.
    path = ("langchain_chatgptes", "chat_models", "ChatChatGptEs")
    loaded = load(
        dumpd(chain),
        allowed_objects="core",
        additional_import_mappings={path: path},
        valid_namespaces=["langchain_chatgptes"],
    )
    assert loaded.last.base_url == "https://a.example"


def test_the_identifying_params_name_what_changes_the_answer_and_no_secret() -> None:
    model = ChatChatGptEs(proxy=SECRET)
    params = model._identifying_params
    for name in ("base_url", "plugin", "bot_id", "allowed_hosts", "site_order"):
        assert name in params
    assert "hunter2pass" not in repr(params) + repr(model._get_ls_params())


def test_load_refuses_the_model_unless_it_is_named() -> None:
    """langchain-core's ``"all"`` lists only the partners it knows: the docs' recipe is needed."""
    with pytest.raises(ValueError, match="not allowed"):
        load(
            dumpd(ChatChatGptEs()), allowed_objects="all", valid_namespaces=["langchain_chatgptes"]
        )
