"""The langchain-tests standard unit suite (run with sockets disabled)."""

from __future__ import annotations

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_chatgptes import ChatChatGptEs


class TestChatChatGptEsUnit(ChatModelUnitTests):
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
