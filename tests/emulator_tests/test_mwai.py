"""The AI Engine mode (Meow Apps 3.6.2) on the wire, path by path.

Expected strings are written out from ``shared/reference/wp-chat-plugins.md`` Part B and C.3,
not imported from the emulator, so a typo on either side shows.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import math
import re
import socket
import time
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest

from langchain_chatgptes.emulator import (
    ChatRequest,
    Emulator,
    MwaiOptions,
    Reply,
    ScriptedResponder,
)
from langchain_chatgptes.emulator._mwai_pages import clean_params, data_attribute

from .conftest import T0, Answer, emulator_cli, request, stop

SUBMIT = "/wp-json/mwai-ui/v1/chats/submit"
SESSION = "/wp-json/mwai/v1/start_session"
JSON_TYPE = "application/json; charset=UTF-8"
SSE_TYPE = "text/event-stream;charset=UTF-8"
GREETING = {"role": "assistant", "content": "Hi! How can I help you?"}
INSTRUCTIONS = "Converse as if you were an AI assistant. Be friendly, creative."
REJECTED = "Sorry, your query has been rejected."
BANNED = "Your query has been rejected."
OVER_LIMIT = "You have reached the limit (check the Insights Tab > Limits > Guests)."
NO_ROUTE = (
    b'{"code":"rest_no_route","message":"No route was found matching the URL and request '
    b'method.","data":{"status":404}}'
)
INVALID_NONCE = (
    b'{"code":"rest_cookie_invalid_nonce","message":"Cookie check failed","data":{"status":403}}'
)
FORBIDDEN = (
    b'{"code":"rest_forbidden","message":"Sorry, you are not allowed to do that.",'
    b'"data":{"status":401}}'
)
REJECTED_BODY = b'{"success":false,"message":"Sorry, your query has been rejected."}'
TICK = 43200  # half of WordPress' default nonce_life
Line = dict[str, Any]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(plugin="mwai", clock=lambda: T0) as emulator:
        yield emulator


class Capture:
    def __init__(self, answer: Reply | str = "ok") -> None:
        self.seen: list[ChatRequest] = []
        self.answer = answer

    def __call__(self, chat: ChatRequest) -> Reply | str:
        self.seen.append(chat)
        return self.answer


# --- a minimal, independent client ----------------------------------------------------------


def post_json(
    emu: Emulator, path: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> Answer:
    data = b"" if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return request(emu.base_url + path, "POST", data, all_headers)


def submit(
    emu: Emulator,
    message: Any = "Hola",
    *,
    nonce: str | None = "current",
    headers: Mapping[str, str] | None = None,
    drop: tuple[str, ...] = (),
    path: str = SUBMIT,
    **fields: Any,
) -> Answer:
    """The official JS's submit body; ``nonce=None`` sends no ``X-WP-Nonce``."""
    body = {
        "botId": "default",
        "customId": None,
        "session": "",
        "chatId": "k3j9x2",
        "contextId": 2173,
        "messages": [{**GREETING, "id": "a1", "who": "AI: ", "timestamp": 1}],
        "newMessage": message,
        "newFileId": None,
        "stream": False,
        **fields,
    }
    for key in drop:
        del body[key]
    sent = dict(headers or {})
    if nonce is not None:
        sent.setdefault("X-WP-Nonce", emu.current_nonce() if nonce == "current" else nonce)
    return post_json(emu, path, body, sent)


def lines(answer: Answer) -> list[Line]:
    """The ``data: <json>`` lines of a reply, each ended by a blank line."""
    assert answer.status == 200
    blocks = answer.text.split("\n\n")
    assert blocks[-1] == ""
    out = []
    for block in blocks[:-1]:
        assert block.startswith("data: ") and "\n" not in block, block
        out.append(json.loads(block[len("data: ") :]))
    return out


def final(evs: list[Line]) -> dict[str, Any]:
    assert evs[-1]["type"] == "end"
    assert isinstance(evs[-1]["data"], str)  # a JSON string inside the JSON line
    result: dict[str, Any] = json.loads(evs[-1]["data"])
    return result


def live_text(evs: list[Line]) -> str:
    return "".join(e["data"] for e in evs if e["type"] == "live" and "subtype" not in e)


def containers(page: str) -> list[dict[str, Any]]:
    """The decoded attributes of each ``div.mwai-chatbot-container``, via a real HTML parser."""
    found: list[dict[str, Any]] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if "mwai-chatbot-container" in (values.get("class") or "").split():
                found.append(
                    {
                        name: json.loads(values[f"data-{name}"] or "")
                        for name in ("params", "system", "theme")
                    }
                )

    Parser().feed(page)
    return found


def expected_nonce(tick: int) -> str:
    digest = hmac.new(b"emulator-nonce-salt", f"{tick}|wp_rest|0|".encode(), "md5")
    return digest.hexdigest()[-12:-2]


def raw_post(emu: Emulator, body: dict[str, Any]) -> bytes:
    """A submit over a bare socket: what arrives before the connection ends or drops."""
    data = json.dumps(body).encode()
    head = (
        f"POST {SUBMIT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-WP-Nonce: {emu.current_nonce()}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    received = b""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as conn:
        conn.sendall(head.encode() + data)
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


# --- page (B.1, C.3 item 2) --------------------------------------------------------------------


def test_page_markup_and_exact_encoding(emu: Emulator) -> None:
    answer = request(emu.base_url + "/chat/")
    page, port = answer.text, emu.port
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert answer.headers["Link"] == f'<http://127.0.0.1:{port}/wp-json/>; rel="https://api.w.org/"'
    div = re.search(r"<div class='mwai-chatbot-container'[^>]*></div>", page)
    assert div
    system = (
        "{&quot;botId&quot;:&quot;default&quot;,&quot;customId&quot;:null,&quot;userData&quot;:"
        "null,&quot;sessionId&quot;:null,&quot;restNonce&quot;:null,&quot;contextId&quot;:2173,"
        f"&quot;pluginUrl&quot;:&quot;http:\\/\\/127.0.0.1:{port}\\/wp-content\\/plugins\\/"
        f"ai-engine&quot;,&quot;restUrl&quot;:&quot;http:\\/\\/127.0.0.1:{port}\\/wp-json&quot;,"
        "&quot;stream&quot;:true,&quot;debugMode&quot;:false,&quot;eventLogs&quot;:false,"
        "&quot;speech_recognition&quot;:false,&quot;speech_synthesis&quot;:false,"
        "&quot;typewriter&quot;:false,&quot;crossSite&quot;:false,&quot;actions&quot;:[],"
        "&quot;blocks&quot;:[],&quot;shortcuts&quot;:[]}"
    )
    theme = (
        "{&quot;type&quot;:&quot;internal&quot;,&quot;name&quot;:&quot;ChatGPT&quot;,"
        "&quot;themeId&quot;:&quot;chatgpt&quot;,&quot;settings&quot;:[],&quot;style&quot;:&quot;"
        "&quot;}"
    )
    assert div[0].startswith(
        "<div class='mwai-chatbot-container' data-params='{&quot;aiName&quot;:&quot;AI: &quot;,"
    )
    assert div[0].endswith(f"' data-system='{system}' data-theme='{theme}'></div>")
    raw = re.search(r"data-params='([^']*)'", div[0])
    assert raw
    # clean_params() makes numbers floats, but json_encode prints a whole one as an integer,
    # as a real 3.6.2 page shows (real-plugins.md, AI Engine 1).
    assert "&quot;textInputMaxLength&quot;:512," in raw[1]
    params = json.loads(html.unescape(raw[1]))  # decode = HTML-unescape + json.loads
    (found,) = containers(page)
    assert found["params"] == params
    assert params["textInputMaxLength"] == 512
    assert isinstance(params["textInputMaxLength"], int)
    assert (params["startSentence"], params["themeId"], params["mode"]) == (
        "Hi! How can I help you?",
        "chatgpt",
        "chat",
    )
    assert (params["fileUploads"], params["maxUploads"], params["fileUpload"]) == (0, 1, False)
    assert isinstance(params["fileUploads"], int) and isinstance(params["maxUploads"], int)
    assert list(params)[-4:] == ["fileUpload", "imageUpload", "fileUploads", "maxUploads"]
    assert found["theme"]["themeId"] == "chatgpt"
    assert re.search(
        rf'<script src="http://127\.0\.0\.1:{port}/wp-content/plugins/ai-engine/app/chatbot\.js'
        r'\?ver=\d+" id="mwai_chatbot-js"></script>',
        page,
    )
    assert f'<link rel="https://api.w.org/" href="http://127.0.0.1:{port}/wp-json/" />' in page
    assert "wpaicg-chat-shortcode" not in page and "aipkit" not in page


def test_whole_numbers_are_integers_as_on_a_real_page() -> None:
    # aiengine-page.html.txt (a post with id 4): json_encode prints a whole float without .0.
    with Emulator(plugin="mwai", post_id="4") as emu:
        page = request(emu.base_url).text
    for raw in (
        "&quot;contextId&quot;:4,&quot;pluginUrl&quot;",
        "&quot;textInputMaxLength&quot;:512,&quot;textCompliance&quot;",
        "&quot;iconTextDelay&quot;:1,&quot;iconAlt&quot;",
        "&quot;fileUploads&quot;:0,",
        "&quot;maxUploads&quot;:1}",
    ):
        assert raw in page
    (found,) = containers(page)
    numbers = (found["system"]["contextId"], found["params"]["textInputMaxLength"])
    assert numbers == (4, 512)
    assert all(isinstance(number, int) for number in numbers)


def test_json_encode_floats() -> None:
    floats = (512.0, 4.0, 0.0, -3.0, 1.5, 0.1, 4e-05, 1e25, 1e16)
    assert [data_attribute(number) for number in floats] == [
        "512",
        "4",
        "0",
        "-3",
        "1.5",
        "0.1",
        "4.0e-5",
        "1.0e+25",
        "10000000000000000",
    ]


def test_data_attribute_is_htmlspecialchars_of_php_json() -> None:
    value = {"t": "<b> & 'c' \"d\" / ñ 😀 &amp;", "n": 512.0, "i": 3, "z": None, "a": []}
    assert data_attribute(value) == (
        "{&quot;t&quot;:&quot;&lt;b&gt; &amp; &#039;c&#039; \\&quot;d\\&quot; \\/ \\u00f1 "
        "\\ud83d\\ude00 &amp;amp;&quot;,&quot;n&quot;:512,&quot;i&quot;:3,&quot;z&quot;:null,"
        "&quot;a&quot;:[]}"
    )
    assert json.loads(html.unescape(data_attribute(value))) == value


def test_clean_params_makes_numbers_floats_and_words_booleans() -> None:
    params = {
        "a": "12",
        "b": "TRUE",
        "c": "",
        "d": None,
        "e": [1],
        "restNonce": "1234567890",
        "g": 7,
        "h": " 1e3",
        "i": "0x1A",
        "j": False,
    }
    assert clean_params(params) == {
        "a": 12.0,
        "b": True,
        "c": "",
        "d": None,
        "e": [1],
        "restNonce": "1234567890",
        "g": 7.0,
        "h": 1000.0,
        "i": "0x1A",
        "j": False,
    }


def test_page_bots_custom_bots_and_quoting() -> None:
    odd = 'O\'Neil & "Co"/ñ'
    with Emulator(
        plugin="mwai",
        mwai=MwaiOptions(bots=("default", "123", odd), custom_bots=("c0ffee", "1234")),
    ) as emu:
        page = request(emu.base_url).text
    systems = [found["system"] for found in containers(page)]
    assert [(s["botId"], s["customId"]) for s in systems] == [
        ("default", None),
        (123, None),  # clean_params: a float, which json_encode prints as 123
        (odd, None),
        (None, "c0ffee"),
        (None, 1234),
    ]
    assert "&quot;botId&quot;:&quot;O&#039;Neil &amp; \\&quot;Co\\&quot;\\/\\u00f1&quot;" in page


def test_page_knobs() -> None:
    with Emulator(
        plugin="mwai",
        clock=lambda: T0,
        mwai=MwaiOptions(
            text_input_max_length=None,
            stream_option=False,
            rest_nonce_in_page=True,
            rest_url_style="plain",
        ),
    ) as emu:
        answer = request(emu.base_url)
        nonce, port = emu.current_nonce(), emu.port
    ((found),) = containers(answer.text)
    assert "textInputMaxLength" not in found["params"]
    assert found["system"]["stream"] is False
    assert found["system"]["restNonce"] == nonce  # 2.0.1-2.4.3 style
    rest = f"http://127.0.0.1:{port}/index.php?rest_route="
    assert found["system"]["restUrl"] == rest
    assert answer.headers["Link"] == f'<{rest}/>; rel="https://api.w.org/"'
    with Emulator(plugin="mwai", mwai=MwaiOptions(text_input_max_length={"default": 1000})) as emu:
        (found,) = containers(request(emu.base_url).text)
    assert found["params"]["textInputMaxLength"] == 1000


def test_no_chat_box_variant_is_the_plugin_switched_off(emu: Emulator) -> None:
    emu.page_variant = "no_chat_box"
    emu.mwai.custom_bots = ("c1",)
    page = request(emu.base_url).text
    assert '<p>[mwai_chatbot id="default"]</p>' in page
    assert '[mwai_chatbot custom_id="c1"' in page
    assert "mwai-chatbot-container" not in page and "chatbot.js" not in page
    answer = post_json(emu, SESSION)
    assert (answer.status, answer.body) == (404, NO_ROUTE)
    assert submit(emu).body == NO_ROUTE
    index = json.loads(request(emu.base_url + "/wp-json/").body)
    assert "mwai/v1" not in index["namespaces"]


def test_mixed_variant_has_legacy_aipkit_and_ai_engine_bots(emu: Emulator) -> None:
    emu.page_variant = "mixed"
    page = request(emu.base_url).text
    legacy = page.index('<div class="wpaicg-chat-shortcode"')
    aipkit = page.index('id="aipkit_chat_container_123"')
    assert legacy < aipkit < page.index("<div class='mwai-chatbot-container'")
    assert "aipkit-public-main-js" in page and 'id="mwai_chatbot-js"' in page
    config = re.search(r"data-config='([^']*)'", page)
    assert config
    cache = {
        "action": "aipkit_cache_sse_message",
        "_ajax_nonce": json.loads(html.unescape(config[1]))["nonce"],
        "message": "hi",
        "bot_id": "123",
    }
    ajax = emu.base_url + "/wp-admin/admin-ajax.php"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert request(ajax, "POST", urlencode(cache).encode(), form).status == 200
    stale = {"action": "wpaicg_chat_shortcode_message", "message": "hi"}
    answer = request(ajax, "POST", urlencode(stale).encode(), form)
    assert (answer.status, answer.body) == (400, b"0")
    assert json.loads(submit(emu).body)["success"] is True
    assert len(emu.chat_requests()) == 1  # the AI Engine submits only


def test_admin_ajax_has_no_action_without_aipkit(emu: Emulator) -> None:
    ajax = emu.base_url + "/wp-admin/admin-ajax.php"
    body = urlencode({"action": "aipkit_cache_sse_message", "message": "x"}).encode()
    answer = request(ajax, "POST", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert (answer.status, answer.body) == (400, b"0")
    assert emu.ajax_requests()[0].nonce_valid is None


# --- REST router (C.3 item 3) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        SESSION,
        SESSION + "/",
        "/wp-json/MWAI/v1/Start_Session",
        "/index.php?rest_route=/mwai/v1/start_session",
        "/?rest_route=%2Fmwai%2Fv1%2Fstart_session",
    ],
)
def test_router_paths(emu: Emulator, path: str) -> None:
    answer = post_json(emu, path)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == JSON_TYPE
    assert json.loads(answer.body)["success"] is True
    assert emu.session_requests()[0].route.lower() == "/mwai/v1/start_session"


def test_unknown_routes_and_methods(emu: Emulator) -> None:
    for answer in (
        post_json(emu, "/wp-json/mwai/v1/nope"),
        request(emu.base_url + SESSION),  # GET: the route is POST only
        request(emu.base_url + "/?rest_route=/wp/v9"),
        request(emu.base_url + "/wp-json/mwai-ui/v1/chats/submit", "PUT", b"{}"),
    ):
        assert (answer.status, answer.body) == (404, NO_ROUTE)
        assert answer.headers["Content-Type"] == JSON_TYPE
    index = request(emu.base_url + "/wp-json")
    assert index.status == 200
    assert {"mwai/v1", "mwai-ui/v1"} <= set(json.loads(index.body)["namespaces"])
    assert emu.page_requests() == []
    assert len(emu.rest_requests()) == 5


def test_plain_permalinks_serve_only_rest_route(emu: Emulator) -> None:
    emu.mwai.rest_url_style = "plain"
    missing = post_json(emu, SESSION)
    assert missing.status == 404
    assert missing.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert post_json(emu, "/index.php?rest_route=/mwai/v1/start_session").status == 200
    answer = submit(emu, path="/index.php?rest_route=/mwai-ui/v1/chats/submit")
    assert json.loads(answer.body)["success"] is True
    assert len(emu.rest_requests()) == 2


def test_options_preflight_and_cors(emu: Emulator) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    preflight = request(emu.base_url + SUBMIT, "OPTIONS", headers=origin)
    assert preflight.status == 200
    assert preflight.headers["Allow"] == "POST"
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://elsewhere.example"
    assert "X-WP-Nonce" in preflight.headers["Access-Control-Allow-Headers"]
    assert json.loads(preflight.body)["methods"] == ["POST"]
    answer = submit(emu, headers=origin)
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"


def test_invalid_json_body_is_a_400_before_the_permission_check(emu: Emulator) -> None:
    answer = request(emu.base_url + SUBMIT, "POST", b"{nope", {"Content-Type": "application/json"})
    assert answer.status == 400
    assert json.loads(answer.body) == {
        "code": "rest_invalid_json",
        "message": "Invalid JSON body passed.",
        "data": {"status": 400, "json_error_code": 4, "json_error_message": "Syntax error"},
    }


# --- rest_cookie_check_errors (B.2, C.3 item 4) ------------------------------------------------


def test_nonce_is_the_wordpress_hmac_of_wp_rest(emu: Emulator) -> None:
    tick = int(-(-T0 // TICK))
    assert emu.current_nonce() == expected_nonce(tick)
    assert json.loads(post_json(emu, SESSION).body)["restNonce"] == expected_nonce(tick)


def test_cookie_check_runs_before_every_route(emu: Emulator) -> None:
    nonce = emu.current_nonce()
    for answer in (
        post_json(emu, SESSION, headers={"X-WP-Nonce": "0123456789"}),
        post_json(emu, SESSION + "?_wpnonce=bad", headers={"X-WP-Nonce": nonce}),  # query wins
        post_json(emu, SESSION, headers={"X-WP-Nonce": ""}),  # present, empty
        post_json(emu, "/wp-json/mwai/v1/nope", headers={"X-WP-Nonce": "bad"}),  # before routing
        submit(emu, nonce="bad", stream=True),  # the plugin never runs
    ):
        assert (answer.status, answer.body) == (403, INVALID_NONCE)
        assert answer.headers["Content-Type"] == JSON_TYPE
        assert answer.headers["Expires"] == "Wed, 11 Jan 1984 05:00:00 GMT"
        assert "X-WP-Nonce" not in answer.headers
    form = request(
        emu.base_url + SESSION,
        "POST",
        urlencode({"_wpnonce": "bad"}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (form.status, form.body) == (403, INVALID_NONCE)
    ok = post_json(emu, SESSION + f"?_wpnonce={nonce}")
    assert ok.status == 200
    assert ok.headers["X-WP-Nonce"] == nonce
    assert "X-WP-Nonce" not in post_json(emu, SESSION).headers  # no nonce: a plain guest
    assert [r.nonce_valid for r in emu.rest_requests()] == [
        False,
        False,
        False,
        False,
        False,
        False,
        True,
        None,
    ]


def test_nonce_lives_two_ticks(emu: Emulator) -> None:
    nonce = emu.current_nonce()
    emu.advance(TICK)
    assert json.loads(submit(emu, nonce=nonce).body)["success"] is True
    emu.advance(TICK)
    assert submit(emu, nonce=nonce).body == INVALID_NONCE


# --- start_session (B.2, C.3 item 5) -----------------------------------------------------------


def test_start_session_sets_then_echoes_the_cookie(emu: Emulator) -> None:
    first = post_json(emu, SESSION)
    body = json.loads(first.body)
    session = body["sessionId"]
    assert re.fullmatch(r"[0-9a-f]{13}", session)
    assert session.startswith(f"{int(T0):08x}")  # uniqid(): seconds, then microseconds
    php_session, mwai_session = first.headers.get_all("Set-Cookie", [])
    assert re.fullmatch(r"PHPSESSID=[0-9a-v]{26}; path=/", php_session)  # also a PHP session
    assert mwai_session == f"mwai_session_id={session}; path=/; HttpOnly"
    assert body == {"success": True, "sessionId": session, "restNonce": emu.current_nonce()}
    assert first.body == (
        b'{"success":true,"sessionId":"'
        + session.encode()
        + b'","restNonce":"'
        + emu.current_nonce().encode()
        + b'"}'
    )
    php_cookie = php_session.removesuffix("; path=/")
    cookies = f"other=1; {php_cookie}; mwai_session_id={session}"
    again = post_json(emu, SESSION, headers={"Cookie": cookies})
    assert json.loads(again.body)["sessionId"] == session
    assert again.headers.get_all("Set-Cookie") is None
    other = json.loads(post_json(emu, SESSION).body)["sessionId"]
    assert other != session
    php_name, _, php_id = php_cookie.partition("=")
    assert emu.session_requests()[1].cookies == {
        "other": "1",
        php_name: php_id,
        "mwai_session_id": session,
    }


def test_start_session_starts_a_php_session_as_a_real_site_does(emu: Emulator) -> None:
    # shared/reference/real-plugins/aiengine-start-session.txt: session_start() under /mwai/,
    # with PHP's "nocache" cache limiter.
    first = post_json(emu, SESSION)
    assert first.status == 200
    php_session = first.headers.get_all("Set-Cookie", [""])[0]
    assert re.fullmatch(r"PHPSESSID=[0-9a-v]{26}; path=/", php_session)
    assert first.headers["Expires"] == "Thu, 19 Nov 1981 08:52:00 GMT"
    assert first.headers["Cache-Control"] == "no-store, no-cache, must-revalidate"
    assert first.headers["Pragma"] == "no-cache"
    resumed = post_json(emu, SESSION, headers={"Cookie": php_session.removesuffix("; path=/")})
    assert not any(c.startswith("PHPSESSID=") for c in resumed.headers.get_all("Set-Cookie", []))
    assert resumed.headers["Cache-Control"] == "no-store, no-cache, must-revalidate"
    assert resumed.headers["Pragma"] == "no-cache"
    chat = submit(emu)  # /mwai-ui/ starts no PHP session
    assert not any(c.startswith("PHPSESSID=") for c in chat.headers.get_all("Set-Cookie", []))
    assert "Pragma" not in chat.headers and "Expires" not in chat.headers


def test_start_session_new_token_rule(emu: Emulator) -> None:
    old = emu.current_nonce()
    assert "new_token" not in json.loads(post_json(emu, SESSION, headers={"X-WP-Nonce": old}).body)
    emu.advance(TICK)
    stale = json.loads(post_json(emu, SESSION, headers={"X-WP-Nonce": old}).body)
    assert stale["new_token"] == emu.current_nonce() == stale["restNonce"] != old
    # _wpnonce passes WordPress' check; the plugin compares the header only.
    quirk = post_json(emu, SESSION + f"?_wpnonce={old}", headers={"X-WP-Nonce": "junk"})
    assert json.loads(quirk.body)["new_token"] == emu.current_nonce()


def test_session_faults(emu: Emulator) -> None:
    emu.mwai.session_faults.extend(
        [Reply.raw(502, "<h1>Bad gateway</h1>"), Reply.reset(), Reply.drip('{"x":1}', 0.001)]
    )
    bad = post_json(emu, SESSION)
    assert (bad.status, bad.body) == (502, b"<h1>Bad gateway</h1>")
    with pytest.raises((ConnectionError, OSError)):
        post_json(emu, SESSION)
    assert post_json(emu, SESSION).body == b'{"x":1}'
    assert json.loads(post_json(emu, SESSION).body)["success"] is True
    assert json.loads(submit(emu).body)["success"] is True  # submits are not faulted
    emu.mwai.session_faults.append(Reply.text("not a fault"))
    assert post_json(emu, SESSION).status == 500


def test_sites_before_start_session(emu: Emulator) -> None:
    emu.mwai.start_session = False
    assert post_json(emu, SESSION).body == NO_ROUTE


# --- submit: permission, body, basics (B.3, C.3 item 6) ----------------------------------------


def test_submit_permission_reads_the_header_only(emu: Emulator) -> None:
    for answer in (
        submit(emu, nonce=None),
        submit(emu, nonce=None, stream=True),
        submit(emu, nonce=None, path=SUBMIT + f"?_wpnonce={emu.current_nonce()}"),
    ):
        assert (answer.status, answer.body) == (401, FORBIDDEN)
        assert answer.headers["Content-Type"] == JSON_TYPE
    assert emu.submit_requests()[2].nonce_valid is True  # WordPress' check passed
    assert len(emu.chat_requests()) == 3


def test_submit_body_must_be_json(emu: Emulator) -> None:
    headers = {"X-WP-Nonce": emu.current_nonce()}
    fields = {"botId": "default", "newMessage": "Hola"}
    form = request(
        emu.base_url + SUBMIT,
        "POST",
        urlencode(fields).encode(),
        {**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    text = request(
        emu.base_url + SUBMIT,
        "POST",
        json.dumps(fields).encode(),
        {**headers, "Content-Type": "text/plain"},
    )
    for answer in (form, text):
        assert (answer.status, answer.body) == (403, REJECTED_BODY)
    typed = request(
        emu.base_url + SUBMIT,
        "POST",
        json.dumps(fields).encode(),
        {**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert json.loads(typed.body)["success"] is True
    assert emu.submit_requests()[2].json == fields
    assert emu.submit_requests()[0].json is None


@pytest.mark.parametrize(
    ("message", "fields", "drop"),
    [
        ("Hola", {}, ("botId", "customId")),
        ("Hola", {"botId": None}, ()),
        ("Hola", {"botId": "0"}, ()),  # PHP: "0" is false
        ("Hola", {"botId": ""}, ()),
        ("", {}, ()),
        (" \n\t ", {}, ()),
        (None, {}, ()),
        ("Hola", {"botId": None, "stream": True}, ()),  # streaming: still a 403 JSON
        ("", {"stream": True}, ()),
    ],
)
def test_basics_security_check(
    emu: Emulator, message: Any, fields: dict[str, Any], drop: tuple[str, ...]
) -> None:
    answer = submit(emu, message, drop=drop, **fields)
    assert (answer.status, answer.body) == (403, REJECTED_BODY)
    assert answer.headers["Content-Type"] == JSON_TYPE
    assert "Set-Cookie" not in answer.headers  # refused before the query exists


def test_files_and_shortcuts(emu: Emulator) -> None:
    capture = Capture()
    emu.responder = capture
    assert json.loads(submit(emu, "", newFileId="f1").body)["success"] is True
    assert capture.seen[0].message == ""
    shortcut = submit(emu, "", shortcutId="enc123")
    assert shortcut.status == 400
    assert json.loads(shortcut.body) == {
        "success": False,
        "message": "Invalid or expired shortcut.",
    }


def test_php_type_errors_are_critical_errors(emu: Emulator) -> None:
    for answer in (submit(emu, ["a"]), submit(emu, messages="text", stream=True)):
        assert answer.status == 500
        assert answer.headers["Content-Type"] == JSON_TYPE
        body = json.loads(answer.body)
        assert body["code"] == "internal_server_error"
        assert "critical error" in body["message"]
    unsupported = submit(emu, messages=[GREETING, "plain"])
    assert json.loads(unsupported.body) == {
        "success": False,
        "message": "Unsupported message type.",
    }


# --- bots and the length rule (B.3) ------------------------------------------------------------


def test_bot_resolution_falls_back_to_default() -> None:
    capture = Capture()
    instructions = {"default": "You are the default.", "sales": "You sell.", "c9": "Custom."}
    with Emulator(
        plugin="mwai",
        clock=lambda: T0,
        mwai=MwaiOptions(bots=("default", "sales"), custom_bots=("c9",), instructions=instructions),
        responder=capture,
    ) as emu:
        submit(emu, botId="sales")
        submit(emu, botId="nope")
        submit(emu, botId="mwai_internal")
        submit(emu, botId=None, customId="c9")  # no page served yet: no transient
        request(emu.base_url)
        submit(emu, botId=None, customId="c9")
        submit(emu, botId="sales", customId="c9")  # the transient wins
        emu.advance(24 * 3600)
        submit(emu, botId="sales", customId="c9")  # expired: botId next
    systems = [chat.upstream_messages[0]["content"] for chat in capture.seen]
    assert systems == [
        "You sell.",
        "You are the default.",
        "You are the default.",
        "You are the default.",
        "Custom.",
        "Custom.",
        "You sell.",
    ]


def test_length_rule_counts_code_points_after_trim(emu: Emulator) -> None:
    for ok in ("a" * 512, "ñ" * 512, "😀" * 512, "  " + "a" * 512 + " \n"):
        assert json.loads(submit(emu, ok).body)["success"] is True, len(ok)
    for too_long in ("a" * 513, "😀" * 513):
        answer = submit(emu, too_long)
        assert answer.status == 500
        assert answer.body == REJECTED_BODY
        assert "Set-Cookie" not in answer.headers  # refused before the query exists


def test_length_rejection_while_streaming_is_a_line_under_application_json(
    emu: Emulator,
) -> None:
    flushed: list[bytes] = []
    emu.on_flush = flushed.append
    answer = submit(emu, "a" * 513, stream=True)
    assert answer.status == 200
    assert answer.headers["Content-Type"] == JSON_TYPE
    assert (
        answer.body == b'data: {"type":"error","data":"Sorry, your query has been rejected."}\n\n'
    )
    assert flushed == [answer.body]


def test_length_knobs_and_custom_bots() -> None:
    with Emulator(
        plugin="mwai",
        mwai=MwaiOptions(
            bots=("default", "big"),
            custom_bots=("c1",),
            text_input_max_length={"big": 2000, "default": 10},
        ),
    ) as emu:
        request(emu.base_url)
        assert submit(emu, "x" * 11).status == 500
        assert submit(emu, "x" * 2000, botId="big").status == 200
        assert submit(emu, "x" * 5000, botId=None, customId="c1").status == 200  # no check
        emu.mwai.text_input_max_length = None
        assert submit(emu, "x" * 5000).status == 200


# --- the run() checks: banned IPs and words, limits, moderation (B.3) --------------------------


def test_banned_words_scan_new_message_only(emu: Emulator) -> None:
    emu.banned_words = ["spam", "ñandú"]
    assert json.loads(submit(emu, "SPAM here").body) == {"success": False, "message": BANNED}
    assert json.loads(submit(emu, "un Ñandú").body)["message"] == BANNED  # Unicode /iu
    assert json.loads(submit(emu, "spammer").body)["success"] is True  # \b
    history = [GREETING, {"role": "user", "content": "spam"}]
    assert json.loads(submit(emu, "clean", messages=history).body)["success"] is True
    streamed = submit(emu, "spam", stream=True)
    assert streamed.headers["Content-Type"] == SSE_TYPE  # after the stream headers
    assert lines(streamed) == [{"type": "error", "data": BANNED}]


def test_banned_ips(emu: Emulator) -> None:
    emu.banned_ips = ["10.0.0.1", "127.0.0.0/8"]
    assert json.loads(submit(emu).body) == {"success": False, "message": BANNED}
    emu.banned_ips = ["127.0.0.2"]
    assert json.loads(submit(emu).body)["success"] is True


def test_guest_query_limit_per_session(emu: Emulator) -> None:
    emu.token_limit = 2
    cookie = {"Cookie": "mwai_session_id=aaaabbbbcccc1"}
    for _ in range(2):
        assert json.loads(submit(emu, headers=cookie).body)["success"] is True
    refused = submit(emu, headers=cookie)
    assert (refused.status, json.loads(refused.body)) == (
        500,
        {"success": False, "message": OVER_LIMIT},
    )
    assert lines(submit(emu, headers=cookie, stream=True)) == [
        {"type": "error", "data": OVER_LIMIT}
    ]
    assert json.loads(submit(emu, session="other").body)["success"] is True  # body session
    emu.clear()
    assert json.loads(submit(emu, headers=cookie).body)["success"] is True
    emu.token_limit = 0
    assert json.loads(submit(emu, session="new").body)["message"] == OVER_LIMIT


def test_moderation_is_raised_before_the_stream(emu: Emulator) -> None:
    emu.mwai.moderation = ["Bomb"]
    moderated = "Sorry, your message has been rejected by moderation."
    assert json.loads(submit(emu, "a bomb!").body) == {"success": False, "message": moderated}
    streamed = submit(emu, "a BOMB", stream=True)
    assert streamed.headers["Content-Type"] == JSON_TYPE
    assert lines(streamed) == [{"type": "error", "data": moderated}]


# --- history (B.4, C.3 item 9) -----------------------------------------------------------------


def test_history_window_and_request_mapping(emu: Emulator) -> None:
    capture = Capture()
    emu.responder = capture
    turns = [{"role": "user" if i % 2 else "assistant", "content": f"t{i}"} for i in range(1, 21)]
    messages = [{**GREETING, "id": "x", "who": "AI: ", "timestamp": 5, "key": "k"}, *turns]
    submit(emu, " Next? ", messages=messages, session="s-42", extra={"a": 1})
    (chat,) = capture.seen
    assert (
        chat.upstream_messages
        == [
            {"role": "system", "content": INSTRUCTIONS},
            GREETING,  # messages[0] is always kept
            *turns[-15:],
            {"role": "user", "content": "Next?"},
        ]
    )
    assert chat.message == "Next?"
    assert chat.client_id == "s-42"
    assert chat.body is not None
    assert chat.body["messages"] == messages
    assert chat.body["extra"] == {"a": 1}
    assert chat.form["newMessage"] == " Next? "
    assert (chat.form["stream"], chat.form["extra"], chat.form["newFileId"]) == (
        "false",
        '{"a": 1}',
        "null",
    )
    emu.mwai.max_messages = 2
    emu.mwai.instructions = ""
    submit(emu, "x", messages=[GREETING, *turns[:5], {"role": "tool", "content": 7}])
    assert capture.seen[-1].upstream_messages == [
        GREETING,
        turns[4],
        {"role": "tool", "content": "7"},  # roles pass verbatim; content JSON-encoded
        {"role": "user", "content": "x"},
    ]
    emu.mwai.max_messages = 0  # empty(): no window at all
    submit(emu, "y", messages=turns)
    assert len(capture.seen[-1].upstream_messages) == 21


def test_session_comes_from_body_then_cookie_then_a_new_cookie(emu: Emulator) -> None:
    capture = Capture()
    emu.responder = capture
    fresh = submit(emu)
    (cookie,) = fresh.headers.get_all("Set-Cookie") or []
    session = re.fullmatch(r"mwai_session_id=([0-9a-f]{13}); path=/; HttpOnly", cookie)
    assert session
    assert capture.seen[0].client_id == session[1]
    again = submit(emu, headers={"Cookie": f"mwai_session_id={session[1]}"})
    assert "Set-Cookie" not in again.headers
    assert capture.seen[1].client_id == session[1]
    submit(emu, session="from-body", headers={"Cookie": "mwai_session_id=zzz"})
    assert capture.seen[2].client_id == "from-body"


def test_checksum_is_stored_but_never_rejects(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(["First answer", "Second answer", "Third"])
    submit(emu, "one", chatId="chat-1")
    stored = [GREETING, {"role": "user", "content": "one"}]
    stored.append({"role": "assistant", "content": "First answer"})
    kept = [GREETING, {"role": "assistant", "content": "First answer"}]
    expected = hashlib.md5(
        json.dumps(kept, separators=(",", ":")).encode(), usedforsecurity=False
    ).hexdigest()
    assert emu.mwai_checksum("chat-1") == expected
    assert json.loads(submit(emu, "two", chatId="chat-1", messages=stored).body)["success"]
    assert emu.mwai_integrity_mismatches() == []
    tampered = [GREETING, {"role": "assistant", "content": "I never said that"}]
    answer = submit(emu, "three", chatId="chat-1", messages=tampered)
    assert json.loads(answer.body)["reply"] == "Third"  # only logged
    assert emu.mwai_integrity_mismatches() == ["chat-1"]
    assert emu.mwai_checksum("default") is None


# --- replies (B.3, C.3 item 7) -----------------------------------------------------------------


def test_json_reply_bytes(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(['Hola/adiós "x" 😀'])
    answer = submit(emu, "¿Qué tal?")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == JSON_TYPE
    assert answer.headers["X-WP-Nonce"] == emu.current_nonce()
    assert answer.body.startswith(
        b'{"success":true,"reply":"Hola\\/adi\\u00f3s \\"x\\" \\ud83d\\ude00","images":null,'
        b'"actions":[],"shortcuts":[],"blocks":[],"usage":{"prompt_tokens":'
    )
    body = json.loads(answer.body)
    assert list(body) == [
        "success",
        "reply",
        "images",
        "actions",
        "shortcuts",
        "blocks",
        "usage",
        "responseId",
    ]
    usage = body["usage"]
    assert list(usage) == [
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "price",
        "queries",
        "accuracy",
    ]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert usage["price"] is None and usage["accuracy"] == "tokens"


def test_usage_and_response_id_as_a_real_site_writes_them(emu: Emulator) -> None:
    # aiengine-submit-json-ok.txt / -stream-ok.txt: no price for the model, one query, and
    # the Responses API's id last.
    emu.responder = ScriptedResponder(["abcdefgh"])  # 2 tokens (four characters a token)
    answer = submit(emu, "Hola", messages=[])
    tail = re.search(rb',"usage":(.*)\}$', answer.body)
    assert tail
    usage, _, response_id = tail[1].partition(b',"responseId":')
    prompt = math.ceil(len(INSTRUCTIONS) / 4) + 1  # the system message and "Hola"
    assert usage == (
        b'{"prompt_tokens":%d,"completion_tokens":2,"total_tokens":%d,"price":null,'
        b'"queries":1,"accuracy":"tokens"}' % (prompt, prompt + 2)
    )
    assert re.fullmatch(rb'"resp_[0-9a-f]{32}"', response_id)
    emu.responder = ScriptedResponder(["abcdefgh"])
    streamed = final(lines(submit(emu, "Hola", messages=[], stream=True)))
    assert list(streamed)[-2:] == ["usage", "responseId"]
    assert streamed["usage"] == json.loads(usage)
    assert re.fullmatch(r"resp_[0-9a-f]{32}", streamed["responseId"])
    assert streamed["responseId"] != json.loads(response_id)  # one per reply
    emu.mwai.responses_api = False  # another engine: no id
    assert "responseId" not in json.loads(submit(emu).body)


def test_usage_can_be_null_or_left_out(emu: Emulator) -> None:
    emu.mwai.usage = "null"
    assert json.loads(submit(emu).body)["usage"] is None
    emu.mwai.usage = False
    assert "usage" not in json.loads(submit(emu).body)
    assert "usage" not in final(lines(submit(emu, stream=True)))


def test_stream_reply_bytes_and_headers(emu: Emulator) -> None:
    text = 'Hola/adiós "x" \u2028 😀 fin'
    emu.responder = ScriptedResponder([text])
    answer = submit(emu, stream=True)
    assert answer.status == 200
    for name, value in {
        "Content-Type": SSE_TYPE,
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        "X-WP-Nonce": emu.current_nonce(),
        "X-Content-Type-Options": "nosniff",
    }.items():
        assert answer.headers[name] == value
    assert answer.text.startswith('data: {"type":"live","data":"Hola"}\n\n')
    assert "\\/" in answer.text and "\\u00f3" in answer.text and "\\ud83d\\ude00" in answer.text
    evs = lines(answer)
    assert all(e == {"type": "live", "data": e["data"]} for e in evs[:-1])
    assert len(evs) > 4
    assert live_text(evs) == text
    result = final(evs)
    assert result["reply"] == text
    assert result["success"] is True
    assert list(result)[:6] == ["success", "reply", "images", "actions", "shortcuts", "blocks"]
    assert "new_token" not in result


def test_one_write_per_line_and_chunk_delay(emu: Emulator) -> None:
    flushed: list[bytes] = []
    emu.on_flush = flushed.append
    emu.responder = ScriptedResponder([Reply.sequence(Reply.mwai_event("thinking", "hm"), "a b")])
    answer = submit(emu, stream=True)
    assert b"".join(flushed) == answer.body
    assert len(flushed) == len(lines(answer)) == 4  # thinking | "a" | " b" | end
    emu.chunk_delay, emu.latency = 0.05, 0.1
    emu.responder = ScriptedResponder(["a b"])
    start = time.monotonic()
    assert final(lines(submit(emu, stream=True)))["reply"] == "a b"
    # latency, then "a" | " b" | end: two pauses between three writes
    assert time.monotonic() - start >= 0.1 + 2 * 0.05


def test_event_objects_are_progress_not_text(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [
            Reply.sequence(
                Reply.mwai_event("thinking", "Let me think"),
                "Hello ",
                Reply.mwai_event("status", "Searching", metadata={"query": "x"}),
                Reply.warning("Careful"),
                Reply.aipkit_event("status", {"type": "x"}),  # AIPKit's: skipped here
                Reply.mwai_event("content", "world"),
                Reply.mwai_event("tool_call", "Calling", visibility="hidden"),
            )
        ]
    )
    evs = lines(submit(emu, stream=True))
    events = [e for e in evs if "subtype" in e]
    assert events == [
        {
            "type": "live",
            "data": "Let me think",
            "timestamp": T0,
            "subtype": "thinking",
            "visibility": "collapsed",
        },
        {
            "type": "live",
            "data": "Searching",
            "timestamp": T0,
            "subtype": "status",
            "visibility": "collapsed",
            "metadata": {"query": "x"},
        },
        {
            "type": "live",
            "data": "Careful",
            "timestamp": T0,
            "subtype": "warning",
            "visibility": "visible",
        },
        {
            "type": "live",
            "data": "world",
            "timestamp": T0,
            "subtype": "content",
            "visibility": "visible",
        },
        {
            "type": "live",
            "data": "Calling",
            "timestamp": T0,
            "subtype": "tool_call",
            "visibility": "hidden",
        },
    ]
    assert live_text(evs) == "Hello "
    assert final(evs)["reply"] == "Hello world"  # content events join the answer
    emu.responder = ScriptedResponder([Reply.sequence(Reply.mwai_event("status", "s"), "Hi")])
    assert json.loads(submit(emu).body)["reply"] == "Hi"  # JSON replies carry no events


def test_errors_after_the_stream_opened(emu: Emulator) -> None:
    wrapped = 'OpenAI: {"error":{"message":"Rate limit / reached","type":"x"}}'
    replies = [
        Reply.site_error(wrapped),
        Reply.exception("Timeout"),
        Reply.token_limit(),
        Reply.flag("messageFlagged", "Flagged."),
    ]
    expected = ["Rate limit / reached", "Timeout", OVER_LIMIT, "Flagged."]
    emu.responder = ScriptedResponder([*replies, *replies])
    for message in expected:
        answer = submit(emu, stream=True)
        assert answer.headers["Content-Type"] == SSE_TYPE
        assert lines(answer) == [{"type": "error", "data": message}]
        assert "Set-Cookie" in answer.headers  # the query (and its session) existed
    for message in expected:
        answer = submit(emu)
        assert (answer.status, json.loads(answer.body)) == (
            500,
            {"success": False, "message": message},
        )


def test_reply_error_is_raised_before_the_stream(emu: Emulator) -> None:
    oops = (
        "Oops! Something went wrong on the server. Please try again, and if you are the site "
        "developer, check the PHP Error Logs for details."
    )
    emu.responder = ScriptedResponder([Reply.error(oops), Reply.error("No engine.")])
    streamed = submit(emu, stream=True)
    assert streamed.headers["Content-Type"] == JSON_TYPE
    assert lines(streamed) == [{"type": "error", "data": oops}]
    assert json.loads(submit(emu).body) == {"success": False, "message": "No engine."}


def test_provider_failure_mid_answer(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [Reply.sequence("Partial answer", Reply.site_error("upstream died")), Reply.text("")]
    )
    evs = lines(submit(emu, stream=True))
    assert live_text(evs) == "Partial answer"
    assert evs[-1] == {"type": "error", "data": "upstream died"}
    assert all(e["type"] != "end" for e in evs)
    empty = lines(submit(emu, stream=True))
    assert len(empty) == 1 and final(empty)["reply"] == ""


def test_mid_stream_reset_and_hang(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [Reply.sequence("Yo", Reply.reset()), Reply.sequence("Hi", Reply.hang(0.05))]
    )
    body = {"botId": "default", "newMessage": "x", "stream": True}
    for text in ("Yo", "Hi"):
        data = raw_post(emu, body)
        assert f'data: {{"type":"live","data":"{text}"}}'.encode() in data
        assert b'"type":"end"' not in data
        assert not data.endswith(b"0\r\n\r\n")  # no clean end of the chunked body


def test_faults_replace_the_submit_reply(emu: Emulator) -> None:
    emu.responder = ScriptedResponder(
        [
            Reply.raw(502, "<h1>Bad gateway</h1>"),
            Reply.drip('data: {"type":"live","data":"x"}\n\n', 0.001),
            Reply.reset(),
            Reply.checkbox(),
        ]
    )
    bad = submit(emu, stream=True)
    assert (bad.status, bad.body) == (502, b"<h1>Bad gateway</h1>")
    assert lines(submit(emu, stream=True)) == [{"type": "live", "data": "x"}]
    with pytest.raises((ConnectionError, OSError)):
        submit(emu)
    assert json.loads(submit(emu).body)["reply"] == "Du musst das Kästchen anklicken!"


def test_default_echo_responder(emu: Emulator) -> None:
    assert json.loads(submit(emu, "Translate: hello").body)["reply"] == (
        "This answer comes from the local chatgpt.es emulator. You wrote: Translate: hello"
    )


# --- new_token (B.2, C.3 item 8) ---------------------------------------------------------------


def test_new_token_when_the_nonce_is_from_the_previous_tick(emu: Emulator) -> None:
    old = emu.current_nonce()
    assert "new_token" not in json.loads(submit(emu, nonce=old).body)
    emu.advance(TICK)
    fresh = emu.current_nonce()
    assert fresh != old
    answer = submit(emu, nonce=old)
    body = json.loads(answer.body)
    assert body["new_token"] == fresh
    assert list(body)[-1] == "new_token"
    assert answer.headers["X-WP-Nonce"] == fresh
    assert final(lines(submit(emu, nonce=old, stream=True)))["new_token"] == fresh
    rejected = submit(emu, "", nonce=old)
    assert (rejected.status, json.loads(rejected.body)) == (
        403,
        {"success": False, "message": REJECTED, "new_token": fresh},
    )
    too_long = json.loads(submit(emu, "a" * 513, nonce=old).body)
    assert too_long == {"success": False, "message": REJECTED, "new_token": fresh}
    assert lines(submit(emu, "a" * 513, nonce=old, stream=True)) == [
        {"type": "error", "data": REJECTED}  # never in error lines
    ]
    assert "new_token" not in json.loads(submit(emu, nonce=fresh).body)


# --- request log, other plugins, CLI (C.3) -----------------------------------------------------


def test_request_log(emu: Emulator) -> None:
    request(emu.base_url)
    session = post_json(emu, SESSION)
    sid = json.loads(session.body)["sessionId"]
    submit(emu, headers={"Cookie": f"mwai_session_id={sid}"})
    request(emu.base_url + SUBMIT, "OPTIONS")
    request(emu.base_url + "/?rest_route=/")
    page, started, submitted, options, index = emu.requests
    assert emu.page_requests() == [page]
    assert emu.session_requests() == [started]
    assert emu.submit_requests() == emu.chat_requests() == [submitted]
    assert emu.rest_requests() == [started, submitted, options, index]
    assert (page.route, started.route, submitted.route, index.route) == (
        "",
        "/mwai/v1/start_session",
        "/mwai-ui/v1/chats/submit",
        "/",
    )
    assert submitted.json["newMessage"] == "Hola"
    assert submitted.json["messages"][0]["who"] == "AI: "
    assert submitted.cookies == {"mwai_session_id": sid}
    assert submitted.headers["x-wp-nonce"] == emu.current_nonce()
    assert (submitted.nonce_valid, started.nonce_valid, page.nonce_valid) == (True, None, None)
    assert started.json is None and page.json is None
    emu.clear()
    assert emu.requests == []


def test_clear_forgets_the_custom_transients() -> None:
    with Emulator(plugin="mwai", mwai=MwaiOptions(custom_bots=("c1",)), responder=Capture()) as emu:
        request(emu.base_url)
        assert submit(emu, "x" * 600, botId=None, customId="c1").status == 200
        emu.clear()
        assert submit(emu, "x" * 600, botId=None, customId="c1").status == 500  # default bot


def test_other_plugins_answer_a_sequence_with_mwai_events_by_its_text() -> None:
    from .conftest import chat_fields
    from .conftest import post as legacy_post

    with Emulator() as emu:
        emu.responder = ScriptedResponder(
            [Reply.sequence(Reply.mwai_event("thinking", "hm"), "Hi")]
        )
        assert json.loads(legacy_post(emu, chat_fields(emu)).body)["data"] == "Hi"


def test_cli_plugin_mwai() -> None:
    args = ("--plugin", "mwai", "--mwai-bot", "sales", "--rest-url-style", "plain")
    with emulator_cli(*args, "--max-length", "100", "--no-stream-option") as (proc, base_url):
        (found,) = containers(request(base_url).text)
        assert found["system"]["botId"] == "sales"
        assert found["system"]["restUrl"] == base_url + "/index.php?rest_route="
        assert found["system"]["stream"] is False
        assert found["params"]["textInputMaxLength"] == 100
        session = request(
            base_url + "/index.php?rest_route=/mwai/v1/start_session",
            "POST",
            b"",
            {"Content-Type": "application/json"},
        )
        assert json.loads(session.body)["success"] is True
        assert stop(proc) == 0
