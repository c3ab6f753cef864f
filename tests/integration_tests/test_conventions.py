"""LangChain's caches and serialization against emulated sites: what changes the answer
keys the cache, and a chain that was dumped and loaded still answers."""

from __future__ import annotations

from langchain_core.caches import InMemoryCache
from langchain_core.load import dumpd, load
from langchain_core.prompts import ChatPromptTemplate

from langchain_chatgptes import ChatChatGptEs
from langchain_chatgptes.emulator import AipkitOptions, Emulator, ScriptedResponder

PATH = ("langchain_chatgptes", "chat_models", "ChatChatGptEs")


def answering(text: str) -> ScriptedResponder:
    return ScriptedResponder(fallback=lambda request: text)


def test_models_on_different_sites_never_share_a_cache_entry() -> None:
    cache = InMemoryCache()
    with Emulator() as one, Emulator() as two:
        one.responder, two.responder = answering("from one"), answering("from two")
        first = ChatChatGptEs(base_url=one.base_url, cache=cache)
        second = ChatChatGptEs(base_url=two.base_url, cache=cache)
        assert first.invoke("same prompt").text == "from one"
        assert second.invoke("same prompt").text == "from two"
        assert first.invoke("same prompt").text == "from one"  # from the cache
        assert len(one.chat_requests()) == len(two.chat_requests()) == 1


def test_models_on_different_plugins_or_bots_never_share_a_cache_entry() -> None:
    cache = InMemoryCache()
    with Emulator(plugin="aipkit", aipkit=AipkitOptions(bots=(1, 2))) as site:
        site.responder = ScriptedResponder(fallback=lambda r: f"bot {r.form['bot_id']}")
        one = ChatChatGptEs(base_url=site.base_url, bot_id="1", cache=cache)
        two = ChatChatGptEs(base_url=site.base_url, bot_id="2", cache=cache)
        assert one.invoke("hi").text == "bot 1"
        assert two.invoke("hi").text == "bot 2"
    with Emulator(plugin="mwai", page_variant="mixed") as mixed:
        mixed.responder = answering("answered")
        aipkit = ChatChatGptEs(base_url=mixed.base_url, plugin="aipkit", cache=cache)
        mwai = ChatChatGptEs(base_url=mixed.base_url, plugin="mwai", cache=cache)
        assert aipkit.invoke("hi").response_metadata["site_plugin"] == "aipkit"
        assert mwai.invoke("hi").response_metadata["site_plugin"] == "mwai"


def test_a_dumped_and_loaded_chain_answers() -> None:
    with Emulator() as site:
        site.responder = answering("loaded and answering")
        chain = ChatPromptTemplate.from_messages([("human", "Say {word}")]) | ChatChatGptEs(
            base_url=site.base_url, timeout=5
        )
        loaded = load(
            dumpd(chain),
            allowed_objects="core",
            additional_import_mappings={PATH: PATH},
            valid_namespaces=["langchain_chatgptes"],
        )
        assert loaded.invoke({"word": "hi"}).text == "loaded and answering"
        assert site.chat_requests()[0].form["message"].endswith("Say hi")
