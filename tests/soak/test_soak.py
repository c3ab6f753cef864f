"""``make soak``: 2,000 calls at concurrency 64 against the emulator with 5 % random faults.

Loopback only, bounded in count and time. Passes when no call hangs, no call returns an
empty answer, every failure is one of the package's typed errors, and open file
descriptors and memory are flat from the first 500 calls to the last 500.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from langchain_chatgptes import ChatChatGptEs, ChatGptEsError
from langchain_chatgptes.emulator import ChatRequest, Emulator, Reply

CALLS = int(os.environ.get("SOAK_CALLS", "2000"))
CONCURRENCY = 64
FAULT_RATE = 0.05
HANG_GUARD = 15.0  # seconds after which a call counts as hung (its own limit is 1 s)
FAULTS = [
    Reply.reset(),
    Reply.reset('{"status":"succ'),
    Reply.hang(5),
    Reply.raw(502, "<h1>Bad Gateway</h1>"),
    Reply.raw(503, "busy", headers={"Retry-After": "0"}),
    Reply.raw(429, "slow down", headers={"Retry-After": "0"}),
    Reply.raw(200, "<html>maintenance</html>"),
    Reply.raw(200, '{"status":"success","data":""}', "application/json"),
    Reply.site_error("Upstream hiccup"),
    Reply.token_limit(),
]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


@pytest.fixture
def site() -> Iterator[Emulator]:
    rng = random.Random(20261121)  # noqa: S311 (fault placement, not security)

    def responder(request: ChatRequest) -> Reply | str:
        if rng.random() < FAULT_RATE:
            return rng.choice(FAULTS)
        return f"answer to {request.message.rsplit(' ', 1)[-1]}"

    with Emulator(responder=responder) as emulator:
        yield emulator


async def test_soak(site: Emulator) -> None:
    model = ChatChatGptEs(
        base_url=site.base_url, timeout=1.0, max_retries=2, max_concurrency=CONCURRENCY
    )
    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes: Counter[str] = Counter()
    samples: dict[str, tuple[int, float]] = {}
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        token = f"q{i}"
        async with gate:
            site.stream = (i // 500) % 2 == 1  # JSON and event-stream replies in turns
            try:
                call = _invoke(model, token) if i % 2 else _stream(model, token)
                text = await asyncio.wait_for(call, HANG_GUARD)
            except ChatGptEsError as exc:  # RequestTimeoutError included: a typed limit
                outcomes[type(exc).__name__] += 1
            except TimeoutError:  # only wait_for's guard: the call itself never ended
                outcomes["HUNG"] += 1
            except Exception as exc:  # anything untyped is a failure of the package
                outcomes[f"UNTYPED {type(exc).__name__}: {exc}"] += 1
            else:
                outcomes["answer" if text == f"answer to {token}" else f"WRONG {text!r}"] += 1
            done += 1
            if done in (500, CALLS - 500, CALLS):
                samples[str(done)] = (open_fds(), rss_mb())

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(CALLS)))
    elapsed = time.monotonic() - started
    await model.aclose()
    print(f"\n{CALLS} calls in {elapsed:.1f} s: {dict(outcomes)}; fds/RSS MB: {samples}")

    assert sum(outcomes.values()) == CALLS
    assert outcomes["HUNG"] == 0
    assert not [key for key in outcomes if key.startswith(("UNTYPED", "WRONG"))]
    assert outcomes["answer"] >= CALLS * 0.9
    first_fds, first_rss = samples["500"]
    last_fds, last_rss = samples[str(CALLS)]
    assert last_fds <= first_fds + 8
    assert last_rss <= first_rss + 40


async def _invoke(model: ChatChatGptEs, prompt: str) -> str:
    return (await model.ainvoke(prompt)).text


async def _stream(model: ChatChatGptEs, prompt: str) -> str:
    return "".join([chunk.text async for chunk in model.astream(prompt)])
