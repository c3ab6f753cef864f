"""One client, one scenario, in a fresh process: prints one JSON line of measurements.

Run by ``benchmarks/bench.py`` (``make bench``), which owns the emulator and the table.
Clients: ``chatgptes-sync``, ``chatgptes-async`` (this package), ``seed-0.5.2`` and
``seed-0.4.8`` (g4f's ChatGptEs provider, from a ``--target`` install on ``PYTHONPATH``),
``floor-sync`` and ``floor-async`` (one raw curl_cffi POST with a known-good nonce), and
``floor-aipkit-sync`` / ``floor-aipkit-async`` (AIPKit's two raw requests: the cache POST,
then the stream GET read whole) and ``floor-mwai-sync`` / ``floor-mwai-async`` (AI Engine's
raw REST POST, after one ``start_session``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

PROMPT = "What is the capital of Spain?"


def _form(args: argparse.Namespace, prompt: str) -> dict[str, str]:
    # What a browser posts; written out here so the floor imports nothing of the package.
    return {
        "_wpnonce": args.nonce,
        "post_id": args.post_id,
        "url": args.base_url,
        "action": "wpaicg_chat_shortcode_message",
        "message": prompt,
        "bot_id": "0",
        "chatbot_identity": "shortcode",
        "wpaicg_chat_client_id": "0123456789",
        "wpaicg_chat_history": "[]",
    }


class Client:
    """The calls a scenario needs, for one client: sync or async, whole or streamed."""

    sync_call: Callable[[str], str] | None = None
    sync_stream: Callable[[str], Iterator[str]] | None = None
    async_call: Callable[[str], Coroutine[Any, Any, str]] | None = None
    async_stream: Callable[[str], AsyncIterator[str]] | None = None


def _text(message: Any) -> str:
    # The content string itself: langchain-core's `.text` builds a copy on every access
    # (a str subclass), which would be the reader's cost, not the client's.
    return message.content if isinstance(message.content, str) else message.text


def make_client(args: argparse.Namespace) -> Client:
    """Build the named client against ``args.base_url``."""
    client = Client()
    url = args.base_url
    if args.client.startswith("chatgptes"):
        from langchain_chatgptes import ChatChatGptEs

        model = ChatChatGptEs(base_url=url, timeout=120, max_concurrency=args.concurrency)
        if args.client == "chatgptes-own":
            # The package's own streaming path, without BaseChatModel.astream's callbacks
            # (which add every chunk into one message for on_llm_end).
            from langchain_core.messages import HumanMessage

            async def own(prompt: str) -> AsyncIterator[str]:
                async for chunk in model._astream([HumanMessage(prompt)]):
                    yield _text(chunk.message)

            client.async_stream = own
        elif args.client == "chatgptes-sync":
            client.sync_call = lambda prompt: _text(model.invoke(prompt))
            client.sync_stream = lambda prompt: (_text(chunk) for chunk in model.stream(prompt))

        else:

            async def call(prompt: str) -> str:
                return _text(await model.ainvoke(prompt))

            async def stream(prompt: str) -> AsyncIterator[str]:
                async for chunk in model.astream(prompt):
                    yield _text(chunk)

            client.async_call, client.async_stream = call, stream
    elif args.client == "langchain-noop":
        # LangChain's own per-call cost: a chat model that only waits as long as the site.
        from langchain_core.language_models import BaseChatModel
        from langchain_core.messages import AIMessage
        from langchain_core.outputs import ChatGeneration, ChatResult

        class NoOp(BaseChatModel):
            latency: float = 0.0

            @property
            def _llm_type(self) -> str:
                return "no-op"

            def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
                time.sleep(self.latency)
                return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])

            async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
                await asyncio.sleep(self.latency)
                return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])

        noop = NoOp(latency=args.latency)

        async def noop_call(prompt: str) -> str:
            return (await noop.ainvoke(prompt)).text

        client.async_call = noop_call
    elif args.client.startswith("seed"):
        from g4f.Provider import ChatGptEs  # the version on PYTHONPATH

        ChatGptEs.url = url
        ChatGptEs.api_endpoint = url + "/wp-admin/admin-ajax.php"

        async def stream(prompt: str) -> AsyncIterator[str]:
            messages = [{"role": "user", "content": prompt}]
            async for part in ChatGptEs.create_async_generator("gpt-4o", messages):
                yield str(part)

        async def call(prompt: str) -> str:
            return "".join([part async for part in stream(prompt)])

        client.async_call, client.async_stream = call, stream
    elif args.client == "floor-sync":
        from curl_cffi.requests import Response, Session

        session: Session[Response] = Session(impersonate="chrome", timeout=120)
        ajax = url + "/wp-admin/admin-ajax.php"
        client.sync_call = lambda prompt: session.post(ajax, data=_form(args, prompt)).json()[
            "data"
        ]
    elif args.client == "floor-async":
        from curl_cffi.requests import AsyncSession, Response

        asession: AsyncSession[Response] = AsyncSession(
            impersonate="chrome", timeout=120, max_clients=args.concurrency
        )
        ajax = url + "/wp-admin/admin-ajax.php"

        async def call(prompt: str) -> str:
            return (await asession.post(ajax, data=_form(args, prompt))).json()["data"]

        client.async_call = call
    elif args.client == "floor-aipkit-sync":
        from curl_cffi.requests import Response, Session

        session_: Session[Response] = Session(impersonate="chrome", timeout=120)
        ajax = url + "/wp-admin/admin-ajax.php"

        def aipkit_call(prompt: str) -> str:
            key = session_.post(ajax, data=_cache_form(args, prompt)).json()["data"]["cache_key"]
            return _deltas(session_.get(ajax, params=_stream_query(args, key)).content)

        client.sync_call = aipkit_call
    elif args.client == "floor-aipkit-async":
        from curl_cffi.requests import AsyncSession, Response

        asession_: AsyncSession[Response] = AsyncSession(
            impersonate="chrome", timeout=120, max_clients=args.concurrency
        )
        ajax = url + "/wp-admin/admin-ajax.php"

        async def aipkit_acall(prompt: str) -> str:
            cached = await asession_.post(ajax, data=_cache_form(args, prompt))
            key = cached.json()["data"]["cache_key"]
            return _deltas((await asession_.get(ajax, params=_stream_query(args, key))).content)

        client.async_call = aipkit_acall
    elif args.client == "floor-mwai-sync":
        from curl_cffi.requests import Response, Session

        msession: Session[Response] = Session(impersonate="chrome", timeout=120)
        started = msession.post(url + "/wp-json/mwai/v1/start_session").json()
        mheaders = {"X-WP-Nonce": started["restNonce"]}

        def mwai_call(prompt: str) -> str:
            body = _submit_body(prompt)
            reply = msession.post(url + SUBMIT, json=body, headers=mheaders)
            return _live_text(reply.content)

        client.sync_call = mwai_call
    elif args.client == "floor-mwai-async":
        from curl_cffi.requests import AsyncSession, Response

        masession: AsyncSession[Response] = AsyncSession(
            impersonate="chrome", timeout=120, max_clients=args.concurrency
        )
        session_started: dict[str, str] = {}

        async def mwai_acall(prompt: str) -> str:
            if not session_started:  # the first (warm-up) call opens the session
                started = (await masession.post(url + "/wp-json/mwai/v1/start_session")).json()
                session_started["X-WP-Nonce"] = started["restNonce"]
            reply = await masession.post(
                url + SUBMIT, json=_submit_body(prompt), headers=session_started
            )
            return _live_text(reply.content)

        client.async_call = mwai_acall
    else:
        raise SystemExit(f"unknown client {args.client}")
    return client


SUBMIT = "/wp-json/mwai-ui/v1/chats/submit"


def _submit_body(prompt: str) -> dict[str, Any]:
    # AI Engine's submit body, as its script sends it (written out, like the other floors).
    return {
        "botId": "default",
        "messages": [],
        "newMessage": prompt,
        "stream": True,
        "chatId": uuid.uuid4().hex[:11],
    }


def _live_text(body: bytes) -> str:
    """The answer text of a whole AI Engine stream (``live`` lines without a subtype)."""
    text = []
    for line in body.decode().split("\n"):
        if line.startswith("data: "):
            item = json.loads(line[6:])
            if item.get("type") == "live" and "subtype" not in item:
                text.append(item["data"])
    return "".join(text)


def _cache_form(args: argparse.Namespace, prompt: str) -> dict[str, str]:
    # AIPKit's step 1, as its script posts it (written out: the floor imports nothing of ours).
    return {
        "action": "aipkit_cache_sse_message",
        "_ajax_nonce": args.nonce,
        "message": prompt,
        "bot_id": args.bot_id,
    }


def _stream_query(args: argparse.Namespace, key: str) -> dict[str, str]:
    return {
        "action": "aipkit_frontend_chat_stream",
        "cache_key": key,
        "bot_id": args.bot_id,
        "session_id": "0f6c7a3e-3d1b-4b8e-9a51-6e1c2f0d9b77",
        "conversation_uuid": str(uuid.uuid4()),
        "_ajax_nonce": args.nonce,
    }


def _deltas(body: bytes) -> str:
    """The answer text of a whole AIPKit event stream (unnamed ``{"delta"}`` events)."""
    return "".join(
        json.loads(line[6:])["delta"]
        for line in body.decode().split("\n")
        if line.startswith('data: {"delta"')
    )


def _run(client: Client, prompt: str) -> str:
    if client.sync_call is not None:
        return client.sync_call(prompt)
    if client.async_call is not None:
        return asyncio.run(client.async_call(prompt))

    async def consume() -> str:
        assert client.async_stream is not None
        return "".join([text async for text in client.async_stream(prompt)])

    return asyncio.run(consume())


def sequential(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """Median seconds per call over ``args.n`` calls in a row (after one warm-up)."""
    times: list[float] = []

    async def async_calls() -> None:
        assert client.async_call is not None
        await client.async_call(PROMPT)
        for _ in range(args.n):
            started = time.perf_counter()
            await client.async_call(PROMPT)
            times.append(time.perf_counter() - started)

    if client.sync_call is not None:
        client.sync_call(PROMPT)
        for _ in range(args.n):
            started = time.perf_counter()
            client.sync_call(PROMPT)
            times.append(time.perf_counter() - started)
    else:
        asyncio.run(async_calls())
    return {"per_call": statistics.median(times)}


def concurrent(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """Wall time of ``args.n`` calls at once, and the longest event-loop stall meanwhile."""

    async def main() -> dict[str, Any]:
        assert client.async_call is not None
        await client.async_call(PROMPT)  # page cache and connections warm
        stall = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal stall
            while not done.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.001)
                stall = max(stall, time.perf_counter() - before - 0.001)

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        answers = await asyncio.gather(*(client.async_call(f"{PROMPT} {i}") for i in range(args.n)))
        wall = time.perf_counter() - started
        done.set()
        await tick
        assert all(answers)
        return {"wall": wall, "max_stall": stall}

    return asyncio.run(main())


def first_chunk(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """perf_counter() when the first piece of answer text reached the caller."""
    if client.sync_stream is not None:
        for text in client.sync_stream(PROMPT):
            if text:
                return {"first_chunk_at": time.perf_counter()}
    assert client.async_stream is not None

    async def main() -> float:
        assert client.async_stream is not None
        async for text in client.async_stream(PROMPT):
            if text:
                return time.perf_counter()
        raise AssertionError("no text")

    return {"first_chunk_at": asyncio.run(main())}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def memory(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory growth while streaming the (large) answer, nothing of it kept."""
    _run(client, "warm")
    rss_before = _rss_bytes()
    tracemalloc.start()
    size = 0
    if client.sync_stream is not None:
        for text in client.sync_stream("big"):
            size += len(text)
    else:

        async def main() -> int:
            total = 0
            assert client.async_stream is not None
            async for text in client.async_stream("big"):
                total += len(text)
            return total

        size = asyncio.run(main())
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"chars": size, "traced_peak": traced_peak, "rss_growth": rss_peak - rss_before}


SCENARIOS = {
    "sequential": sequential,
    "concurrent": concurrent,
    "first_chunk": first_chunk,
    "memory": memory,
    "calls": lambda client, args: {"done": [_run(client, PROMPT) for _ in range(args.n)] and 1},
}


def main() -> None:
    """Parse arguments, run the scenario, print its JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", required=True)
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--nonce", default="")
    parser.add_argument("--post-id", default="")
    parser.add_argument("--bot-id", default="")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    print(json.dumps(SCENARIOS[args.scenario](make_client(args), args)))


if __name__ == "__main__":
    main()
