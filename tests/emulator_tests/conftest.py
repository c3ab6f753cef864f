"""Fixtures for the emulator's own tests: a running emulator and a tiny raw HTTP client.

The client is ``http.client`` on purpose: no redirects followed, no exceptions for 4xx, and
bytes exactly as sent, so the tests see the emulator's wire format and nothing else.
"""

from __future__ import annotations

import http.client
import os
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from langchain_chatgptes.emulator import Emulator
from langchain_chatgptes.emulator._plugin import ACTION, AJAX_PATH

T0 = 1_800_000_000.0  # a fixed clock: nonce ticks are then known in advance
ROOT = Path(__file__).resolve().parents[2]
CLI = "langchain_chatgptes.emulator"
CTRL_C = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    f"from {CLI}.__main__ import main; main(sys.argv[1:])"
)
"""The command line with Python's own Ctrl-C handler, even where SIGINT came in ignored."""


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(
            method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body,
            dict(headers or {}),
        )
        resp = conn.getresponse()
        return Answer(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def chat_fields(emu: Emulator, message: str = "Hola", **extra: str) -> dict[str, str]:
    """The fields a browser posts, with a fresh client id unless one is given."""
    return {
        "_wpnonce": emu.current_nonce(),
        "post_id": emu.post_id,
        "url": emu.base_url,
        "action": ACTION,
        "message": message,
        "bot_id": "0",
        "chatbot_identity": "shortcode",
        "wpaicg_chat_client_id": uuid.uuid4().hex[:10],
        "wpaicg_chat_history": "[]",
        **extra,
    }


def post(
    emu: Emulator, fields: Mapping[str, str], headers: Mapping[str, str] | None = None
) -> Answer:
    body = urlencode(fields).encode()
    all_headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
        **(headers or {}),
    }
    return request(emu.base_url + AJAX_PATH, "POST", body, all_headers)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(clock=lambda: T0) as emulator:
        yield emulator


@contextmanager
def emulator_cli(*args: str, ctrl_c: bool = False) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run the emulator's command line on a free port; yield the process and its base URL.

    The process never outlives the test: whatever happens (a failed assertion included), it
    is killed and reaped on the way out. ``ctrl_c``: with Python's SIGINT handler installed.
    """
    command = ["-c", CTRL_C] if ctrl_c else ["-m", CLI]
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter and package)
        [sys.executable, *command, "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the emulator did not say where it listens within 30 s"
        line = proc.stdout.readline()
        assert "listening on" in line, line
        yield proc, line.split()[4]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def stop(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGTERM) -> int:
    """Stop the command line as a service manager (or a shell's ``kill``) does; its status."""
    proc.send_signal(sig)
    return proc.wait(timeout=10)
