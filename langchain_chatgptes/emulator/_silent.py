"""A site that never answers: for tests of timeouts, failover and refused destinations."""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class SilentSite:
    """A TCP port on 127.0.0.1 that accepts connections, counts them and never answers.

    ``hold=True``: each connection is kept open, silent, until :meth:`close` (a site that
    hangs before its headers, e.g. the first site of a failover test). ``hold=False``: each is
    closed at once (an internal service's stand-in, or a site that drops every connection).

    Attributes:
        port: The port it listens on.
        connections: How many connections it accepted.
    """

    def __init__(self, *, hold: bool = True) -> None:
        """Listen on a free port and start accepting in a daemon thread."""
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(128)
        self._socket.settimeout(0.05)  # how soon close() is noticed
        self.port: int = self._socket.getsockname()[1]
        self.connections = 0
        self._hold = hold
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-site", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The site's address, for ``base_url``."""
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self._hold:
                self._held.append(connection)
            else:
                connection.close()

    def close(self) -> None:
        """Stop accepting and close every connection it held (the clients then see a reset)."""
        self._stop.set()
        self._thread.join()
        for connection in self._held:
            connection.close()
        self._socket.close()

    def __enter__(self) -> SilentSite:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
