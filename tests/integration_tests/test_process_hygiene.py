"""Process hygiene: forks, thread pools, threads, descriptors, copies and pickling.

Each test runs the client in a fresh interpreter (with a time limit, so that a hang fails
the test instead of blocking the run) against an emulator in this process, and
checks both what the subprocess saw and what reached the emulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from langchain_chatgptes.emulator import ChatRequest, EchoResponder, Emulator, Reply

RESULT = "RESULT "
"""Prefix of the line where a subprocess hands its findings (JSON) back to the test."""


def run_python(
    script: str | Path, *args: str, cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (source for ``python -c``, or a file) with ``args``; it must exit 0.

    It runs in a process group of its own, killed as a whole when the time is up (or when
    forked children outlive it), so that nothing it started survives a failed test.
    """
    source = ["-c", textwrap.dedent(script)] if isinstance(script, str) else [str(script)]
    command = [sys.executable, *source, *args]
    with subprocess.Popen(  # noqa: S603 (our own interpreter and script)
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,  # not the source tree: the interpreter's own import path decides
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(
                f"still running after {timeout} s\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            )
        finally:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, (
        f"exit status {process.returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    )
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def result_of(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a subprocess printed on its ``RESULT`` line."""
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    assert lines, f"no result line\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return json.loads(lines[-1].removeprefix(RESULT))


def ports_by_prompt(emulator: Emulator) -> dict[str, set[int]]:
    """Client ports (one per connection) of the chat requests, by the prompt they carried."""
    ports: dict[str, set[int]] = defaultdict(set)
    for request in emulator.chat_requests():
        prompt = request.form["message"].rpartition("User input: ")[2]
        ports[prompt].add(request.peer[1])
    return ports


# --- 1. fork ---------------------------------------------------------------------------------

FORK_SCRIPT = """
    import asyncio, json, os, sys, threading, traceback
    from langchain_chatgptes import ChatChatGptEs

    base_url, how = sys.argv[1:]
    model = ChatChatGptEs(base_url=base_url, timeout=10, max_retries=0)


    def ask_all():
        prompts = [f"pid {os.getpid()} call {i}" for i in range(20)]
        if how == "sync":
            # Some on the thread that warmed up (where a per-thread handle would keep the
            # inherited connection), the rest at the same time from a pool.
            batched = []
            pool = threading.Thread(
                target=lambda: batched.extend(model.batch(prompts[5:], {"max_concurrency": 15}))
            )
            pool.start()
            replies = [model.invoke(prompt) for prompt in prompts[:5]]
            pool.join()
            replies += batched
        else:
            async def gather():
                return await asyncio.gather(*(model.ainvoke(p) for p in prompts))
            replies = asyncio.run(gather())
        wrong = [
            (p, r.text) for p, r in zip(prompts, replies) if not r.text.endswith(f"wrote: {p}")
        ]
        for prompt, text in wrong:
            print(f"pid {os.getpid()} asked {prompt!r}, got {text!r}", file=sys.stderr)
        return not wrong


    def checked():
        try:
            return ask_all()
        except BaseException:
            traceback.print_exc()
            return False


    # Warm up: a kept-alive connection on the I/O thread (and one on a loop left open).
    assert model.invoke("warm-up sync").text.endswith("warm-up sync")
    kept = asyncio.new_event_loop()
    assert kept.run_until_complete(model.ainvoke("warm-up async")).text.endswith("async")
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            sys.exit(0 if checked() else 1)  # a normal exit: atexit handlers, finalisers
        children.append(pid)
    ok = checked()
    for pid in children:
        ok = os.waitpid(pid, 0)[1] == 0 and ok
    # The children's exits left the parent's connections alone.
    ok = model.invoke("parent after").text.endswith("parent after") and ok
    print("RESULT", json.dumps({"parent": os.getpid(), "children": children}))
    sys.exit(0 if ok else 1)
"""


@pytest.mark.parametrize(
    ("stream", "how"), [(False, "sync"), (True, "sync"), (False, "async"), (True, "async")]
)
def test_forked_children_get_their_own_answers(tmp_path: Path, stream: bool, how: str) -> None:
    """Defect: a forked child reused the parent's session and its kept-alive connection.

    Parent and children then read each other's replies on the shared socket (wrong answers,
    or ``Invalid status``). Each process must get its own answers over its own connections.
    """
    with Emulator(stream=stream) as emulator:
        found = result_of(run_python(FORK_SCRIPT, emulator.base_url, how, cwd=tmp_path))
        ports = ports_by_prompt(emulator)
    by_pid: dict[int, set[int]] = defaultdict(set)
    for prompt, seen in ports.items():
        if prompt.startswith("pid "):
            by_pid[int(prompt.split()[1])] |= seen
    parent, children = found["parent"], found["children"]
    assert set(by_pid) == {parent, *children}
    by_pid[parent] |= ports["warm-up sync"] | ports["warm-up async"] | ports["parent after"]
    for child in children:
        assert not by_pid[child] & by_pid[parent], f"child {child} used the parent's connection"
        for other in children:
            if other != child:
                assert not by_pid[child] & by_pid[other], "two children shared a connection"


# --- 2. sync streams are not capped by a thread pool -----------------------------------------

PARALLEL_SCRIPT = """
    import json, sys, threading, time
    from langchain_chatgptes import ChatChatGptEs

    base_url, how = sys.argv[1:]
    model = ChatChatGptEs(base_url=base_url, timeout=0.5, max_retries=0)
    prompts = [f"p{i}" for i in range(8)]
    started = time.monotonic()
    if how == "batch":
        texts = [r.text for r in model.batch(prompts, config={"max_concurrency": 8})]
    else:
        texts = [""] * len(prompts)

        def ask(i):
            try:
                texts[i] = model.invoke(prompts[i]).text
            except Exception as exc:
                texts[i] = repr(exc)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.monotonic() - started
    print("RESULT", json.dumps({"texts": texts, "elapsed": elapsed}))
"""


@pytest.mark.parametrize("how", ["batch", "threads"])
def test_sync_streams_are_not_capped_by_a_thread_pool(tmp_path: Path, how: str) -> None:
    """Defect: sync streams ran on curl_cffi's thread pool (min(32, cpus + 4) workers).

    With more streams than workers the rest waited for a free worker and hit their time
    limit before sending anything. Here each answer takes ~1.6 s in all but every chunk
    comes within the 0.5 s limit: all 8 at once must complete, side by side.
    """

    def slow_answer(request: ChatRequest) -> str:
        return request.message.split()[-1] + " a b c d e f g h"  # 12 events, 0.15 s apart

    with Emulator(stream=True, chunk_delay=0.15, responder=slow_answer) as emulator:
        found = result_of(run_python(PARALLEL_SCRIPT, emulator.base_url, how, cwd=tmp_path))
    assert found["texts"] == [f"p{i} a b c d e f g h" for i in range(8)]
    assert found["elapsed"] < 5.0  # side by side (one after another: over 13 s)


# --- 3. nothing left behind by calls that timed out ------------------------------------------

HANG_SCRIPT = """
    import json, os, sys, threading, time
    from pathlib import Path
    from langchain_chatgptes import ChatChatGptEs, RequestTimeoutError

    base_url, recovered = sys.argv[1:]
    model = ChatChatGptEs(base_url=base_url, timeout=0.1, max_retries=0)
    gave_up = {}


    def call(i):
        prompt = f"hang {i}"
        try:
            if i % 2:
                model.invoke(prompt)
            else:
                for _ in model.stream(prompt):
                    pass
        except RequestTimeoutError:
            gave_up[prompt] = time.time()
        else:
            raise AssertionError(f"{prompt!r} was answered")


    def fds():
        return len(os.listdir("/proc/self/fd"))


    call(0)
    threads_after_first, fds_after_first = threading.active_count(), fds()
    for i in range(1, 60):
        call(i)
    threads_after_all, fds_after_all = threading.active_count(), fds()
    Path(recovered).touch()  # the site answers again
    started = time.monotonic()
    text = model.invoke("after recovery").text
    elapsed = time.monotonic() - started
    print("RESULT", json.dumps({
        "threads_after_first": threads_after_first,
        "threads_after_all": threads_after_all,
        "fds_after_first": fds_after_first,
        "fds_after_all": fds_after_all,
        "gave_up": gave_up,
        "text": text,
        "elapsed": elapsed,
    }))
"""


def test_timed_out_calls_leave_nothing_behind(tmp_path: Path) -> None:
    """Defect: a sync call that timed out left its transfer running (a thread per stream
    blocked on the silent reply, or a request queued behind others and sent later).

    60 calls to a silent site all time out; no thread is left per call, no request reaches
    the site after its caller gave up, and once the site answers again the next call does
    at once (nothing queued in front of it).
    """
    recovered = tmp_path / "recovered"

    def silent_until_recovered(request: ChatRequest) -> Reply | str:
        return EchoResponder()(request) if recovered.exists() else Reply.hang(30)

    with Emulator(stream=True, responder=silent_until_recovered) as emulator:
        found = result_of(run_python(HANG_SCRIPT, emulator.base_url, str(recovered), cwd=tmp_path))
        chat = emulator.chat_requests()
    assert len(found["gave_up"]) == 60
    assert found["threads_after_all"] <= found["threads_after_first"] + 1
    assert found["fds_after_all"] <= found["fds_after_first"] + 5  # no connection held open
    assert found["text"].endswith("You wrote: after recovery")
    assert found["elapsed"] < 1.0
    hung = [r for r in chat if "User input: hang " in r.form["message"]]
    prompts = [r.form["message"].rpartition("User input: ")[2] for r in hung]
    assert len(prompts) == len(set(prompts)), "a call sent its request twice"
    late = [p for r, p in zip(hung, prompts, strict=True) if r.time > found["gave_up"][p]]
    assert not late, f"requests that reached the site after their caller gave up: {late}"


# --- 4. descriptors --------------------------------------------------------------------------

FD_SCRIPT = """
    import asyncio, json, os, sys
    from langchain_chatgptes import ChatChatGptEs

    base_url, how = sys.argv[1:]
    model = ChatChatGptEs(base_url=base_url, timeout=10, max_retries=0)


    def fds():
        return len(os.listdir("/proc/self/fd"))


    def check(text, prompt):
        assert text.endswith(f"wrote: {prompt}"), (prompt, text)


    def once(i):
        prompt = f"{how} {i}"
        if how == "asyncio.run":
            check(asyncio.run(model.ainvoke(prompt)).text, prompt)
        else:
            loop = asyncio.new_event_loop()
            try:
                check(loop.run_until_complete(model.ainvoke(prompt)).text, prompt)
            finally:
                loop.close()


    async def one_loop():
        counts = []
        for i in range(300):
            prompt = f"{how} {i}"
            check((await model.ainvoke(prompt)).text, prompt)
            if i == 19:
                counts.append(fds())
        return counts + [fds()]


    if how == "one loop":
        baseline, final = asyncio.run(one_loop())
    else:
        for i in range(20):
            once(i)
        baseline = fds()
        for i in range(20, 300):
            once(i)
        final = fds()
    check(model.invoke("sync after").text, "sync after")
    print("RESULT", json.dumps({"baseline": baseline, "final": final}))
"""


@pytest.mark.parametrize("how", ["asyncio.run", "closed loop", "one loop"])
def test_event_loops_leave_no_descriptors(emulator: Emulator, tmp_path: Path, how: str) -> None:
    """Defect: each ``asyncio.run`` leaked two descriptors (the session of its loop was
    never closed: its curl multi handle and connection stayed open).

    300 calls, each on its own loop (``asyncio.run``, or a loop closed without finalising
    its async generators) or all on one loop, keep the descriptor count flat; a sync call
    still answers afterwards.
    """
    found = result_of(run_python(FD_SCRIPT, emulator.base_url, how, cwd=tmp_path))
    assert found["final"] <= found["baseline"] + 5, found


# --- 5. copies and pickling ------------------------------------------------------------------

COPY_SCRIPT = """
import asyncio, copy, json, multiprocessing, os, pickle, sys

from curl_cffi.requests import AsyncSession, Session

from langchain_chatgptes import ChatChatGptEs
from langchain_chatgptes._site_cache import SiteCache


def ask(model):
    prompt = f"spawned {os.getpid()}"
    return prompt, model.invoke(prompt).text


def check(model, loop, name):
    for way in ("sync", "async"):
        prompt = f"{name} {way}"
        if way == "sync":
            reply = model.invoke(prompt)
        else:
            reply = loop.run_until_complete(model.ainvoke(prompt))
        assert reply.text.endswith(f"wrote: {prompt}"), (prompt, reply.text)


def main(base_url):
    loop = asyncio.new_event_loop()  # left open: the async session stays alive
    model = ChatChatGptEs(base_url=base_url, timeout=10, max_retries=0)
    check(model, loop, "original")  # warm: sessions open on the I/O thread and on the loop
    check(pickle.loads(pickle.dumps(model)), loop, "pickled")
    check(copy.deepcopy(model), loop, "deepcopy")
    check(copy.copy(model), loop, "copy")
    check(model.model_copy(), loop, "model_copy")
    check(model.model_copy(deep=True), loop, "model_copy deep")
    check(model, loop, "original again")  # the copies left the original's sessions alone

    session, async_session, cache = Session(), AsyncSession(), SiteCache()
    own = ChatChatGptEs(
        base_url=base_url,
        timeout=10,
        http_client=session,
        http_async_client=async_session,
        site_cache=cache,
    )
    check(own, loop, "own")
    for duplicate in (copy.deepcopy(own), own.model_copy(deep=True), own.model_copy()):
        assert duplicate.http_client is session
        assert duplicate.http_async_client is async_session
        assert duplicate.site_cache is cache
        check(duplicate, loop, "own copy")
    restored = pickle.loads(pickle.dumps(own))
    assert restored.http_client is None
    assert restored.http_async_client is None
    assert restored.site_cache is None
    check(restored, loop, "own pickled")

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        spawned = pool.map(ask, [model, model])
    for prompt, text in spawned:
        assert text.endswith(f"wrote: {prompt}"), (prompt, text)
    loop.run_until_complete(model.aclose())
    loop.run_until_complete(async_session.close())
    loop.close()
    session.close()
    print("RESULT", json.dumps({"spawned": [prompt for prompt, _ in spawned]}))


if __name__ == "__main__":
    main(sys.argv[1])
"""


def test_copies_and_pickles_start_fresh(emulator: Emulator, tmp_path: Path) -> None:
    """Defect: a warmed-up model could not be deep-copied or pickled (its sessions and
    locks went with it), or a copy shared the original's sessions.

    Copies made any way, and models unpickled here or in ``spawn`` workers, answer sync and
    async calls over connections of their own; the user's session and site cache are
    shared by copies and left out of pickles.
    """
    script = tmp_path / "copies.py"  # a file, so that spawned workers can import ``ask``
    script.write_text(COPY_SCRIPT)
    found = result_of(run_python(script, emulator.base_url, cwd=tmp_path))
    ports = ports_by_prompt(emulator)
    assert all(ports[prompt] for prompt in found["spawned"])
    original = ports["original sync"] | ports["original async"]
    assert ports["original again sync"] | ports["original again async"] <= original
    for name in ("pickled", "deepcopy", "copy", "model_copy", "model_copy deep"):
        for way in ("sync", "async"):
            assert ports[f"{name} {way}"], f"{name} {way} never reached the site"
            assert not ports[f"{name} {way}"] & original, f"{name} {way} used the original's"
    # Copies went through the user's async session (its kept-alive connection); the
    # unpickled model, without it, through one of its own.
    assert ports["own copy async"] <= ports["own async"]
    assert ports["own pickled async"]
    assert not ports["own pickled async"] & ports["own async"]
