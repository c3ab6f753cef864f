"""Fixtures: a fresh local emulator of chatgpt.es per test, and a recording HTTP proxy."""

from __future__ import annotations

import asyncio
import atexit
import functools
import operator
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from aiohttp import ClientSession, ClientTimeout, web
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import Runnable

from langchain_chatgptes import ChatChatGptEs
from langchain_chatgptes.emulator import Emulator, MwaiOptions, SilentSite, ToolModelResponder


@functools.cache
def shared_emulator(
    stream: bool, plugin: Literal["wpaicg", "aipkit", "mwai"] = "wpaicg"
) -> Emulator:
    """One emulator per plugin and reply mode for the whole run (the standard suites').

    Its model follows the tool prompt, so the suites' tool and structured-output tests run.
    An AI Engine bot there takes long messages (``textInputMaxLength`` is a site setting;
    the suites' prompts exceed the default 512, which has tests of its own).
    """
    emulator = Emulator(
        stream=stream,
        plugin=plugin,
        responder=ToolModelResponder(),
        mwai=MwaiOptions(text_input_max_length=100_000),
    ).start()
    atexit.register(emulator.stop)
    return emulator


PATHS = ["invoke", "ainvoke", "stream", "astream"]
"""The four ways to call a model; tests take ``path`` from this list and use :func:`call`."""


async def call(
    model: Runnable[LanguageModelInput, Any], path: str, prompt: str = "x"
) -> AIMessage | AIMessageChunk:
    """Call ``model`` (or a binding of it) one way; the stream paths return summed chunks."""
    if path == "invoke":
        return model.invoke(prompt)
    if path == "ainvoke":
        return await model.ainvoke(prompt)
    if path == "stream":
        return summed(list(model.stream(prompt)))
    return summed([chunk async for chunk in model.astream(prompt)])


def summed(chunks: Sequence[Any]) -> AIMessageChunk:
    """The message a list of streamed chunks adds up to."""
    total = functools.reduce(operator.add, chunks)
    assert isinstance(total, AIMessageChunk)
    return total


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def model(emulator: Emulator) -> ChatChatGptEs:
    return ChatChatGptEs(base_url=emulator.base_url, timeout=5, max_retries=0)


@dataclass
class RecordingProxy:
    """A plain HTTP forward proxy on loopback that records what passes through it."""

    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            (request.method, str(request.url), request.headers.get("Proxy-Authorization"))
        )
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("proxy-authorization", "proxy-connection", "host")
        }
        async with (
            ClientSession(timeout=ClientTimeout(total=30), auto_decompress=False) as client,
            client.request(
                request.method, str(request.url), headers=headers, data=await request.read()
            ) as upstream,
        ):
            response = web.StreamResponse(status=upstream.status)
            for name in ("Content-Type", "Content-Encoding"):
                if name in upstream.headers:
                    response.headers[name] = upstream.headers[name]
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    def start(self) -> RecordingProxy:
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._forward)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]
            ready.set()

        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop)
        ready.wait(5)
        return self

    def stop(self) -> None:
        assert self._loop is not None and self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    recorder = RecordingProxy().start()
    yield recorder
    recorder.stop()


@pytest.fixture
def listener() -> Iterator[SilentSite]:
    """A TCP port that accepts connections, closes them and never answers (counts them)."""
    port = SilentSite(hold=False)
    try:
        yield port
    finally:
        port.close()


@pytest.fixture
def hanging() -> Iterator[SilentSite]:
    """A site that accepts connections and never answers (counts them)."""
    port = SilentSite(hold=True)
    try:
        yield port
    finally:
        port.close()
