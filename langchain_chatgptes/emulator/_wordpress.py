"""The bits of WordPress core and the AI Power plugin the emulator re-implements.

Each function mirrors one PHP function (named in its docstring) closely enough that the
client meets the same quirks as on the real site: nonce ticks, ``json_encode`` escaping,
``sanitize_text_field`` and the plugin's lossy history parsing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from langchain_chatgptes.emulator._plugin import GREETING

NOCACHE_HEADERS = {
    "Expires": "Wed, 11 Jan 1984 05:00:00 GMT",
    "Cache-Control": "no-cache, must-revalidate, max-age=0",
}
"""``nocache_headers()``, sent by admin-ajax.php for every registered action."""


def request_action(query: Mapping[str, str], form: Mapping[str, str]) -> str:
    """``$_REQUEST['action']`` of an admin-ajax request: the body's wins over the query's."""
    return {**query, **form}.get("action", "")


def origin_headers(origin: str, site_url: str) -> dict[str, str]:
    """``send_origin_headers()`` of admin-ajax.php: only the site's own origin is echoed.

    Over http or https, with or without the port (``get_allowed_http_origins``).
    """
    site = urlsplit(site_url)
    allowed = {
        f"{scheme}://{host}"
        for scheme in ("http", "https")
        for host in (site.hostname, site.netloc)
    }
    if origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}
    return {}


def api_link(rest_root: str) -> str:
    """The ``Link`` header WordPress sends with pages and REST replies (the REST API's root)."""
    return f'<{rest_root}>; rel="https://api.w.org/"'


def create_nonce(secret: str, action: str, now: float, life: float) -> str:
    """``wp_create_nonce`` for a guest (uid 0, no session token)."""
    return _nonce_for_tick(secret, action, math.ceil(now / (life / 2)))


def verify_nonce(nonce: str, secret: str, action: str, now: float, life: float) -> bool:
    """``wp_verify_nonce``: the current tick and the previous one are valid."""
    tick = math.ceil(now / (life / 2))
    return bool(nonce) and any(
        hmac.compare_digest(nonce, _nonce_for_tick(secret, action, t)) for t in (tick, tick - 1)
    )


def _nonce_for_tick(secret: str, action: str, tick: int) -> str:
    digest = hmac.new(secret.encode(), f"{tick}|{action}|0|".encode(), hashlib.md5)
    return digest.hexdigest()[-12:-2]


def php_json(obj: Any) -> str:
    r"""``json_encode`` with default flags: compact, ``\/`` and ``\uXXXX`` escapes."""
    # "/" can only occur inside JSON strings, so escaping it afterwards is safe.
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


_LONE_LT = re.compile(r"<[^>]*?((?=<)|>|$)", re.S)
_SCRIPT_STYLE = re.compile(r"<(script|style)[^>]*?>.*?</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]*>", re.S)
_OCTET = re.compile(r"%[a-f0-9]{2}", re.I)
_PHP_TRIM = " \t\n\r\0\x0b"


def sanitize_text_field(text: str, *, keep_newlines: bool = False) -> str:
    """``sanitize_text_field`` (or ``sanitize_textarea_field`` with ``keep_newlines``)."""
    if "<" in text:
        # wp_pre_kses_less_than: a "<" that starts no tag is escaped instead of eating text.
        text = _LONE_LT.sub(lambda m: m[0] if ">" in m[0] else _esc_html(m[0]), text)
        text = _TAG.sub("", _SCRIPT_STYLE.sub("", text)).strip(_PHP_TRIM)  # wp_strip_all_tags
    if not keep_newlines:
        text = re.sub(r"[\r\n\t ]+", " ", text)
    text = text.strip(_PHP_TRIM)
    found = False
    while match := _OCTET.search(text):
        text, found = text.replace(match[0], ""), True
    return re.sub(" +", " ", text).strip(_PHP_TRIM) if found else text


def _esc_html(text: str) -> str:
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        text = text.replace(char, entity)
    return text.replace("'", "&#039;")


def esc_url(url: str) -> str:
    """``esc_url`` for display: drop unsafe characters, encode ``&`` and ``'``."""
    url = re.sub(
        r"[^a-z0-9\-~+_.?#=!&;,/:%@$|*'()\[\]\x80-\U0010ffff]",
        "",
        url.replace(" ", "%20"),
        flags=re.I,
    )
    return url.replace("&amp;", "&").replace("&", "&#038;").replace("'", "&#039;")


def upstream_messages(history: str, message: str, *, keep_newlines: bool) -> list[dict[str, str]]:
    """The message list the plugin sends upstream, built from ``wpaicg_chat_history``.

    The plugin sanitises the history, removes every backslash (destroying JSON escapes),
    ``json_decode`` s it (anything but a list counts as empty), appends the current turn and
    maps ``"Human: "`` items to user turns and everything else to assistant turns.
    """
    try:
        items = json.loads(
            sanitize_text_field(history, keep_newlines=keep_newlines).replace("\\", "")
        )
    except ValueError:
        items = []
    if not isinstance(items, list):
        items = []
    messages = [{"role": "user", "content": GREETING}]
    for item in [*items, f"Human: {message}"]:
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            continue
        if text.startswith("Human: "):
            role, content = "user", text[len("Human: ") :]
        else:
            role, content = "assistant", text.replace("AI: ", "")
        if content:
            messages.append({"role": role, "content": content})
    return messages


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """PHP's ``$_POST``: urlencoded or multipart fields, later duplicates winning; files skipped."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if mime != "multipart/form-data":
        return {}
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    form: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and part.get_filename() is None and isinstance(payload, bytes):
            form[name] = payload.decode(part.get_content_charset() or "utf-8", "replace")
    return form


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n"}
_JSON_ESCAPES.update({"\r": "\\r", "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_HEX_ESCAPES = {'"': "\\u0022", "<": "\\u003C", ">": "\\u003E", "'": "\\u0027", "&": "\\u0026"}


def _php_string(text: str, hex_flags: bool) -> str:
    escapes = {**_JSON_ESCAPES, **_HEX_ESCAPES} if hex_flags else _JSON_ESCAPES
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def php_json_unicode(obj: Any, *, hex_flags: bool = False) -> str:
    r"""``json_encode($x, JSON_UNESCAPED_UNICODE [| JSON_HEX_TAG|APOS|AMP|QUOT])``.

    UTF-8 stays raw; ``/`` is ``\/``; U+2028/U+2029 are still escaped (PHP needs
    ``JSON_UNESCAPED_LINE_TERMINATORS`` to keep them); with ``hex_flags`` ``< > ' & "``
    inside strings are ``\u003C \u003E \u0027 \u0026 \u0022`` (upper-case hex, as PHP writes
    them). Python lists and tuples are JSON arrays, dicts objects (an empty dict is ``{}``).
    """
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, int | float):
        return json.dumps(obj)
    if isinstance(obj, str):
        return _php_string(obj, hex_flags)
    if isinstance(obj, list | tuple):
        return "[" + ",".join(php_json_unicode(item, hex_flags=hex_flags) for item in obj) + "]"
    if isinstance(obj, dict):
        items = (
            _php_string(str(key), hex_flags) + ":" + php_json_unicode(value, hex_flags=hex_flags)
            for key, value in obj.items()
        )
        return "{" + ",".join(items) + "}"
    raise TypeError(f"not JSON-encodable: {obj!r}")


def esc_attr(text: str) -> str:
    """``esc_attr``: ``& < > " '`` as entities (an existing entity is not encoded again)."""
    text = re.sub(r"&(?!(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]*);)", "&amp;", text, flags=re.I)
    for char, entity in (("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#039;")):
        text = text.replace(char, entity)
    return text


def sanitize_key(key: str) -> str:
    """``sanitize_key``: lower-cased, only ``[a-z0-9_-]`` kept."""
    return re.sub(r"[^a-z0-9_\-]", "", key.lower())


def absint(value: str) -> int:
    """``absint`` of a request string: its leading integer, made non-negative (0 if none)."""
    match = re.match(r"\s*[+-]?\d+", value)
    return abs(int(match[0])) if match else 0


# --- PHP and WordPress REST details used by the AI Engine mode --------------------------------


def _php_float(number: float) -> str:
    """A float as PHP >= 7.1 ``json_encode`` writes it (``serialize_precision = -1``).

    The shortest round-trip digits, like Python's ``repr``, but a whole number has no
    ``.0`` (no ``JSON_PRESERVE_ZERO_FRACTION``: ``512.0`` is ``512``, as a real AI Engine
    page shows, ``real-plugins.md``), an exponent keeps ``.0`` in the mantissa and has no
    padding (``4.0e-5``, ``1.0e+25``), and PHP only switches to it above 17 integer digits.
    """
    if math.isnan(number) or math.isinf(number):
        raise ValueError("json_encode cannot encode NAN or INF")
    text = repr(number)
    if "e" not in text:
        return text.removesuffix(".0")
    mantissa, exponent = text.split("e")
    power = int(exponent)
    if 0 <= power < 17:  # Python goes exponential from 1e16, PHP from 1e17
        return str(int(number))
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{'+' if power >= 0 else '-'}{abs(power)}"


def php_encode(obj: Any) -> str:
    r"""``json_encode($x)`` with default flags, floats included (see :func:`php_json`).

    ``/`` is ``\/``, non-ASCII is ``\uXXXX`` (surrogate pairs above U+FFFF), a whole float
    is written as an integer; a tuple or list is an array, a dict an object (an empty one
    ``{}``).
    """
    if obj is None or isinstance(obj, bool | int | str):
        return php_json(obj)
    if isinstance(obj, float):
        return _php_float(obj)
    if isinstance(obj, list | tuple):
        return "[" + ",".join(php_encode(item) for item in obj) + "]"
    if isinstance(obj, dict):
        items = (php_json(str(key)) + ":" + php_encode(value) for key, value in obj.items())
        return "{" + ",".join(items) + "}"
    raise TypeError(f"not JSON-encodable: {obj!r}")


def htmlspecialchars(text: str) -> str:
    """``htmlspecialchars($text, ENT_QUOTES, 'UTF-8')``: every ``& " ' < >``, entities included."""
    for char, entity in (("&", "&amp;"), ('"', "&quot;"), ("'", "&#039;"), ("<", "&lt;")):
        text = text.replace(char, entity)
    return text.replace(">", "&gt;")


_NUMERIC = re.compile(r"[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*")


def is_numeric(value: Any) -> bool:
    """PHP 8 ``is_numeric``: numbers, and strings that are a decimal number (blanks allowed)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _NUMERIC.fullmatch(value) is not None


def php_truthy(value: Any) -> bool:
    """PHP's truth of a decoded JSON value: ``"0"``, ``""``, ``0``, ``[]`` and null are false."""
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def php_string(value: Any) -> str | None:
    """``(string) $value`` of a ``json_decode`` d scalar; None for an array (a PHP TypeError)."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, int | str):
        return str(value)
    return None


def php_trim(text: str) -> str:
    r"""PHP ``trim``: strips `` \t\n\r\0\x0B`` only."""
    return text.strip(_PHP_TRIM)


def parse_cookies(header: str) -> dict[str, str]:
    """PHP's ``$_COOKIE`` from a ``Cookie`` header: values url-decoded, the first of a name wins."""
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = unquote(value.strip())
    return cookies


# The pattern as WordPress has it ("&-^" is a range there too).
_JSON_MEDIA = re.compile(r"(^|\s|,)application/([\w!#$&-^.+]+\+)?json(\+oembed)?($|\s|;|,)", re.I)


def is_json_media_type(content_type: str) -> bool:
    """``wp_is_json_media_type``: whether ``WP_REST_Request`` parses the body as JSON."""
    return _JSON_MEDIA.search(content_type) is not None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # PHP's json_decode knows no NaN / Infinity


JSON_ERROR_SYNTAX = (4, "Syntax error")
JSON_ERROR_UTF8 = (5, "Malformed UTF-8 characters, possibly incorrectly encoded")
"""``json_last_error()`` / ``json_last_error_msg()`` pairs."""


def json_params(content_type: str, body: bytes) -> tuple[Any, tuple[int, str] | None]:
    """``WP_REST_Request::get_json_params`` and its ``parse_json_params`` check.

    Returns:
        ``(params, None)``: the decoded body (None when the body is empty or not JSON typed),
        or ``(None, (code, message))`` as ``json_last_error()`` and ``json_last_error_msg()``
        when a JSON-typed body does not decode (the REST server answers 400
        ``rest_invalid_json``).
    """
    if not is_json_media_type(content_type) or not body:
        return None, None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, JSON_ERROR_UTF8
    try:
        return json.loads(text, parse_constant=_no_constants), None
    except ValueError:
        return None, JSON_ERROR_SYNTAX
