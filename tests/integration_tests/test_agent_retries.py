"""Agents decide retries from LangChain's error classes: retryable errors are retried,
permanent ones are not (``create_agent`` + ``ModelRetryMiddleware`` at its defaults).

Counted on the emulator (what was sent) and with a callback (how often the model was asked).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRetryMiddleware
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig

from langchain_chatgptes import ChatChatGptEs, InvalidInputError
from langchain_chatgptes.emulator import Emulator, Reply, ScriptedResponder


class Starts(BaseCallbackHandler):
    """Counts the model calls an agent makes."""

    def __init__(self) -> None:
        self.count = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1


async def test_a_rate_limit_is_retried_by_the_agent() -> None:
    with Emulator() as site:
        site.responder = ScriptedResponder([Reply.raw(429, "Too many requests")])
        model = ChatChatGptEs(base_url=site.base_url, timeout=5, max_retries=0)
        agent = create_agent(model, middleware=[ModelRetryMiddleware()])
        starts = Starts()
        state: Any = {"messages": [HumanMessage("hello")]}
        result = await agent.ainvoke(state, config=RunnableConfig(callbacks=[starts]))
        answer = result["messages"][-1]
        assert isinstance(answer, AIMessage)
        assert "emulator" in answer.text  # the second attempt answered
        assert len(site.chat_requests()) == 2
        assert starts.count == 2


async def test_bad_input_is_not_retried_by_the_agent() -> None:
    # AI Engine's length rule: refused before anything is sent, and not worth a retry.
    with Emulator(plugin="mwai") as site:
        model = ChatChatGptEs(base_url=site.base_url, timeout=5, max_retries=0)
        agent = create_agent(model, middleware=[ModelRetryMiddleware()])
        starts = Starts()
        state: Any = {"messages": [HumanMessage("x" * 600)]}
        with pytest.raises(InvalidInputError):  # re-raised at once: not retryable
            await agent.ainvoke(state, config=RunnableConfig(callbacks=[starts]))
        assert starts.count == 1
        assert site.submit_requests() == []
