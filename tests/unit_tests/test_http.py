"""The adapter's pure helpers: the form body and the curl error map."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from curl_cffi.requests import exceptions as curl_exceptions
from hypothesis import given
from hypothesis import strategies as st

from langchain_chatgptes import InvalidInputError, RequestTimeoutError, TransportError
from langchain_chatgptes._http import form_body, map_errors
from langchain_chatgptes.protocols._base import HttpRequest

REQUEST = HttpRequest("POST", "https://site.example/wp-admin/admin-ajax.php")


@given(st.lists(st.tuples(st.text(), st.text()), max_size=6))
def test_form_body_is_urlencode_byte_for_byte(fields: list[tuple[str, str]]) -> None:
    fields = [(name, value) for name, value in fields if _encodable(name + value)]
    assert form_body(tuple(fields)) == urlencode(fields).encode()


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates are refused before a form is built
        return False
    return True


def test_form_body_of_the_legacy_fields() -> None:
    fields = (("_wpnonce", "a1b2c3d4e5"), ("message", "¿Qué tal? 100% & más\n<b>"))
    assert form_body(fields) == urlencode(fields).encode()


@pytest.mark.parametrize(
    ("raised", "expected", "attribute"),
    [
        (curl_exceptions.Timeout("curl: (28) timed out"), RequestTimeoutError, None),
        (TimeoutError(), RequestTimeoutError, None),
        (curl_exceptions.ProxyError("curl: (5) bad proxy"), TransportError, "at_proxy"),
        (curl_exceptions.ConnectionError("curl: (7) refused"), TransportError, None),
        (curl_exceptions.ImpersonateError("netscape4 unknown"), InvalidInputError, "setting"),
    ],
)
def test_curl_errors_are_mapped_in_one_place(
    raised: Exception, expected: type[Exception], attribute: str | None
) -> None:
    proxy = "http://alice:s3cret@proxy.example:3128"
    with pytest.raises(expected) as info, map_errors(REQUEST, 2.0, proxy):
        raise raised
    assert "s3cret" not in str(info.value)
    if attribute == "at_proxy":
        assert info.value.at_proxy is True  # type: ignore[attr-defined]
    if attribute == "setting":
        assert info.value.setting == "impersonate"  # type: ignore[attr-defined]
