"""`make demo`: a LangChain chain and a streamed answer, offline, on the bundled emulator.

Every byte goes through the real client path (page GET, nonce, admin-ajax POST, event
stream parsing) against a local emulator of chatgpt.es; only the "model" is a stand-in
that quotes your last message back, so nothing here needs the internet.
"""

from __future__ import annotations

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_chatgptes import ChatChatGptEs
from langchain_chatgptes.emulator import Emulator

RULE = "-" * 72


def main() -> None:
    """Run the demo."""
    with Emulator(stream=True, chunk_delay=0.02) as emulator:
        print(RULE)
        print(f"Answers below come from the LOCAL EMULATOR at {emulator.base_url},")
        print("not from chatgpt.es (no internet needed).")
        print(RULE)
        model = ChatChatGptEs(base_url=emulator.base_url, timeout=10)

        prompt = ChatPromptTemplate.from_messages(
            [("system", "You are a concise assistant."), ("human", "Explain {topic} briefly.")]
        )
        chain = prompt | model | StrOutputParser()
        print("1) chain.invoke({'topic': 'LangChain'}):")
        print("  ", chain.invoke({"topic": "LangChain"}))
        print()

        print("2) model.stream('Tell me about Madrid'), chunk by chunk:")
        print("   ", end="")
        chunks = 0
        for chunk in model.stream("Tell me about Madrid"):
            print(chunk.text, end="", flush=True)
            chunks += 1
        print(f"\n   ({chunks} chunks)")
        print(RULE)
        pages, posts = len(emulator.page_requests()), len(emulator.chat_requests())
        print(f"The emulator saw {pages} page GET (nonce cached) and {posts} chat POSTs.")
        model.close()


if __name__ == "__main__":
    main()
