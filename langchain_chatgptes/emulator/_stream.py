"""The one way every emulated plugin writes a streamed reply: ``echo`` + ``flush()`` per event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

if TYPE_CHECKING:
    from langchain_chatgptes.emulator._server import Emulator


class StreamWriter:
    """One streamed reply: headers sent with the first write, then one socket write per chunk.

    Shared by the three plugins, which all write this way: the response is prepared lazily
    (a handler may still add headers, or answer something else, until its first write),
    ``chunk_delay`` separates two writes, ``on_flush`` sees each chunk once it is written,
    and a client that went away is not an error: PHP goes on (``ignore_user_abort``) and
    its output is lost, so later writes are dropped unseen.

    Attributes:
        headers: The response headers; changes count until the first write.
    """

    def __init__(
        self,
        emulator: Emulator,
        request: web.Request,
        headers: Mapping[str, str],
        *,
        preamble: bytes = b"",
    ) -> None:
        """Get ready to stream to ``request``.

        Args:
            emulator: Whose ``chunk_delay`` and ``on_flush`` apply.
            request: The request being answered.
            headers: The response headers (copied; a multidict keeps repeated ones).
            preamble: Written once, as the first chunk, when the response opens.
        """
        self._emulator, self._request = emulator, request
        self.headers: CIMultiDict[str] = CIMultiDict(headers)
        self._preamble = preamble
        self._response: web.StreamResponse | None = None
        self._written = 0
        self._gone = False

    @property
    def opened(self) -> bool:
        """Whether the status line and headers are out."""
        return self._response is not None

    async def open(self) -> web.StreamResponse:
        """Send the status line and headers (and the preamble) unless already sent."""
        if self._response is None:
            self._response = web.StreamResponse(status=200, headers=self.headers)
            await self._response.prepare(self._request)
            if self._preamble:
                await self.write(self._preamble)
        return self._response

    async def write(self, chunk: bytes) -> None:
        """Write one chunk: its own socket write (TCP_NODELAY, no compression, chunked)."""
        emulator = self._emulator
        response = await self.open()
        if self._gone:
            return
        if self._written and emulator.chunk_delay:
            await asyncio.sleep(emulator.chunk_delay)
        self._written += 1
        try:
            await response.write(chunk)
        except ConnectionResetError:  # the client went away (e.g. aborted the stream)
            self._gone = True
            return
        if emulator.on_flush is not None:
            emulator.on_flush(chunk)

    async def finish(self) -> web.StreamResponse:
        """End the response cleanly (PHP exits), unless the client already left."""
        response = await self.open()
        if not self._gone:
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
        return response
