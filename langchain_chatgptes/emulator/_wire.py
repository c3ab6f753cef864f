"""How the plugin puts a :class:`Reply` on the wire: a JSON body or a list of SSE events."""

from __future__ import annotations

import json
import re
import secrets
import string

from langchain_chatgptes.emulator._plugin import (
    CHECKBOX_MESSAGE,
    GREETING,
    LIMIT_REACHED_MSG,
    STALE_MSG,
    TOKEN_LIMIT_KEY,
)
from langchain_chatgptes.emulator._wordpress import php_json
from langchain_chatgptes.emulator.responders import Reply

_PIECE = re.compile(r"\s*\S{1,4}|\s+")  # leading blanks + a few characters: token-sized pieces
_ID_CHARS = string.ascii_letters + string.digits


def success_object(answer: str) -> dict[str, object]:
    """The plugin's success JSON; ``msg`` is a stale initial value the plugin never clears."""
    return {
        "status": "success",
        "msg": STALE_MSG,
        "greeting_message": GREETING,
        "data": answer,
        "log": False,
    }


def json_body(reply: Reply) -> bytes:
    """The ``wp_send_json`` body for any reply but :meth:`Reply.raw`."""
    obj: dict[str, object]
    if reply.kind in ("text", "checkbox"):
        obj = success_object(reply.content if reply.kind == "text" else CHECKBOX_MESSAGE)
    elif reply.kind in ("site_error", "exception"):
        obj = {"status": "error", "msg": reply.content, "greeting_message": GREETING, "log": False}
    elif reply.kind == "token_limit":
        obj = {"msg": LIMIT_REACHED_MSG, TOKEN_LIMIT_KEY: True}
    else:
        obj = {"status": "error", "msg": reply.content}
    return php_json(obj).encode()


def split_answer(answer: str) -> list[str]:
    """Cut an answer into word-ish pieces whose concatenation is exactly the answer."""
    return _PIECE.findall(answer)


def sse_events(reply: Reply, *, created: int, legacy_trailing_json: bool) -> list[bytes] | None:
    """The event-stream rendering of a reply, or None when the plugin answers JSON anyway."""
    if reply.kind == "text":
        return _completion_events(reply.content, created, legacy_trailing_json)
    if reply.kind == "site_error":
        # Sent twice: a real 2.2 site streams the whole block again (real-plugins.md, legacy 1).
        return _error_words(reply.content, b'data: {"choices":[{"finish_reason":"stop"}]}\n\n') * 2
    if reply.kind == "exception":
        return _error_words(reply.content, b"data: [LIMITED]\n\n")
    if reply.kind == "token_limit":
        return [f"data: {php_json({'msg': LIMIT_REACHED_MSG, TOKEN_LIMIT_KEY: True})}\n\n".encode()]
    if reply.kind in ("ipBanned", "messageFlagged"):
        return [f"data: {php_json({'msg': reply.content, reply.kind: True})}\n\n".encode()]
    return None


def _error_words(message: str, end: bytes) -> list[bytes]:
    """An error streamed as one fake delta per word (§3.6), then ``end``."""
    words = [
        "event: message\ndata: "
        + php_json({"choices": [{"delta": {"content": (" " if i else "") + word}}]})
        + "\n\n"
        for i, word in enumerate(message.split(" "))
    ]
    return [word.encode() for word in words] + [end]


def _completion_events(answer: str, created: int, legacy_trailing_json: bool) -> list[bytes]:
    # Raw upstream OpenAI bytes, passed through by the plugin: UTF-8, not \u-escaped.
    chunk_id = "chatcmpl-" + "".join(secrets.choice(_ID_CHARS) for _ in range(29))

    def chunk(delta: dict[str, str], finish: str | None) -> bytes:
        obj = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": "gpt-4o-mini",
            "system_fingerprint": "fp_0ba0d124f1",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": piece}, None) for piece in split_answer(answer)]
    events += [chunk({}, "stop"), b"data: [DONE]\n\n"]
    if legacy_trailing_json:
        # 1.8.79-1.8.85 still called wp_send_json after streaming.
        events.append(php_json(success_object(answer)).encode())
    return events
