"""The langchain-tests standard integration suite, against the local emulator.

Run four times: against a legacy site that answers JSON, one that streams events, an AIPKit
site (a cache POST, then an event stream) and an AI Engine site (a REST session, then one
JSON POST answered with a stream).
The emulator's model follows the tool prompt, so every tool-calling and structured-output
test runs (``has_tool_calling`` and ``has_tool_choice`` come from ``bind_tools``).
"""

from __future__ import annotations

from typing import Literal

from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_chatgptes import ChatChatGptEs

from .conftest import shared_emulator


class TestChatChatGptEsJsonSite(ChatModelIntegrationTests):
    site_streams = False
    site_plugin: Literal["wpaicg", "aipkit", "mwai"] = "wpaicg"

    @property
    def chat_model_class(self) -> type[ChatChatGptEs]:
        return ChatChatGptEs

    @property
    def chat_model_params(self) -> dict[str, object]:
        return {
            "model": "gpt-4o",
            "base_url": shared_emulator(self.site_streams, self.site_plugin).base_url,
            "timeout": 10,
        }

    @property
    def model_override_value(self) -> str:
        return "gpt-4o-mini"

    @property
    def supports_json_mode(self) -> bool:
        return True


class TestChatChatGptEsStreamingSite(TestChatChatGptEsJsonSite):
    site_streams = True


class TestChatChatGptEsAipkitSite(TestChatChatGptEsJsonSite):
    site_streams = True
    site_plugin = "aipkit"


class TestChatChatGptEsAiEngineSite(TestChatChatGptEsJsonSite):
    site_streams = True
    site_plugin = "mwai"
