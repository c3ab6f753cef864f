"""Fixtures for the emulator's own tests: a running emulator and a tiny raw HTTP client.

The client is ``http.client`` on purpose: no redirects followed, no exceptions for 4xx, and
bytes exactly as sent, so the tests see the emulator's wire format and nothing else.
"""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import pytest

from langchain_chatgptes.emulator import Emulator
from langchain_chatgptes.emulator._plugin import ACTION, AJAX_PATH

T0 = 1_800_000_000.0  # a fixed clock: nonce ticks are then known in advance


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
