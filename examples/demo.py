"""`make demo`: a LangChain chain and a streamed answer, offline, on the bundled emulator.

Runs three times: against an emulated site on the current AI Power plugin (AIPKit, 2.3+: a
cache POST, then an event stream), on AI Engine (Meow Apps: a REST session once, then one
JSON POST per call) and on the legacy AI Power plugin (one POST). The same model code talks
to all three; it reads the page and speaks what it finds. Every byte goes through the
real client path against a local emulator of chatgpt.es; only the "model" is a stand-in
that quotes your last message back, so nothing here needs the internet.
"""

from __future__ import annotations

from typing import Literal

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_chatgptes import ChatChatGptEs
from langchain_chatgptes.emulator import Emulator

RULE = "-" * 72
Plugin = Literal["aipkit", "mwai", "wpaicg"]
PLUGINS: dict[Plugin, str] = {
    "aipkit": "AIPKit (AI Power 2.3+)",
    "mwai": "AI Engine (Meow Apps)",
    "wpaicg": "legacy AI Power (wpaicg, up to 2.2)",
}


def run(plugin: Plugin) -> None:
    """The chain and the stream against one emulated plugin."""
    with Emulator(plugin=plugin, stream=True, chunk_delay=0.02) as emulator:
        print(RULE)
        print(f"Site plugin: {PLUGINS[plugin]}. Answers below come from the LOCAL EMULATOR")
        print(f"at {emulator.base_url}, not from chatgpt.es (no internet needed).")
        print(RULE)
        model = ChatChatGptEs(base_url=emulator.base_url, timeout=10)  # plugin="auto"

        prompt = ChatPromptTemplate.from_messages(
            [("system", "You are a concise assistant."), ("human", "Explain {topic} briefly.")]
        )
        chain = prompt | model | StrOutputParser()
        print("1) chain.invoke({'topic': 'LangChain'}):")
        print("  ", chain.invoke({"topic": "LangChain"}))
        print()

        print("2) model.stream('Tell me about Madrid'), chunk by chunk:")
        print("   ", end="")
        chunks, metadata = 0, {}
        for chunk in model.stream("Tell me about Madrid"):
            print(chunk.text, end="", flush=True)
            chunks += 1
            metadata.update(chunk.response_metadata)
        print(
            f"\n   ({chunks} chunks; detected: {metadata['site_plugin']} bot "
            f"{metadata['site_bot_id']})"
        )
        pages = len(emulator.page_requests())
        if plugin == "aipkit":
            calls = (
                f"{len(emulator.cache_requests())} cache POSTs and "
                f"{len(emulator.stream_requests())} stream GETs"
            )
        elif plugin == "mwai":
            calls = (
                f"{len(emulator.session_requests())} session POST and "
                f"{len(emulator.submit_requests())} chat POSTs"
            )
        else:
            calls = f"{len(emulator.chat_requests())} chat POSTs"
        print(f"The emulator saw {pages} page GET (nonce cached), then {calls}.")
        model.close()


def main() -> None:
    """Run the demo on each plugin."""
    for plugin in PLUGINS:
        run(plugin)
    print(RULE)


if __name__ == "__main__":
    main()
