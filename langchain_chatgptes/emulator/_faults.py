"""Connection-level misbehaviour shared by the plugins: :meth:`Reply.reset`, ``hang``, ``drip``."""

from __future__ import annotations

import asyncio
import threading
from typing import NoReturn

from aiohttp import web

from langchain_chatgptes.emulator.responders import Reply

FAULT_KINDS = ("reset", "hang", "drip")


def pop_fault(lock: threading.Lock, queue: list[Reply]) -> Reply | None:
    """The next staged fault of a step's queue (``raw`` or a fault kind), or None."""
    with lock:
        reply = queue.pop(0) if queue else None
    if reply is not None and reply.kind != "raw" and reply.kind not in FAULT_KINDS:
        raise ValueError(f"a fault must be raw, reset, hang or drip, not {reply.kind!r}")
    return reply


def abort(request: web.Request) -> NoReturn:
    """Drop the connection without a clean end: the client sees a reset connection."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError  # aiohttp's way out of a handler whose peer is gone


async def send_fault(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Misbehave as :meth:`Reply.reset`, :meth:`Reply.hang` or :meth:`Reply.drip` say."""
    response = web.StreamResponse(headers={"Content-Type": reply.content_type})
    if reply.kind == "hang":
        await asyncio.sleep(reply.seconds)
    elif reply.kind == "reset" and reply.body:
        await response.prepare(request)
        await response.write(reply.body)
    elif reply.kind == "drip":
        await response.prepare(request)
        for start in range(0, len(reply.body), 8):
            await asyncio.sleep(reply.seconds)
            await response.write(reply.body[start : start + 8])
        await response.write_eof()
        return response
    abort(request)


def raw_response(reply: Reply) -> web.Response:
    """A :meth:`Reply.raw` reply, verbatim."""
    headers = {**dict(reply.headers), "Content-Type": reply.content_type}
    return web.Response(status=reply.status, body=reply.body, headers=headers)
