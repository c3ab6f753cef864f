"""Cancelling calls frees their connections; nothing complains at interpreter exit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest

from langchain_chatgptes import ChatChatGptEs
from langchain_chatgptes.emulator import Emulator


@pytest.mark.parametrize("path", ["ainvoke", "astream"])
async def test_cancelled_call_frees_its_slot(emulator: Emulator, path: str) -> None:
    model = ChatChatGptEs(base_url=emulator.base_url, timeout=10, max_concurrency=1)
    await model.ainvoke("warm")  # the page is cached: the slot is all the next call needs
    emulator.stream = path == "astream"
    emulator.chunk_delay = 0.5  # a long, slow answer
    emulator.latency = 0.0 if path == "astream" else 2.0

    async def consume() -> None:
        if path == "ainvoke":
            await model.ainvoke("slow")
        else:
            async for _ in model.astream("slow"):
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The only slot is free again: the next call starts at once.
    emulator.latency, emulator.chunk_delay, emulator.stream = 0.0, 0.0, False
    started = time.monotonic()
    assert "quick" in (await model.ainvoke("quick")).text
    assert time.monotonic() - started < 1.0


def test_no_warnings_at_interpreter_exit(emulator: Emulator) -> None:
    emulator.stream = True
    script = textwrap.dedent(
        f"""
        import asyncio
        from langchain_chatgptes import ChatChatGptEs

        model = ChatChatGptEs(base_url={emulator.base_url!r})

        async def main():
            await model.ainvoke("hello")
            task = asyncio.create_task(model.ainvoke("to be cancelled"))
            await asyncio.sleep(0)
            task.cancel()
            async for _ in model.astream("stream"):
                break

        asyncio.run(main())
        asyncio.run(model.ainvoke("second loop"))
        model.invoke("sync")
        list(model.stream("sync stream"))
        """
    )
    done = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Curlm" not in done.stderr
    assert "Unclosed" not in done.stderr and "unclosed" not in done.stderr
    assert "Task was destroyed" not in done.stderr
