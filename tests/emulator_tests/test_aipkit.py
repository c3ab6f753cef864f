"""The AIPKit mode (AI Power / AI Puffer >= 2.3) on the wire, path by path.

Expected strings are written out from ``shared/reference/wp-chat-plugins.md`` Part A and C.2,
not imported from the emulator, so a typo on either side shows.
"""

from __future__ import annotations

import hmac
import html
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest

from langchain_chatgptes.emulator import (
    AipkitOptions,
    ChatRequest,
    Emulator,
    Reply,
    ScriptedResponder,
)

from .conftest import T0, Answer, emulator_cli, request, stop

AJAX = "/wp-admin/admin-ajax.php"
PREAMBLE = ":" + " " * 4096 + "\n\n"
ERR_ID = f"err-{int(T0)}"
DONE = ("done", None, {"finished": True})
NONCE_FAILURE = (
    b'{"success":false,"data":{"message":"Your session has expired or the request is invalid. '
    b'Please refresh the page and try again.","code":"nonce_failure_cache_sse"}}'
)
EMPTY = (
    b'{"success":false,"data":{"message":"Data to cache (message or image) cannot be empty.",'
    b'"code":"empty_data_to_cache"}}'
)
EMBED = (
    b'{"success":false,"data":{"message":"Embed feature is not available with your current '
    b'plan.","code":"embed_not_available"}}'
)
CORS_DENIED = (
    b'{"success":false,"data":{"message":"This domain is not permitted to access the chatbot.",'
    b'"code":"cors_denied"}}'
)
SECURITY = "Security check failed. Please refresh the page and try again."
KEY = re.compile(r"aipkit_sse_[A-Za-z0-9]{32}")
MESSAGE_ID = re.compile(r"aipkit-msg-[0-9a-f]{14}\.\d{8}")
Event = tuple[str | None, str | None, Any]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(plugin="aipkit", clock=lambda: T0) as emulator:
        yield emulator


class Capture:
    def __init__(self, answer: Reply | str = "ok") -> None:
        self.seen: list[ChatRequest] = []
        self.answer = answer

    def __call__(self, chat: ChatRequest) -> Reply | str:
        self.seen.append(chat)
        return self.answer


# --- a minimal, independent client ----------------------------------------------------------


def post(
    emu: Emulator, fields: Mapping[str, str], headers: Mapping[str, str] | None = None
) -> Answer:
    body = urlencode(fields).encode()
    content_type = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    return request(emu.base_url + AJAX, "POST", body, {**content_type, **(headers or {})})


def post_multipart(emu: Emulator, fields: Mapping[str, str]) -> Answer:
    boundary = "----WebKitFormBoundary" + uuid.uuid4().hex[:16]
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        )
        + f"--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return request(emu.base_url + AJAX, "POST", body, headers)


def cache(emu: Emulator, message: str = "Hola", **extra: str) -> Answer:
    fields = {
        "action": "aipkit_cache_sse_message",
        "_ajax_nonce": emu.current_nonce(),
        "message": message,
        "bot_id": "123",
        "user_client_message_id": f"aipkit-client-msg-123-{int(T0 * 1000)}-ab12c",
        **extra,
    }
    return post(emu, {k: v for k, v in fields.items() if v is not None})


def cache_key(emu: Emulator, message: str = "Hola") -> str:
    answer = cache(emu, message)
    assert answer.status == 200, answer.body
    return str(json.loads(answer.body)["data"]["cache_key"])


def stream(
    emu: Emulator, key: str, headers: Mapping[str, str] | None = None, **params: str
) -> Answer:
    query = {
        "action": "aipkit_frontend_chat_stream",
        "cache_key": key,
        "bot_id": "123",
        "session_id": "5f0c2f9e-1d2b-4c3a-9e8f-0a1b2c3d4e5f",
        "conversation_uuid": "9a8b7c6d-1111-4222-8333-444455556666",
        "_ts": str(int(T0 * 1000)),
        "_ajax_nonce": emu.current_nonce(),
        **params,
    }
    return request(f"{emu.base_url}{AJAX}?{urlencode(query)}", headers=headers)


def turn(
    emu: Emulator,
    message: str = "Hola",
    headers: Mapping[str, str] | None = None,
    **params: str,
) -> list[Event]:
    return events(stream(emu, cache_key(emu, message), headers, **params))


def blocks(answer: Answer) -> list[str]:
    assert answer.status == 200
    text = answer.text
    assert text.startswith(PREAMBLE)
    parts = text[len(PREAMBLE) :].split("\n\n")
    assert parts[-1] == ""
    return parts[:-1]


def events(answer: Answer) -> list[Event]:
    """``(event name or None, id or None, decoded data)`` per block."""
    out: list[Event] = []
    for block in blocks(answer):
        name = event_id = data = None
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            else:
                assert field == "data", block
                data = json.loads(value)
        out.append((name, event_id, data))
    return out


def error_events(message: str, **extra: Any) -> list[Event]:
    return [("error", ERR_ID, {"error": message, **extra}), DONE]


def answer_text(evs: list[Event]) -> str:
    return "".join(data["delta"] for name, _, data in evs if name is None)


def data_configs(page: str) -> list[tuple[str, dict[str, Any]]]:
    """``(tag id, data-config)`` via a real HTML parser (it decodes the entities)."""
    found: list[tuple[str, dict[str, Any]]] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if values.get("data-config") is not None:
                found.append((values.get("id") or "", json.loads(values["data-config"] or "")))

    Parser().feed(page)
    return found


# --- page (A.1, C.2 item 2) --------------------------------------------------------------------


def test_inline_page_markup_and_exact_escaping() -> None:
    name = "Ayuda <b> & 'co' \"IA\" / ñ 😀"
    with Emulator(plugin="aipkit", clock=lambda: T0, aipkit=AipkitOptions(header_name=name)) as emu:
        answer = request(emu.base_url)
        page = answer.text
        nonce = emu.current_nonce()
        port = emu.port
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html; charset=UTF-8"
    start = (
        '<div class="aipkit_chat_container aipkit-theme-light  aipkit-sidebar-state-closed   " '
        'id="aipkit_chat_container_123" data-bot-id="123" data-config=\'{&quot;botId&quot;:123,'
        f"&quot;ajaxUrl&quot;:&quot;http:\\/\\/127.0.0.1:{port}\\/wp-admin\\/admin-ajax.php&quot;,"
        f"&quot;nonce&quot;:&quot;{nonce}&quot;,&quot;postId&quot;:2173,"
    )
    assert start in page
    raw = re.search(r"data-config='([^']*)'", page)
    assert raw
    escaped = "\\u003Cb\\u003E \\u0026 \\u0027co\\u0027 \\u0022IA\\u0022 \\/ ñ 😀"
    assert f"&quot;headerName&quot;:&quot;Ayuda {escaped}&quot;" in raw[1]
    assert "<" not in raw[1] and ">" not in raw[1] and '"' not in raw[1]
    config = json.loads(html.unescape(raw[1]))
    assert config == data_configs(page)[0][1]
    assert config["headerName"] == name
    assert config["ajaxUrl"] == f"http://127.0.0.1:{port}/wp-admin/admin-ajax.php"
    assert (config["botId"], config["nonce"], config["postId"]) == (123, nonce, 2173)
    assert (config["provider"], config["theme"], config["popupEnabled"]) == (
        "OpenAI",
        "light",
        False,
    )
    assert config["requireConsentCompliance"] is False
    assert config["imageTriggers"] == "/image, /generate"
    assert config["text"]["typeMessage"] == "Type your message..."
    assert "streamEnabled" not in config and "userIp" not in config
    assert '<script id="aipkit-public-main-js-before">\n' in page
    assert 'window.aipkit_getChatNonceAction = "aipkit_get_frontend_chat_nonce";' in page
    assert re.search(
        r'<script src="http://127\.0\.0\.1:\d+/wp-content/plugins/gpt3-ai-content-generator/'
        r'dist/js/public-main\.bundle\.js\?ver=2\.4\.71" id="aipkit-public-main-js"></script>',
        page,
    )
    assert "var aipkit_chat_config_global = {" in page
    assert "wpaicg-chat-shortcode" not in page
    assert "aipkit_popup_wrapper" not in page


def test_nonce_is_the_wordpress_hmac_of_the_aipkit_action(emu: Emulator) -> None:
    tick = int(-(-T0 // 43200))
    expected = hmac.new(
        b"emulator-nonce-salt", f"{tick}|aipkit_frontend_chat_nonce|0|".encode(), "md5"
    ).hexdigest()[-12:-2]
    assert emu.current_nonce() == expected
    assert data_configs(request(emu.base_url).text)[0][1]["nonce"] == expected


def test_popup_page_puts_the_config_on_the_wrapper() -> None:
    with Emulator(plugin="aipkit", aipkit=AipkitOptions(layout="popup", bots=(7,))) as emu:
        page = request(emu.base_url + "/chat/").text
    assert re.search(
        r'<div class="aipkit_popup_wrapper aipkit-popup-theme-light aipkit-popup-standard" '
        r"id=\"aipkit_popup_wrapper_7\" data-config='\{&quot;botId&quot;:7,[^']*' "
        r'data-bot-id="7" data-icon-size="medium">',
        page,
    )
    inner = re.search(r'<div class="aipkit_chat_container aipkit_popup_content[^>]*>', page)
    assert inner
    assert 'id="aipkit_chat_container_7"' in inner[0]
    assert "data-config" not in inner[0]
    assert 'aria-hidden="true" inert' in inner[0]
    ((tag_id, config),) = data_configs(page)
    assert tag_id == "aipkit_popup_wrapper_7"
    assert config["popupEnabled"] is True
    assert config["botId"] == 7


def test_several_bots_render_once_each_in_order() -> None:
    options = AipkitOptions(bots=(9, 5, 9), layout={9: "popup"})
    with Emulator(plugin="aipkit", aipkit=options) as emu:
        page = request(emu.base_url).text
    configs = data_configs(page)
    assert [(tag, config["botId"]) for tag, config in configs] == [
        ("aipkit_popup_wrapper_9", 9),
        ("aipkit_chat_container_5", 5),
    ]
    assert page.count('id="aipkit_chat_container_9"') == 1


def test_both_variant_has_a_stale_legacy_box_that_answers_400_zero() -> None:
    with Emulator(plugin="aipkit", page_variant="both") as emu:
        page = request(emu.base_url).text
        legacy = re.search(r'data-nonce="([0-9a-f]{10})"', page)
        assert legacy
        assert page.index('<div class="wpaicg-chat-shortcode"') < page.index(
            "aipkit_chat_container"
        )
        assert len(data_configs(page)) == 1
        fields = {"action": "wpaicg_chat_shortcode_message", "_wpnonce": legacy[1], "message": "hi"}
        answer = post(emu, fields)
        assert (answer.status, answer.body) == (400, b"0")
        assert post(emu, {**fields, "action": "wpaicg_chatbox_message"}).body == b"0"
        assert [r.action for r in emu.ajax_requests()] == [
            "wpaicg_chat_shortcode_message",
            "wpaicg_chatbox_message",
        ]
        assert emu.chat_requests() == []


def test_no_chat_box_variant_prints_the_shortcode() -> None:
    with Emulator(plugin="aipkit", page_variant="no_chat_box") as emu:
        page = request(emu.base_url).text
    assert '[aipkit_chatbot id="123"]' in page
    assert "data-config" not in page
    assert "public-main.bundle.js" not in page


# --- admin-ajax router (C.2 item 3) ------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"action": ""},
        {"action": "nope"},
        {"action": "wpaicg_chat_shortcode_message"},
        {"action": "aipkit_frontend_chat_message"},  # removed in 2.4.1
    ],
)
def test_unknown_actions_are_400_zero(emu: Emulator, fields: dict[str, str]) -> None:
    answer = post(emu, {"_ajax_nonce": emu.current_nonce(), "message": "hi", **fields})
    assert (answer.status, answer.body) == (400, b"0")
    assert answer.headers["Content-Type"] == "text/html; charset=UTF-8"


def test_action_from_query_and_multipart(emu: Emulator) -> None:
    fields = {
        "_ajax_nonce": emu.current_nonce(),
        "message": "Línea 1\r\nLínea 2 😀",
        "bot_id": "123",
    }
    from_query = request(
        f"{emu.base_url}{AJAX}?action=aipkit_cache_sse_message",
        "POST",
        urlencode(fields).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert from_query.status == 200
    multipart = post_multipart(emu, {"action": "aipkit_cache_sse_message", **fields})
    assert multipart.status == 200
    capture = Capture()
    emu.responder = capture
    evs = events(stream(emu, json.loads(multipart.body)["data"]["cache_key"]))
    assert evs[-1] == DONE
    assert capture.seen[0].message == "Línea 1\r\nLínea 2 😀"


# --- nonce refresh (A.2, C.2 item 4) ------------------------------------------------------------


def test_refresh_endpoint(emu: Emulator) -> None:
    answer = post(emu, {"action": "aipkit_get_frontend_chat_nonce", "bot_id": "123"})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert answer.headers["Expires"] == "Wed, 11 Jan 1984 05:00:00 GMT"
    assert "no-cache" in answer.headers["Cache-Control"]
    assert (
        answer.body == b'{"success":true,"data":{"nonce":"' + emu.current_nonce().encode() + b'"}}'
    )
    emu.advance(43200)
    fresh = json.loads(post(emu, {"action": "aipkit_get_frontend_chat_nonce"}).body)
    assert fresh["data"]["nonce"] == emu.current_nonce()
    (first, second) = emu.refresh_requests()
    assert first.nonce_valid is None and second.nonce_valid is None
    assert emu.chat_requests() == []


@pytest.mark.parametrize("knobs", [{"nonce_refresh": False}, {"version": "2.3.40"}])
def test_sites_without_the_refresh_endpoint(knobs: dict[str, Any]) -> None:
    with Emulator(plugin="aipkit", aipkit=AipkitOptions(**knobs)) as emu:
        answer = post(emu, {"action": "aipkit_get_frontend_chat_nonce"})
        page = request(emu.base_url).text
    assert (answer.status, answer.body) == (400, b"0")
    assert "aipkit_getChatNonceAction" not in page
    assert "aipkit-public-main-js" in page


def test_nonce_lives_two_ticks(emu: Emulator) -> None:
    nonce = emu.current_nonce()
    assert cache(emu).status == 200
    emu.advance(43200)
    assert emu.current_nonce() != nonce
    assert cache(emu, _ajax_nonce=nonce).status == 200
    emu.advance(43200)
    expired = cache(emu, _ajax_nonce=nonce)
    assert (expired.status, expired.body) == (403, NONCE_FAILURE)
    assert [r.nonce_valid for r in emu.cache_requests()] == [True, True, False]


# --- cache POST (A.3.2, A.4, C.2 item 5) --------------------------------------------------------


def test_cache_success(emu: Emulator) -> None:
    answer = cache(emu)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json; charset=UTF-8"
    body = json.loads(answer.body)
    assert body["success"] is True
    assert KEY.fullmatch(body["data"]["cache_key"])
    assert (
        answer.body
        == b'{"success":true,"data":{"cache_key":"' + body["data"]["cache_key"].encode() + b'"}}'
    )
    assert cache_key(emu) != body["data"]["cache_key"]


def test_cache_errors_in_order(emu: Emulator) -> None:
    cross = {"Origin": "https://elsewhere.example"}
    fields = {
        "action": "aipkit_cache_sse_message",
        "_ajax_nonce": "bad",
        "message": "",
        "bot_id": "123",
    }
    assert (post(emu, fields, cross).status, post(emu, fields, cross).body) == (403, EMBED)
    assert post(emu, {**fields, "bot_id": "0"}, cross).body == NONCE_FAILURE  # no CORS check
    assert post(emu, fields).body == NONCE_FAILURE
    fields["_ajax_nonce"] = emu.current_nonce()
    empty = post(emu, fields)
    assert (empty.status, empty.body) == (400, EMPTY)
    assert post(emu, {**fields, "message": "\0"}).body == EMPTY  # NUL bytes are removed
    assert post(emu, {**fields, "message": " "}).status == 200  # no trimming


def test_cache_reads_the_nonce_from_the_body_only_and_sanitize_keys_it(emu: Emulator) -> None:
    nonce = emu.current_nonce()
    in_query = request(
        f"{emu.base_url}{AJAX}?_ajax_nonce={nonce}",
        "POST",
        urlencode({"action": "aipkit_cache_sse_message", "message": "x"}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (in_query.status, in_query.body) == (403, NONCE_FAILURE)
    assert cache(emu, _ajax_nonce=nonce.upper() + "!").status == 200  # sanitize_key
    get = request(
        f"{emu.base_url}{AJAX}?action=aipkit_cache_sse_message&_ajax_nonce={nonce}&message=x"
    )
    assert (get.status, get.body) == (403, NONCE_FAILURE)


def test_cache_key_is_single_use_and_case_insensitive(emu: Emulator) -> None:
    key = cache_key(emu)
    first = events(stream(emu, key.upper()))
    assert first[0][0] == "message_start"
    assert events(stream(emu, key)) == error_events("Message not found in cache.")
    assert events(stream(emu, "aipkit_sse_" + "x" * 32)) == error_events(
        "Message not found in cache."
    )
    assert events(stream(emu, "")) == error_events("Message cache key is missing.")
    assert events(stream(emu, "!!!")) == error_events("Message cache key is missing.")


def test_cache_key_is_used_up_even_when_later_checks_fail(emu: Emulator) -> None:
    key = cache_key(emu)
    assert events(stream(emu, key, bot_id="999")) == error_events("Invalid chatbot specified.")
    assert events(stream(emu, key)) == error_events("Message not found in cache.")


def test_cache_ttl_is_60_seconds_on_the_emulator_clock(emu: Emulator) -> None:
    fresh = cache_key(emu)
    emu.advance(59.9)
    assert events(stream(emu, fresh))[-1] == DONE
    old = cache_key(emu)
    emu.advance(60)  # valid while expires_at > now
    expired = [("error", f"err-{int(emu.now())}", {"error": "Cached message has expired."}), DONE]
    assert events(stream(emu, old)) == expired
    assert events(stream(emu, old)) == expired  # an expired row is not deleted


# --- stream (A.3.3, A.3.4, C.2 item 6) ----------------------------------------------------------


def test_stream_success_bytes(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(['Hola/adiós "x" \u2028 😀 fin'])
    answer = stream(emu, cache_key(emu))
    assert answer.status == 200
    expected_headers = {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-cache, no-store, must-revalidate, max-age=0, no-transform",
        "Pragma": "no-cache",
        "X-Accel-Buffering": "no",
        "Connection": "keep-alive",
    }
    for name, value in expected_headers.items():
        assert answer.headers[name] == value
    assert answer.text.startswith(
        PREAMBLE + 'event: message_start\ndata: {"message_id":"aipkit-msg-'
    )
    raw = blocks(answer)
    assert raw[-1] == 'event: done\ndata: {"finished":true}'
    deltas = raw[3:-2]  # after message_start and two status events, before openai_response_id
    assert all(block.startswith('data: {"delta":"') for block in deltas)
    joined = "".join(deltas)
    assert "\\/" in joined and "ó" in joined and "😀" in joined and "\\u2028" in joined
    assert '\\"x\\"' in joined
    evs = events(answer)
    assert MESSAGE_ID.fullmatch(evs[0][2]["message_id"])
    assert answer_text(evs) == 'Hola/adiós "x" \u2028 😀 fin'
    assert len(deltas) > 3


def test_every_answer_carries_the_responses_api_events(emu: Emulator) -> None:
    # shared/reference/real-plugins/aipkit-stream-ok.txt: the OpenAI provider (Responses API).
    emu.responder = ScriptedResponder(["Hi you"])
    raw = blocks(stream(emu, cache_key(emu)))
    response = re.fullmatch(
        r'event: openai_response_id\ndata: \{"id":"(resp_[0-9a-f]{32})"\}', raw[-2]
    )
    assert response
    status = 'event: status\ndata: {"type":"response.%s","status":"in_progress","response_id":"%s"}'
    assert raw[0].startswith("event: message_start\n")
    assert raw[1:3] == [status % ("created", response[1]), status % ("in_progress", response[1])]
    assert raw[3:-2] == ['data: {"delta":"Hi"}', 'data: {"delta":" you"}']
    assert raw[-1] == 'event: done\ndata: {"finished":true}'
    again = blocks(stream(emu, cache_key(emu)))
    assert again[1].endswith('"}') and again[1] != raw[1]  # a new response each time


def test_responses_api_events_follow_the_upstream_response(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [Reply.site_error("down"), Reply.sequence("Par", Reply.exception("cut")), "Hi"]
    )
    # An upstream refusal: no response began (aipkit-stream-upstream-500.txt).
    assert [name for name, _, _ in events(stream(emu, cache_key(emu)))] == [
        "message_start",
        "error",
    ]
    # Cut mid-answer: the response began, but never completed (aipkit-stream-upstream-cut.txt).
    assert [name for name, _, _ in events(stream(emu, cache_key(emu)))] == [
        "message_start",
        "status",
        "status",
        None,
        "error",
    ]
    emu.aipkit.responses_api = False  # another provider: neither event
    assert [name for name, _, _ in events(stream(emu, cache_key(emu)))] == [
        "message_start",
        None,
        "done",
    ]


def test_one_write_per_event(emu: Emulator) -> None:
    flushed: list[bytes] = []
    emu.on_flush = flushed.append
    emu.responder = ScriptedResponder(
        [Reply.sequence(Reply.status_event({"type": "s"}), "one two three")]
    )
    answer = stream(emu, cache_key(emu))
    assert b"".join(flushed) == answer.body
    assert flushed[0] == PREAMBLE.encode()
    assert [chunk.decode() for chunk in flushed[1:]] == [block + "\n\n" for block in blocks(answer)]


def test_chunk_delay_and_latency(emu: Emulator) -> None:
    key = cache_key(emu)
    emu.chunk_delay, emu.latency = 0.05, 0.1
    emu.responder = ScriptedResponder(["a b"])
    start = time.monotonic()
    answer = stream(emu, key)
    # latency, then preamble | start | "a" | " b" | done: four pauses
    assert time.monotonic() - start >= 0.1 + 4 * 0.05
    assert answer_text(events(answer)) == "a b"


def test_stream_nonce_failure_keeps_the_key(emu: Emulator) -> None:
    key = cache_key(emu)
    answer = stream(emu, key, _ajax_nonce="0123456789")
    assert answer.status == 200
    assert blocks(answer) == [
        f'event: error\nid: {ERR_ID}\ndata: {{"error":"{SECURITY}"}}',
        'event: done\ndata: {"finished":true}',
    ]
    assert events(stream(emu, key))[-1] == DONE
    assert [r.nonce_valid for r in emu.stream_requests()] == [False, True]


def test_old_stream_nonce_text() -> None:
    with Emulator(plugin="aipkit", clock=lambda: T0, aipkit=AipkitOptions(version="2.3.19")) as emu:
        answer = stream(emu, cache_key(emu), _ajax_nonce="bad")
    assert answer.text.startswith("event: error\n")  # no preamble before 2.3.93
    assert "Security check failed (nonce)." in answer.text
    assert answer.headers["Cache-Control"] == "no-cache, no-store, must-revalidate, max-age=0"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bot_id": "999"}, "Invalid chatbot specified."),
        ({"bot_id": ""}, "Invalid chatbot specified."),
        ({"conversation_uuid": ""}, "Conversation ID is missing."),
        ({"conversation_uuid": "!!"}, "Conversation ID is missing."),
        ({"session_id": ""}, "Session ID is missing for guest."),
    ],
)
def test_stream_validation(emu: Emulator, params: dict[str, Any], message: str) -> None:
    assert turn(emu, **params) == error_events(message)


def test_unpublished_bot_renders_but_does_not_answer() -> None:
    with Emulator(
        plugin="aipkit", clock=lambda: T0, aipkit=AipkitOptions(unpublished={123})
    ) as emu:
        assert data_configs(request(emu.base_url).text)[0][1]["botId"] == 123
        assert turn(emu) == error_events("Invalid chatbot specified.")


def test_quota(emu: Emulator) -> None:
    emu.token_limit = 0
    assert turn(emu) == error_events("Access disabled for guests.")
    emu.token_limit = 21  # one exchange of 50 + 50 characters costs 21 tokens
    emu.responder = ScriptedResponder(["y" * 50] * 5)
    assert turn(emu, "x" * 50)[-1] == DONE
    notice = {
        "type": "quota_notice",
        "message": "You have reached your quota for this period.",
        "actions": [],
    }
    limited = turn(emu, "x" * 50)
    assert limited == error_events(
        "You have reached your quota for this period.", quota_notice=notice
    )
    assert turn(emu, "x" * 50, session_id="other")[-1] == DONE  # per session_id
    emu.aipkit.version = "2.4.4"
    assert turn(emu) == error_events("You have reached your quota for this period.")


def test_moderation(emu: Emulator) -> None:
    emu.banned_words = ["foo"]
    banned = "Sorry, your message could not be sent as it contains prohibited words."
    assert turn(emu, "say FOO, now") == error_events(banned)
    assert turn(emu, "food foobar")[-1] == DONE
    emu.banned_ips = ["127.0.0.1"]
    assert turn(emu, "food") == error_events("Access from your IP address has been blocked.")
    emu.token_limit = 0  # quota comes before moderation
    assert turn(emu, "foo") == error_events("Access disabled for guests.")


# --- replies and faults (C.2 item 7) ------------------------------------------------------------


def test_provider_errors_have_no_done(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [
            Reply.site_error("Incorrect API key / provided"),
            Reply.exception("timed out"),
            Reply.text(""),
            Reply.sequence("Partial", Reply.exception("reset by peer")),
        ]
    )
    api = stream(emu, cache_key(emu))
    first, error = blocks(api)
    assert first.startswith("event: message_start\n")
    api_error = '{"error":"API Error: Incorrect API key \\/ provided"}'
    assert error == f"event: error\nid: {ERR_ID}\ndata: {api_error}"
    assert events(stream(emu, cache_key(emu)))[1:] == [
        ("error", ERR_ID, {"error": "Connection Error: timed out"})
    ]
    assert events(stream(emu, cache_key(emu)))[1:] == [
        ("error", ERR_ID, {"error": "Connection error: no data received from AI."})
    ]
    partial = events(stream(emu, cache_key(emu)))
    assert answer_text(partial) == "Partial"
    assert partial[-1] == ("error", ERR_ID, {"error": "Connection Error: reset by peer"})


def test_refusals_before_message_start(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [
            Reply.error("API key missing for OpenAI."),
            Reply.flag(
                "messageFlagged",
                "Your message was flagged by the moderation system and could not be sent.",
            ),
            Reply.token_limit(),
            Reply.checkbox(),
        ]
    )
    assert turn(emu) == error_events("API key missing for OpenAI.")
    flagged = "Your message was flagged by the moderation system and could not be sent."
    assert turn(emu) == error_events(flagged)
    quota = turn(emu)
    assert quota[0][2]["error"] == "You have reached your quota for this period."
    assert quota[0][2]["quota_notice"]["type"] == "quota_notice"
    assert answer_text(turn(emu)) == "Du musst das Kästchen anklicken!"


def test_sequence_events_are_never_text(emu: Emulator) -> None:
    cites = [{"url": "https://example.com/a", "title": "A"}]
    emu.responder = ScriptedResponder(
        [
            Reply.sequence(
                Reply.status_event({"type": "response.web_search_call.searching"}),
                "Hello ",
                Reply.aipkit_event("openai_response_id", {"id": "resp_1"}),
                Reply.warning("Response incomplete."),
                Reply.citations(cites),
                "world",
            )
        ]
    )
    evs = turn(emu, conversation_uuid="conv-seq")
    assert [name for name, _, _ in evs if name is not None] == [
        "message_start",
        "status",  # response.created: the upstream response began
        "status",  # response.in_progress
        "status",
        "openai_response_id",
        "warning",
        "citations",
        "openai_response_id",  # the plugin's own, once the answer is complete
        "done",
    ]
    assert answer_text(evs) == "Hello world"
    assert ("warning", ERR_ID, {"error": "Response incomplete."}) in evs
    assert evs[-1] == ("done", None, {"finished": True, "citations": cites})
    stored = emu.aipkit_history(123, "conv-seq", "5f0c2f9e-1d2b-4c3a-9e8f-0a1b2c3d4e5f")
    assert stored[-1] == {"role": "assistant", "content": "Hello Response incomplete.world"}


def test_sequence_rejects_misplaced_endings() -> None:
    with pytest.raises(ValueError, match="end"):
        Reply.sequence(Reply.site_error("x"), "more")
    with pytest.raises(ValueError, match="raw"):
        Reply.sequence(Reply.raw(500, "x"))


def test_stream_faults(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [Reply.raw(502, "<h1>Bad gateway</h1>"), Reply.drip("data: x\n\n", 0.01), Reply.reset()]
    )
    bad = stream(emu, cache_key(emu))
    assert (bad.status, bad.body) == (502, b"<h1>Bad gateway</h1>")
    drip = stream(emu, cache_key(emu))
    assert drip.body == b"data: x\n\n"
    with pytest.raises((ConnectionError, OSError)):
        stream(emu, cache_key(emu))


def raw_get(emu: Emulator, key: str) -> bytes:
    query = urlencode(
        {
            "action": "aipkit_frontend_chat_stream",
            "cache_key": key,
            "bot_id": "123",
            "session_id": "s",
            "conversation_uuid": "c",
            "_ajax_nonce": emu.current_nonce(),
        }
    )
    data = b""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as conn:
        conn.sendall(f"GET {AJAX}?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def test_mid_stream_reset_and_hang(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [Reply.sequence("Yo", Reply.reset()), Reply.sequence("Hi", Reply.hang(0.05))]
    )
    for text in ("Yo", "Hi"):
        data = raw_get(emu, cache_key(emu))
        assert f'data: {{"delta":"{text}"}}'.encode() in data
        assert b"event: done" not in data
        assert not data.endswith(b"0\r\n\r\n")  # no clean end of the chunked body


def test_cache_and_refresh_faults(emu: Emulator) -> None:
    emu.aipkit.cache_faults.extend(
        [Reply.raw(503, "busy", headers={"Retry-After": "3"}), Reply.reset()]
    )
    first = cache(emu)
    assert (first.status, first.body, first.headers["Retry-After"]) == (503, b"busy", "3")
    with pytest.raises((ConnectionError, OSError)):
        cache(emu)
    assert cache(emu).status == 200
    emu.aipkit.refresh_faults.append(Reply.raw(500, "oops"))
    assert post(emu, {"action": "aipkit_get_frontend_chat_nonce"}).status == 500
    assert post(emu, {"action": "aipkit_get_frontend_chat_nonce"}).status == 200
    emu.aipkit.cache_faults.append(Reply.text("not a fault"))
    assert cache(emu).status == 500  # a wrong fault is a server error


# --- history (A.5, C.2 item 8) ------------------------------------------------------------------


def test_history_per_bot_conversation_and_session() -> None:
    capture = Capture()
    with Emulator(
        plugin="aipkit", clock=lambda: T0, aipkit=AipkitOptions(bots=(123, 5)), responder=capture
    ) as emu:
        turn(emu, "one")
        turn(emu, "two", conversation_uuid="9A8B7C6D-1111-4222-8333-444455556666")  # sanitize_key
        turn(emu, "elsewhere", session_id="other")
        turn(emu, "other bot", bot_id="5")
        assert capture.seen[1].upstream_messages == [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "two"},
        ]
        assert capture.seen[2].upstream_messages == [{"role": "user", "content": "elsewhere"}]
        assert capture.seen[3].upstream_messages == [{"role": "user", "content": "other bot"}]
        assert capture.seen[1].client_id == "5f0c2f9e-1d2b-4c3a-9e8f-0a1b2c3d4e5f"
        assert capture.seen[1].form["_ts"] == str(int(T0 * 1000))
        emu.clear()
        turn(emu, "fresh")
        assert capture.seen[-1].upstream_messages == [{"role": "user", "content": "fresh"}]


def test_history_keeps_the_last_max_messages_and_failed_turns(emu: Emulator) -> None:
    capture = Capture()
    emu.responder = capture
    emu.aipkit.max_messages = 3
    for word in ("a", "b"):
        turn(emu, word)
    capture.answer = Reply.site_error("down")
    turn(emu, "c")
    capture.answer = "ok"
    turn(emu, "d")
    assert capture.seen[-1].upstream_messages == [
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "c"},  # the failed turn stays, without an answer
        {"role": "user", "content": "d"},
    ]


# --- CORS (C.2 item 9) --------------------------------------------------------------------------


def test_cross_origin(emu: Emulator) -> None:
    same_host = {"Origin": f"http://127.0.0.1:{emu.port + 1}"}  # the port is not compared
    cross = {"Origin": "https://elsewhere.example"}
    assert turn(emu, headers=same_host)[-1] == DONE
    denied = stream(emu, cache_key(emu), headers=cross)
    assert denied.status == 200
    assert events(denied) == error_events("This domain is not permitted to access the chatbot.")
    refresh = {"action": "aipkit_get_frontend_chat_nonce", "bot_id": "123"}
    answer = post(emu, refresh, cross)
    assert (answer.status, answer.body) == (403, CORS_DENIED)
    assert post(emu, {"action": "aipkit_get_frontend_chat_nonce"}, cross).status == 200
    emu.aipkit.pro = True
    allowed = stream(emu, cache_key(emu), headers=cross)
    assert events(allowed)[-1] == DONE
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://elsewhere.example"
    emu.aipkit.allowed_origins = ["https://partner.example"]
    assert (cache(emu).status, post(emu, {**refresh}, cross).body) == (200, CORS_DENIED)
    answer = post(
        emu,
        {
            "action": "aipkit_cache_sse_message",
            "_ajax_nonce": emu.current_nonce(),
            "message": "x",
            "bot_id": "1",
        },
        cross,
    )
    assert (answer.status, answer.body) == (403, CORS_DENIED)
    ok = post(emu, refresh, {"Origin": "https://partner.example"})
    assert ok.status == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://partner.example"
    preflight = request(
        f"{emu.base_url}{AJAX}?action=aipkit_frontend_chat_stream",
        "OPTIONS",
        headers={"Origin": "https://partner.example"},
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://partner.example"
    assert emu.ajax_requests()[-1].method == "OPTIONS"
    assert all(r.method != "OPTIONS" for r in emu.stream_requests() + emu.chat_requests())


# --- 2.3 -> 2.4.0 (A.3.5, C.2 item 10) ----------------------------------------------------------


@pytest.fixture
def old() -> Iterator[Emulator]:
    with Emulator(
        plugin="aipkit",
        clock=lambda: T0,
        aipkit=AipkitOptions(version="2.4.0", bots=(123, 124), stream_off={124}),
    ) as emulator:
        yield emulator


def message_fields(emu: Emulator, message: str = "Hola", **extra: str) -> dict[str, str]:
    return {
        "action": "aipkit_frontend_chat_message",
        "_ajax_nonce": emu.current_nonce(),
        "bot_id": "124",
        "session_id": "s-1",
        "conversation_uuid": "c-1",
        "post_id": "2173",
        "message": message,
        **extra,
    }


def test_old_page_says_stream_enabled(old: Emulator) -> None:
    configs = [config for _, config in data_configs(request(old.base_url).text)]
    assert [(c["botId"], c["streamEnabled"]) for c in configs] == [(123, True), (124, False)]
    assert "userIp" not in configs[0]


def test_user_ip_before_2_3_88() -> None:
    with Emulator(plugin="aipkit", aipkit=AipkitOptions(version="2.3.87")) as emu:
        config = data_configs(request(emu.base_url).text)[0][1]
    assert config["userIp"] == "127.0.0.1"
    assert config["streamEnabled"] is True


def test_non_stream_endpoint(old: Emulator) -> None:
    capture = Capture("Hola/ñ")
    old.responder = capture
    answer = post(old, message_fields(old))
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json; charset=UTF-8"
    body = json.loads(answer.body)
    assert body["success"] is True
    assert body["data"]["reply"] == "Hola/ñ"
    assert MESSAGE_ID.fullmatch(body["data"]["message_id"])
    assert b'"reply":"Hola\\/\\u00f1"' in answer.body
    post(old, message_fields(old, "again"))
    assert capture.seen[-1].upstream_messages[:2] == [
        {"role": "user", "content": "Hola"},
        {"role": "assistant", "content": "Hola/ñ"},
    ]
    assert old.chat_requests()[0].nonce_valid is True
    # streaming still works for every bot (no server check of stream_enabled)
    assert answer_text(turn(old, bot_id="124")) == "Hola/ñ"


def test_non_stream_errors(old: Emulator) -> None:
    nonce = post(old, message_fields(old, _ajax_nonce="bad"))
    assert (nonce.status, nonce.body) == (
        403,
        b'{"success":false,"data":{"message":"' + SECURITY.encode() + b'"}}',
    )
    missing = post(old, message_fields(old, conversation_uuid=""))
    assert (missing.status, json.loads(missing.body)) == (
        400,
        {"success": False, "data": {"message": "Conversation ID is required."}},
    )
    old.responder = ScriptedResponder([Reply.site_error("boom")])
    failed = post(old, message_fields(old))
    assert json.loads(failed.body) == {"success": False, "data": {"message": "API Error: boom"}}


def test_non_stream_without_nonce_check_before_2_3_20() -> None:
    with Emulator(plugin="aipkit", aipkit=AipkitOptions(version="2.3.0", stream_off={123})) as emu:
        answer = post(emu, {**message_fields(emu, bot_id="123"), "_ajax_nonce": "bad"})
    assert json.loads(answer.body)["success"] is True


# --- request log, responders, CLI ---------------------------------------------------------------


def test_request_log(emu: Emulator) -> None:
    request(emu.base_url)
    key = cache_key(emu)
    post(emu, {"action": "aipkit_get_frontend_chat_nonce"})
    stream(emu, key)
    page, cached, refresh, streamed = emu.requests
    assert emu.page_requests() == [page]
    assert emu.chat_requests() == [cached, streamed]
    assert emu.cache_requests() == [cached]
    assert emu.stream_requests() == [streamed]
    assert emu.refresh_requests() == [refresh]
    assert (cached.method, cached.action, cached.nonce_valid) == (
        "POST",
        "aipkit_cache_sse_message",
        True,
    )
    assert (streamed.method, streamed.action, streamed.form) == (
        "GET",
        "aipkit_frontend_chat_stream",
        {},
    )
    assert streamed.query["cache_key"] == key
    assert page.action == "" and page.nonce_valid is None


def test_default_echo_responder(emu: Emulator) -> None:
    evs = turn(emu, "Translate: hello")
    assert answer_text(evs) == (
        "This answer comes from the local chatgpt.es emulator. You wrote: Translate: hello"
    )


def test_legacy_mode_answers_a_sequence_with_its_text() -> None:
    from .conftest import chat_fields
    from .conftest import post as legacy_post

    with Emulator() as emu:
        emu.responder = ScriptedResponder(
            [Reply.sequence(Reply.status_event({}), "Hi", Reply.warning("w"))]
        )
        assert json.loads(legacy_post(emu, chat_fields(emu)).body)["data"] == "Hi"


def test_cli_plugin_aipkit() -> None:
    args = ("--plugin", "aipkit", "--bot-id", "42", "--aipkit-layout", "popup")
    with emulator_cli(*args) as (proc, base_url):
        ((tag_id, config),) = data_configs(request(base_url).text)
        assert (tag_id, config["botId"]) == ("aipkit_popup_wrapper_42", 42)
        assert stop(proc) == 0
