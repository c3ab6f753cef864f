"""Session lifecycle: one curl_cffi session per model and event loop, and the I/O thread.

An ``AsyncSession`` is bound to the loop that first uses it, so a model keeps one per loop
(:class:`Runtime`). Each is closed **on its loop when the loop shuts down**: a small async
generator, started on the loop with the session, closes it when ``asyncio.run()`` (or any
runner calling ``loop.shutdown_asyncgens()``) finalises it. A loop closed without that is
noticed at the next call and its session's handles are freed there, since nothing can run
on a closed loop any more.

Sync calls run the same async code on :class:`IOThread`, one daemon thread per process
with its own loop: sync streams then have real time limits and stop at once when given
up, no thread pool caps them, and they work where a loop already runs (Jupyter).

After ``os.fork()`` the child drops every session and the I/O thread it inherited, without
closing them (that would shut the parent's connections), and starts its own.
"""

from __future__ import annotations

import _thread
import asyncio
import atexit
import logging
import os
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from curl_cffi import CurlOpt
from curl_cffi.requests import AsyncSession, Response, Session

from langchain_chatgptes._http import Adapter, CurlAdapter, ThreadedSessionAdapter
from langchain_chatgptes._policy import StartGate

T = TypeVar("T")
logger = logging.getLogger("langchain_chatgptes")

_ORPHANS: list[Any] = []
"""What a forked child inherited and must neither use nor close (kept from the GC)."""

IO_MAX_CLIENTS = 1024
"""Transfers at once on the I/O thread: sync callers are bounded by their own threads."""

HTTP_ONLY = {CurlOpt.PROTOCOLS_STR: "http,https", CurlOpt.REDIR_PROTOCOLS_STR: "http,https"}
"""curl speaks nothing but HTTP(S) on the package's sessions (behind the trust rule, which
refuses other schemes before curl sees them; your own sessions rely on the rule)."""


@dataclass(frozen=True)
class SessionOptions:
    """How the package's own sessions are made.

    Attributes:
        impersonate: curl_cffi browser target.
        proxy: Proxy URL, or ``None``.
        verify: Verify TLS certificates.
        max_concurrency: Transfers at once per event loop (the session's handle pool).
    """

    impersonate: str = "chrome"
    proxy: str | None = field(default=None, repr=False)  # may hold credentials
    verify: bool = True
    max_concurrency: int = 16


@dataclass(eq=False)
class _LoopState:
    """What a runtime keeps for one event loop."""

    gate: StartGate = field(default_factory=StartGate)
    session: AsyncSession[Response] | None = None
    keeper: AsyncGenerator[None, None] | None = None


async def _keep(state: _LoopState) -> AsyncGenerator[None, None]:
    """Suspended for the loop's lifetime; closes the state's session when finalised."""
    try:
        yield
    finally:
        session, state.session = state.session, None
        if session is not None:
            await session.close()


def _free_on_closed_loop(state: _LoopState) -> None:
    """Free the curl handles of a session whose loop closed before it could be closed.

    ``AsyncSession.close()`` needs its (closed) loop, so this releases what it would:
    every easy handle and the multi handle, whose sockets and wake-up descriptor go with
    them. It reaches into curl_cffi; if that changes, the handles are left to the GC.
    """
    session, state.session = state.session, None
    if session is not None:
        try:
            _free_handles(session)
        except Exception as exc:  # curl_cffi's internals changed: say so, leave it to the GC
            _warn_internals_changed(exc)
    keeper, state.keeper = state.keeper, None
    if keeper is not None:
        with suppress(StopIteration):
            keeper.aclose().send(None)  # no session left: it ends without awaiting


_internals_warned = False


def _warn_internals_changed(exc: Exception) -> None:
    """Log once that curl_cffi's internals are not what this version knows."""
    global _internals_warned
    if _internals_warned:
        return
    _internals_warned = True
    import curl_cffi

    logger.warning(
        "curl_cffi %s changed the internals langchain-chatgptes uses to free the sessions "
        "of event loops that closed without closing them (%s: %s): their connections are "
        "left to the garbage collector. Everything else works; please report it, or use a "
        "curl_cffi version in langchain-chatgptes' tested range.",
        getattr(curl_cffi, "__version__", "?"),
        type(exc).__name__,
        exc,
    )


def _free_handles(session: Any) -> None:
    """Release a session's easy handles and multi handle without its (closed) loop."""
    from curl_cffi._wrapper import lib  # type: ignore[import-not-found]

    acurl = session._acurl
    handles = list(acurl._curl2curl.values()) if acurl is not None else []
    while not session.pool.empty():
        handle = session.pool.get_nowait()
        if handle is not None:
            handles.append(handle)
    if acurl is not None and acurl._curlm is not None:
        for handle in handles:
            if handle._curl is not None:
                lib.curl_multi_remove_handle(acurl._curlm, handle._curl)
        lib.curl_multi_cleanup(acurl._curlm)
        acurl._curlm = None
        checker: Any = acurl._timeout_checker
        checker._log_destroy_pending = False  # its loop is gone: no warning at GC
    for handle in handles:
        handle.close()
    session._closed = True


class Runtime:
    """A model's sessions, one per event loop; never pickled or copied.

    Args:
        options: How to make the package's own sessions.
        async_client: The user's session for async calls (used as is, never closed).
        io_client: The user's session for sync calls: an ``AsyncSession`` (bound to the
            I/O thread's loop on first use) or a sync ``Session``; never closed.
    """

    def __init__(
        self,
        options: SessionOptions,
        async_client: AsyncSession[Response] | None = None,
        io_client: AsyncSession[Response] | Session[Response] | None = None,
    ) -> None:
        """Create a runtime; nothing is opened until a call needs it."""
        self.options = options
        self.key: tuple[Any, ...] = ()  # what the owner built it from (to see changes)
        self._async_client = async_client
        self._io_client = io_client
        self._loops: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __del__(self) -> None:
        # Sessions of loops that closed without finalising them: free them now, not in
        # a finaliser that would try to schedule work on the closed loop.
        for loop, state in list(getattr(self, "_loops", {}).items()):
            if loop.is_closed():
                _free_on_closed_loop(state)

    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        if self._pid != os.getpid():  # a forked child: drop, never close, the parent's
            _ORPHANS.append(self._loops)  # (its lock too: another thread may have held it)
            self._lock, self._loops, self._pid = threading.Lock(), {}, os.getpid()
        with self._lock:
            for closed in [other for other in self._loops if other.is_closed()]:
                _free_on_closed_loop(self._loops.pop(closed))
            state = self._loops.get(loop)
            if state is None:
                state = self._loops[loop] = _LoopState()
            return state

    @property
    def loop_count(self) -> int:
        """How many event loops this runtime holds state for."""
        return len(self._loops)

    async def adapter(self, *, on_io_thread: bool = False) -> Adapter:
        """The adapter for the running loop, opening this loop's session on first use."""
        state = self._state(asyncio.get_running_loop())
        user = self._io_client if on_io_thread else self._async_client
        if isinstance(user, Session):
            return ThreadedSessionAdapter(user)
        if user is not None:
            return CurlAdapter(user)
        if state.session is None:
            options = self.options
            state.session = AsyncSession(
                impersonate=options.impersonate,
                proxy=options.proxy,
                verify=options.verify,
                max_clients=IO_MAX_CLIENTS if on_io_thread else options.max_concurrency,
                curl_options=HTTP_ONLY,
            )
            if state.keeper is None:
                state.keeper = _keep(state)
                await state.keeper.asend(None)
        return CurlAdapter(state.session, proxy=self.options.proxy)

    def gate(self) -> StartGate:
        """The running loop's start gate (calls start one per loop iteration)."""
        return self._state(asyncio.get_running_loop()).gate

    async def aclose(self) -> None:
        """Close the running loop's session (the next call opens a new one)."""
        with self._lock:
            state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None and state.keeper is not None:
            await state.keeper.aclose()

    def close(self) -> None:
        """Close the session on the I/O thread (sync calls), if one was opened."""
        thread = IOThread.current()
        if thread is not None and self._state_exists(thread.loop):
            thread.run(self.aclose())

    def _state_exists(self, loop: asyncio.AbstractEventLoop) -> bool:
        with self._lock:
            return loop in self._loops


class IOThread:
    """A daemon thread running an event loop for the sync calls of every model."""

    _current: IOThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        """Start the thread and its loop."""
        self.loop = asyncio.new_event_loop()
        self._background: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._run, name="chatgptes-io", daemon=True)
        self._thread.start()

    @classmethod
    def get(cls) -> IOThread:
        """This process's I/O thread, started on first use."""
        with cls._lock:
            if cls._current is None:
                cls._current = cls()
            return cls._current

    @classmethod
    def current(cls) -> IOThread | None:
        """This process's I/O thread if it was started."""
        return cls._current

    @classmethod
    def _forget_after_fork(cls) -> None:
        # The child has no such thread; its loop (and sessions on it) stay untouched.
        _ORPHANS.append(cls._current)
        cls._current = None
        cls._lock = threading.Lock()

    @classmethod
    def _stop_at_exit(cls) -> None:
        thread = cls._current
        if thread is not None:
            cls._current = None
            thread.stop()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # As asyncio.run() ends a loop: cancel what runs, finalise async generators
            # (which closes the sessions opened here), then close.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (closing its sessions) and wait for the thread."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the I/O loop and return its result (or raise its error).

        If the wait is interrupted (``KeyboardInterrupt``), the coroutine is cancelled. From
        the I/O thread itself it cannot wait: the coroutine is then only scheduled.
        """
        if threading.current_thread() is self._thread:
            task = self.loop.create_task(coroutine)
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return None
        if self.loop.is_closed():
            coroutine.close()
            return None
        # A bare lock rather than run_coroutine_threadsafe's future: the caller wakes up
        # about twice as fast, which is much of what a sync call costs over an async one.
        finished = _thread.allocate_lock()
        finished.acquire()
        tasks: list[asyncio.Task[Any]] = []

        def start() -> None:
            task = self.loop.create_task(coroutine)
            tasks.append(task)
            task.add_done_callback(lambda _: finished.release())

        self.loop.call_soon_threadsafe(start)
        try:
            while not finished.acquire(timeout=1.0):
                if not self._thread.is_alive():
                    raise RuntimeError("The I/O thread stopped during the call.")
        except BaseException:  # e.g. KeyboardInterrupt: the call stops on the loop too
            self.loop.call_soon_threadsafe(lambda: tasks and tasks[0].cancel())
            raise
        return tasks[0].result()

    def iterate(self, factory: Callable[[], AsyncIterator[T]]) -> Generator[T, None, None]:
        """Iterate, from the calling thread, an async iterator that runs on the I/O loop.

        Items cross over as they come. When the caller stops early (``close()``, an
        exception, ``KeyboardInterrupt``), the iterator is cancelled on the loop and this
        waits until it has cleaned up, so no transfer outlives the call.
        """
        channel: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

        async def pump() -> None:
            try:
                async for item in factory():
                    channel.put(("item", item))
                channel.put(("end", None))
            except BaseException as exc:  # handed to the caller's thread
                channel.put(("error", exc))
                if not isinstance(exc, Exception):
                    raise
            finally:
                channel.put(("closed", None))

        future = asyncio.run_coroutine_threadsafe(pump(), self.loop)
        finished = False
        try:
            while True:
                kind, value = self._take(channel)
                if kind == "item":
                    yield value
                elif kind == "end":
                    finished = True
                    return
                elif kind == "error":
                    finished = True
                    if isinstance(value, asyncio.CancelledError):
                        raise RuntimeError("The I/O thread stopped during the call.") from value
                    raise value
        finally:
            if not finished:
                future.cancel()  # cancels the task on the loop
            while self._take(channel)[0] != "closed":
                pass

    def _take(self, channel: queue.SimpleQueue[tuple[str, Any]]) -> tuple[str, Any]:
        while True:
            try:
                return channel.get(timeout=1.0)
            except queue.Empty:
                if not self._thread.is_alive():
                    return ("closed", None)


atexit.register(IOThread._stop_at_exit)
os.register_at_fork(after_in_child=IOThread._forget_after_fork)
