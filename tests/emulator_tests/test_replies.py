"""Every Reply kind, as JSON and as an event stream, byte for byte."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlencode

import pytest

from langchain_chatgptes.emulator import Emulator, Reply, ScriptedResponder
from langchain_chatgptes.emulator._plugin import ACTION, AJAX_PATH

from .conftest import chat_fields, post

GREETING = (
    "Converse as if you were an AI assistant. Answer the question as truthfully as possible "
    "using the provided text. Tone: professional"
)
CORE_HEADERS = {
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Expires": "Wed, 11 Jan 1984 05:00:00 GMT",
}


def events(body: bytes) -> list[str]:
    """Split an event stream into its blocks (an independent, minimal reading)."""
    text = body.decode("utf-8")
    blocks = text.split("\n\n")
    assert blocks[-1] == ""
    return blocks[:-1]


def deltas(body: bytes) -> list[str]:
    out = []
    for block in events(body):
        if block.startswith("data: {"):
            choice = json.loads(block[6:])["choices"][0]
            if choice["delta"].get("content"):
                out.append(choice["delta"]["content"])
    return out


def reply_to(emu: Emulator, reply: Reply | str) -> tuple[int, http.client.HTTPMessage, bytes]:
    emu.responder = ScriptedResponder([reply])
    answer = post(emu, chat_fields(emu))
    return answer.status, answer.headers, answer.body


def test_json_success_bytes(emu: Emulator) -> None:
    status, headers, body = reply_to(emu, 'a/b "ü" 😀\nend')
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=UTF-8"
    assert body == (
        b'{"status":"success","msg":"Something went wrong","greeting_message":"'
        + GREETING.encode()
        + b'","data":"a\\/b \\"\\u00fc\\" \\ud83d\\ude00\\nend","log":false}'
    )
    for name, value in CORE_HEADERS.items():
        assert headers[name] == value
    assert headers["Cache-Control"] == "no-cache, must-revalidate, max-age=0"


@pytest.mark.parametrize(
    "answer",
    [
        "Hello there, how are you today?",
        "Hola 你好世界\uff0c这是一个测试 😀👨‍👩‍👧 ok",
        "line one\n\n  indented\ttab\r\nend  ",
        "x",
    ],
)
def test_sse_concatenation_is_exact(emu: Emulator, answer: str) -> None:
    emu.stream = True
    status, headers, body = reply_to(emu, answer)
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert headers["X-Robots-Tag"] == "noindex"
    assert "".join(deltas(body)) == answer
    blocks = events(body)
    assert blocks[-1] == "data: [DONE]"
    last = json.loads(blocks[-2][6:])
    assert last["object"] == "chat.completion.chunk"
    assert last["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(block.startswith("data: ") for block in blocks)


def test_sse_splits_into_several_pieces(emu: Emulator) -> None:
    emu.stream = True
    _, _, body = reply_to(emu, "The quick brown fox jumps over the lazy dog")
    assert len(deltas(body)) >= 5
    assert "gpt-4o-mini" in body.decode()


def test_chunk_delay_delivers_incrementally(emu: Emulator) -> None:
    emu.stream, emu.chunk_delay = True, 0.1
    emu.responder = ScriptedResponder(["one two three"])
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    start = time.monotonic()
    conn.request(
        "POST",
        AJAX_PATH,
        urlencode(chat_fields(emu)),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    resp = conn.getresponse()
    arrivals = []
    data = b""
    while chunk := resp.read1(65536):
        arrivals.append(time.monotonic() - start)
        data += chunk
    conn.close()
    # role chunk, 3 pieces, finish chunk, [DONE]: 5 pauses of 0.1 s
    assert arrivals[0] < 0.09
    assert arrivals[-1] >= 0.45
    assert len(arrivals) >= 4
    assert "".join(deltas(data)) == "one two three"


def test_legacy_trailing_json(emu: Emulator) -> None:
    emu.stream, emu.legacy_trailing_json = True, True
    _, _, body = reply_to(emu, "Hi/there")
    head, _, tail = body.decode().partition("data: [DONE]\n\n")
    assert "".join(deltas(head.encode())) == "Hi/there"
    assert tail.startswith('{"status":"success","msg":"Something went wrong"')
    assert json.loads(tail)["data"] == "Hi/there"


WORDS = [
    'event: message\ndata: {"choices":[{"delta":{"content":"Upstream"}}]}\n\n',
    'event: message\ndata: {"choices":[{"delta":{"content":" is"}}]}\n\n',
    'event: message\ndata: {"choices":[{"delta":{"content":" d\\u00f6wn"}}]}\n\n',
]
CASES = [
    (
        Reply.site_error("Upstream is döwn"),
        '{"status":"error","msg":"Upstream is d\\u00f6wn","greeting_message":"'
        + GREETING
        + '","log":false}',
        # Twice: a real 2.2 site streams the block again (legacy-upstream-500-stream.txt).
        ("".join(WORDS) + 'data: {"choices":[{"finish_reason":"stop"}]}\n\n') * 2,
    ),
    (
        Reply.exception("Upstream is döwn"),
        '{"status":"error","msg":"Upstream is d\\u00f6wn","greeting_message":"'
        + GREETING
        + '","log":false}',
        "".join(WORDS) + "data: [LIMITED]\n\n",
    ),
    (
        Reply.token_limit(),
        '{"msg":"You have reached your token limit.","tokenLimitReached":true}',
        'data: {"msg":"You have reached your token limit.","tokenLimitReached":true}\n\n',
    ),
    (
        Reply.flag("ipBanned", "Go away"),
        '{"status":"error","msg":"Go away"}',
        'data: {"msg":"Go away","ipBanned":true}\n\n',
    ),
    (
        Reply.flag("messageFlagged", "Bad words"),
        '{"status":"error","msg":"Bad words"}',
        'data: {"msg":"Bad words","messageFlagged":true}\n\n',
    ),
]


@pytest.mark.parametrize(("reply", "as_json", "as_stream"), CASES)
def test_reply_kinds(emu: Emulator, reply: Reply, as_json: str, as_stream: str) -> None:
    status, headers, body = reply_to(emu, reply)
    assert (status, headers["Content-Type"]) == (200, "application/json; charset=UTF-8")
    assert body.decode() == as_json
    emu.stream = True
    status, headers, body = reply_to(emu, reply)
    assert (status, headers["Content-Type"]) == (200, "text/event-stream")
    assert body.decode() == as_stream


def test_an_upstream_error_is_streamed_twice_as_a_real_site_does(emu: Emulator) -> None:
    # The body of shared/reference/real-plugins/legacy-upstream-500-stream.txt, verbatim.
    block = (
        'event: message\ndata: {"choices":[{"delta":{"content":"Fake"}}]}\n\n'
        'event: message\ndata: {"choices":[{"delta":{"content":" upstream"}}]}\n\n'
        'event: message\ndata: {"choices":[{"delta":{"content":" failure"}}]}\n\n'
        'event: message\ndata: {"choices":[{"delta":{"content":" (500)"}}]}\n\n'
        'data: {"choices":[{"finish_reason":"stop"}]}\n\n'
    )
    emu.stream = True
    status, headers, body = reply_to(emu, Reply.site_error("Fake upstream failure (500)"))
    assert (status, headers["Cache-Control"]) == (200, "no-cache")
    assert body.decode() == block + block


@pytest.mark.parametrize("stream", [False, True])
def test_checkbox_reply_is_json_in_both_modes(emu: Emulator, stream: bool) -> None:
    emu.stream = stream
    _status, headers, body = reply_to(emu, Reply.checkbox())
    assert headers["Content-Type"] == "application/json; charset=UTF-8"
    assert b'"data":"Du musst das K\\u00e4stchen anklicken!"' in body
    assert json.loads(body)["status"] == "success"


@pytest.mark.parametrize("stream", [False, True])
def test_raw_reply_is_verbatim(emu: Emulator, stream: bool) -> None:
    emu.stream = stream
    raw = Reply.raw(502, "<h1>Bad gateway</h1>", headers={"Retry-After": "7"})
    status, headers, body = reply_to(emu, raw)
    assert (status, body) == (502, b"<h1>Bad gateway</h1>")
    assert headers["Content-Type"] == "text/html; charset=UTF-8"
    assert headers["Retry-After"] == "7"
    assert "X-Robots-Tag" not in headers


def test_actions(emu: Emulator) -> None:
    widget = post(emu, chat_fields(emu, action="wpaicg_chatbox_message"))
    assert json.loads(widget.body)["status"] == "success"
    assert ACTION == "wpaicg_chat_shortcode_message"
