"""The langchain-tests standard unit suite (run with sockets disabled)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from unittest import mock

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_chatgptes import ChatChatGptEs

# The module, not the function of the same name that langchain_core.load re-exports.
lc_load = importlib.import_module("langchain_core.load.load")
PATH = ("langchain_chatgptes", "chat_models", "ChatChatGptEs")


class TestChatChatGptEsUnit(ChatModelUnitTests):
    @pytest.fixture(autouse=True)
    def _listed_for_load(self, request: pytest.FixtureRequest) -> Iterator[None]:
        """For the standard ``test_serdes``: this class on langchain-core's allowlist.

        ``load(allowed_objects="all")`` admits the classes langchain-core's own mapping lists
        (every partner it ships an entry for); a package outside it is admitted by name, as
        users do with ``allowed_objects=[ChatChatGptEs]`` (``test_serialization.py``). The
        entry added here is the one langchain-core would carry; dump, snapshot and load stay
        the standard test's own.
        """
        if not request.node.name.startswith("test_serdes"):
            yield
            return
        with (
            mock.patch.dict(lc_load.ALL_SERIALIZABLE_MAPPINGS, {PATH: PATH}),
            mock.patch.dict(lc_load._default_class_paths_cache, clear=True),
        ):
            yield

    @property
    def chat_model_class(self) -> type[ChatChatGptEs]:
        return ChatChatGptEs

    @property
    def chat_model_params(self) -> dict[str, object]:
        return {"model": "gpt-4o"}

    @property
    def init_from_env_params(
        self,
    ) -> tuple[dict[str, str], dict[str, object], dict[str, object]]:
        return (
            {
                "CHATGPTES_BASE_URL": "https://chat.example.test",
                "CHATGPTES_PROXY": "socks5://user:secret@proxy.example.test:1080",
                "CHATGPTES_PLUGIN": "aipkit",
            },
            {"model": "gpt-4o-mini"},
            {
                "base_url": "https://chat.example.test",
                "proxy": "socks5://user:secret@proxy.example.test:1080",
                "plugin": "aipkit",
            },
        )


class TestChatChatGptEsUnitAipkit(TestChatChatGptEsUnit):
    """The same suite with the AIPKit protocol forced (nothing protocol-specific may leak)."""

    @property
    def chat_model_params(self) -> dict[str, object]:
        return {"model": "gpt-4o", "plugin": "aipkit", "bot_id": "123"}


class TestChatChatGptEsUnitAiEngine(TestChatChatGptEsUnit):
    """The same suite with the AI Engine protocol forced."""

    @property
    def chat_model_params(self) -> dict[str, object]:
        return {"model": "gpt-4o", "plugin": "mwai", "bot_id": "default"}
