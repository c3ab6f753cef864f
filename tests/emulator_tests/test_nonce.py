"""Nonce lifetime and both failure modes."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from langchain_chatgptes.emulator import Emulator
from langchain_chatgptes.emulator._plugin import AJAX_PATH, NONCE_EXPIRED_TEXT, NONCE_FAILED_MSG

from .conftest import chat_fields, post, request


def test_nonce_valid_for_current_and_previous_tick(emu: Emulator) -> None:
    nonce = emu.current_nonce()
    fields = chat_fields(emu)
    assert post(emu, fields).status == 200
    emu.advance(43200)  # next tick: a new nonce, the old one still accepted
    assert emu.current_nonce() != nonce
    assert post(emu, fields).status == 200
    emu.advance(43200)  # two ticks later: expired
    assert post(emu, fields).status == 403
    assert post(emu, chat_fields(emu)).status == 200
    assert [r.nonce_valid for r in emu.chat_requests()] == [True, True, False, True]


def test_tick_boundary() -> None:
    now = [86400.0 * 1000]  # exactly on a tick boundary: ceil() keeps the tick
    with Emulator(clock=lambda: now[0], nonce_life=10.0) as emu:
        nonce = emu.current_nonce()
        now[0] += 0.001
        assert emu.current_nonce() != nonce
        now[0] += 5.0
        assert post(emu, chat_fields(emu, _wpnonce=nonce)).status == 403


def test_wrong_and_missing_nonce_modern(emu: Emulator) -> None:
    for nonce in ("0123456789", ""):
        answer = post(emu, chat_fields(emu, _wpnonce=nonce))
        assert answer.status == 403
        assert answer.headers["Content-Type"] == "text/html; charset=UTF-8"
        assert answer.text == NONCE_EXPIRED_TEXT
        assert answer.headers["Expires"] == "Wed, 11 Jan 1984 05:00:00 GMT"


def test_modern_failure_links_back_to_same_site_referer(emu: Emulator) -> None:
    fields = chat_fields(emu, _wpnonce="bad")
    same = post(emu, fields, {"Referer": emu.base_url + "/?a=1&b=2"})
    link = f'</p><p><a href="{emu.base_url}/?a=1&#038;b=2">Please try again.</a>'
    assert same.text == NONCE_EXPIRED_TEXT + link
    assert post(emu, fields, {"Referer": "https://evil.example/"}).text == NONCE_EXPIRED_TEXT
    own_uri = post(emu, fields, {"Referer": emu.base_url + AJAX_PATH})
    assert own_uri.text == NONCE_EXPIRED_TEXT


def test_legacy_failure_is_json() -> None:
    with Emulator(nonce_failure="legacy") as emu:
        answer = post(emu, chat_fields(emu, _wpnonce="bad"))
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert answer.body == b'{"status":"error","msg":"Nonce verification failed"}'
    assert json.loads(answer.body)["msg"] == NONCE_FAILED_MSG


def test_legacy_reads_query_modern_reads_body_only() -> None:
    with Emulator(nonce_failure="legacy") as emu:
        query = urlencode(chat_fields(emu, message="hi"))
        legacy = request(f"{emu.base_url}{AJAX_PATH}?{query}")
        emu.nonce_failure = "modern"
        modern = request(f"{emu.base_url}{AJAX_PATH}?{query}")
    assert json.loads(legacy.body)["data"].endswith("You wrote: hi")
    # The nonce and action may come from the query, but the message must be in the body.
    assert modern.body == b'{"status":"error","msg":"It appears that nothing was inputted."}'
