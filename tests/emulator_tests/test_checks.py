"""admin-ajax framing and the plugin's checks, in the plugin's order."""

from __future__ import annotations

import json
import uuid

import pytest

from langchain_chatgptes.emulator import ChatRequest, Emulator, Reply, ScriptedResponder
from langchain_chatgptes.emulator._plugin import AJAX_PATH

from .conftest import chat_fields, post, request

IP_BANNED = b'{"status":"error","msg":"You are not allowed to access this feature."}'
WORD_BANNED = (
    b'{"status":"error","msg":"Your message contains prohibited words. '
    b'Please modify your message and try again."}'
)
TOKEN_LIMIT = b'{"msg":"You have reached your token limit.","tokenLimitReached":true}'
EMPTY = b'{"status":"error","msg":"It appears that nothing was inputted."}'


class Capture:
    """A responder that remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[ChatRequest] = []

    def __call__(self, request: ChatRequest) -> str:
        self.seen.append(request)
        return "ok"


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({"message": "hi"}, {}),
        ({"action": "nope", "message": "hi"}, {}),
        ({"action": "", "message": "hi"}, {}),
    ],
)
def test_missing_or_unknown_action_is_400_zero(
    emu: Emulator, fields: dict[str, str], headers: dict[str, str]
) -> None:
    answer = post(emu, {"_wpnonce": emu.current_nonce(), **fields}, headers)
    assert (answer.status, answer.body) == (400, b"0")
    assert answer.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert request(emu.base_url + AJAX_PATH).body == b"0"


def test_check_order_json_mode(emu: Emulator) -> None:
    emu.banned_ips, emu.banned_words, emu.token_limit = ["127.0.0.1"], ["Foo"], 0
    emu.responder = ScriptedResponder(["x" * 100] * 2)
    spent = chat_fields(emu, message="hi")
    emu.token_limit = None
    emu.banned_ips, emu.banned_words = [], []
    assert post(emu, spent).status == 200  # uses tokens for this client id
    emu.banned_ips, emu.banned_words, emu.token_limit = ["127.0.0.1"], ["Foo"], 0
    fields = {**spent, "message": "say foo"}
    assert post(emu, {**fields, "_wpnonce": "bad"}).status == 403
    assert post(emu, fields).body == IP_BANNED
    emu.banned_ips = []
    assert post(emu, fields).body == WORD_BANNED
    emu.banned_words = []
    assert post(emu, {**fields, "message": ""}).body == TOKEN_LIMIT
    emu.token_limit = None
    assert post(emu, {**fields, "message": ""}).body == EMPTY
    assert json.loads(post(emu, fields).body)["status"] == "success"


def test_banned_words_match_whole_space_separated_words(emu: Emulator) -> None:
    emu.banned_words = ["foo"]
    assert post(emu, chat_fields(emu, message="FOO bar")).body == WORD_BANNED
    allowed = post(emu, chat_fields(emu, message="food foo. foo\nbar"))
    assert json.loads(allowed.body)["status"] == "success"


def test_stream_mode_flags_do_not_stop_processing(emu: Emulator) -> None:
    emu.stream, emu.banned_words = True, ["foo"]
    emu.responder = ScriptedResponder(["Ok"])
    body = post(emu, chat_fields(emu, message="foo")).text
    flag = (
        'data: {"msg":"Your message contains prohibited words. Please modify your message and '
        'try again.","messageFlagged":true}\n\n'
    )
    assert body.startswith(flag)
    assert '"delta":{"content":"Ok"}' in body
    assert body.endswith("data: [DONE]\n\n")


def test_stream_mode_token_limit_and_empty_message(emu: Emulator) -> None:
    emu.stream, emu.token_limit = True, 0
    fields = chat_fields(emu)
    post(emu, fields)
    limited = post(emu, fields)
    assert limited.headers["Content-Type"] == "text/event-stream"
    assert limited.body == b"data: " + TOKEN_LIMIT + b"\n\n"
    empty = post(emu, chat_fields(emu, message=""))
    assert empty.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert empty.body == EMPTY


def test_token_limit_counts_per_client_and_only_above_limit(emu: Emulator) -> None:
    emu.token_limit = 21  # each exchange below costs int((50 + 50) / 100 * 21) = 21
    emu.responder = ScriptedResponder(["y" * 50] * 10)
    fields = chat_fields(emu, message="x" * 50)
    assert post(emu, fields).body != TOKEN_LIMIT  # used 0
    assert post(emu, fields).body != TOKEN_LIMIT  # used 21, not above 21
    assert post(emu, fields).body == TOKEN_LIMIT  # used 42
    assert post(emu, chat_fields(emu, message="x" * 50)).body != TOKEN_LIMIT  # new client id
    emu.clear()
    assert post(emu, fields).body != TOKEN_LIMIT


def test_checkbox_mode(emu: Emulator) -> None:
    emu.checkbox_field = "check_51710191"
    missing = json.loads(post(emu, chat_fields(emu)).body)
    assert missing["data"] == "Du musst das Kästchen anklicken!"
    assert json.loads(post(emu, chat_fields(emu, check_51710191="0")).body) == missing
    ticked = json.loads(post(emu, chat_fields(emu, check_51710191="1")).body)
    assert ticked["data"].startswith("This answer comes from the local chatgpt.es emulator.")


@pytest.mark.parametrize(
    ("mode", "page_blocked", "post_blocked"),
    [("get", True, False), ("post", False, True), ("both", True, True), ("off", False, False)],
)
def test_cloudflare_modes(emu: Emulator, mode: str, page_blocked: bool, post_blocked: bool) -> None:
    emu.cloudflare = mode  # type: ignore[assignment]
    for answer, blocked in (
        (request(emu.base_url), page_blocked),
        (post(emu, chat_fields(emu)), post_blocked),
    ):
        assert (answer.status == 403) is blocked
        if blocked:
            assert "<title>Just a moment...</title>" in answer.text
            assert answer.headers["cf-mitigated"] == "challenge"
            assert answer.headers["Server"] == "cloudflare"
        else:
            assert answer.status == 200


def test_cors(emu: Emulator) -> None:
    own = post(emu, chat_fields(emu), {"Origin": emu.base_url})
    assert own.headers["Access-Control-Allow-Origin"] == emu.base_url
    assert own.headers["Access-Control-Allow-Credentials"] == "true"
    foreign = post(emu, chat_fields(emu), {"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    preflight = request(
        emu.base_url + AJAX_PATH, "OPTIONS", headers={"Origin": "https://evil.example"}
    )
    assert preflight.status == 403
    own_preflight = request(emu.base_url + AJAX_PATH, "OPTIONS", headers={"Origin": emu.base_url})
    assert own_preflight.status == 200


def test_multipart_is_accepted(emu: Emulator) -> None:
    capture = Capture()
    emu.responder = capture
    fields = chat_fields(emu, message="Línea 1\r\nLínea 2 😀")
    boundary = "----WebKitFormBoundary" + uuid.uuid4().hex[:16]
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        )
        + f"--{boundary}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    answer = request(emu.base_url + AJAX_PATH, "POST", body, {"Content-Type": content_type})
    assert json.loads(answer.body)["data"] == "ok"
    assert capture.seen[0].message == "Línea 1\r\nLínea 2 😀"
    assert emu.chat_requests()[0].form == fields


def test_history_parsing(emu: Emulator) -> None:
    capture = Capture()
    emu.responder = capture
    history = json.dumps(
        ["Human: hi", {"id": "7", "text": "AI: hello AI: there"}, "AI: ", 5, "Human: now"]
    )
    post(emu, chat_fields(emu, message="now", wpaicg_chat_history=history))
    assert capture.seen[-1].upstream_messages[1:] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello there"},
        {"role": "user", "content": "now"},
        {"role": "user", "content": "now"},
    ]
    assert capture.seen[-1].upstream_messages[0]["role"] == "user"
    assert capture.seen[-1].upstream_messages[0]["content"].startswith("Converse as if you were")


@pytest.mark.parametrize(
    "history",
    [
        json.dumps(['Human: say "x"']),  # \" loses its backslash: invalid JSON
        json.dumps(["Human: caf\u00e9"]),  # \u00e9 becomes u00e9: parses, garbled
        "None",
        '{"a": "Human: x"}',
        "",
    ],
)
def test_history_backslash_stripping(emu: Emulator, history: str) -> None:
    capture = Capture()
    emu.responder = capture
    post(emu, chat_fields(emu, message="q", wpaicg_chat_history=history))
    upstream = capture.seen[-1].upstream_messages
    if "caf" in history:
        assert upstream[1] == {"role": "user", "content": "cafu00e9"}
    else:
        assert upstream[1:] == [{"role": "user", "content": "q"}]


def test_sanitize_modes(emu: Emulator) -> None:
    capture = Capture()
    emu.responder = capture
    message = "a <b>bold</b>\n\n  x < y %41 \\ok"
    post(emu, chat_fields(emu, message=message))
    emu.sanitize = "text_field"
    post(emu, chat_fields(emu, message=message))
    assert [r.message for r in capture.seen] == [message, "a bold x &lt; y \\ok"]
    assert post(emu, chat_fields(emu, message="<b></b> %20")).body == EMPTY


def test_extra_fields_ignored_and_visible(emu: Emulator) -> None:
    capture = Capture()
    emu.responder = capture
    post(emu, chat_fields(emu, check_51710191="1", chat_id="42", model="gpt-4o", bot_id="5"))
    assert capture.seen[0].form["chat_id"] == "42"
    assert capture.seen[0].client_id == emu.chat_requests()[0].form["wpaicg_chat_client_id"]


def test_reply_object_from_responder(emu: Emulator) -> None:
    emu.responder = lambda request: Reply.site_error(f"no {request.message}")
    assert json.loads(post(emu, chat_fields(emu, message="way")).body)["msg"] == "no way"
