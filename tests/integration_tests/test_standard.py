"""The langchain-tests standard integration suite, against the local emulator.

Run twice: once against a site that answers JSON, once against one that streams events.
Tool calling and structured output are off until the model binds tools (the suite skips
them through its capability properties).
"""

from __future__ import annotations

from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_chatgptes import ChatChatGptEs

from .conftest import shared_emulator


class TestChatChatGptEsJsonSite(ChatModelIntegrationTests):
    site_streams = False

    @property
    def chat_model_class(self) -> type[ChatChatGptEs]:
        return ChatChatGptEs

    @property
    def chat_model_params(self) -> dict[str, object]:
        return {
            "model": "gpt-4o",
            "base_url": shared_emulator(self.site_streams).base_url,
            "timeout": 10,
        }

    @property
    def model_override_value(self) -> str:
        return "gpt-4o-mini"


class TestChatChatGptEsStreamingSite(TestChatChatGptEsJsonSite):
    site_streams = True
