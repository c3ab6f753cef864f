"""Construction checks: every setting a user gives is refused at once when it cannot work.

A setting that could only fail at call time (as ``TransportError`` "URL rejected", retried
with backoff although it never succeeds) is a ``ValidationError`` naming the field here.
No network: nothing is sent at construction.
"""

from __future__ import annotations

import math
import pickle

import pytest
from pydantic import ValidationError

from langchain_chatgptes import ChatChatGptEs, UntrustedEndpointError
from langchain_chatgptes._trust import TrustRule, host_entry, page_url, site_url
from langchain_chatgptes.chat_models import MAX_CONCURRENCY


@pytest.mark.parametrize(
    ("given", "kept", "page"),
    [
        ("https://chatgpt.es", "https://chatgpt.es", "https://chatgpt.es/"),
        ("https://chatgpt.es/", "https://chatgpt.es", "https://chatgpt.es/"),
        ("HTTPS://ChatGPT.es/Chat/", "https://chatgpt.es/Chat", "https://chatgpt.es/Chat/"),
        ("https://site.example/?lang=es", "https://site.example?lang=es", None),
        ("https://site.example/chat?lang=es&x=1", None, "https://site.example/chat/?lang=es&x=1"),
        ("https://site.example/#top", "https://site.example", "https://site.example/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://[::1]:8080/", "http://[::1]:8080", "http://[::1]:8080/"),
        ("https://ñandú.es/", "https://xn--and-6ma2c.es", "https://xn--and-6ma2c.es/"),
        ("https://site.example/página", "https://site.example/p%C3%A1gina", None),
    ],
)
def test_base_url_is_normalised_and_its_query_kept(
    given: str, kept: str | None, page: str | None
) -> None:
    model = ChatChatGptEs(base_url=given)
    (site,) = model.sites
    if kept is not None:
        assert model.base_url == site == kept
    if page is not None:
        assert page_url(site) == page
    assert page_url(site).endswith(("/", "?lang=es", "&x=1"))


def test_the_page_url_keeps_the_query_as_given() -> None:
    # The defect: ".../?lang=es" was fetched as ".../?lang=es/".
    assert page_url(site_url("https://site.example/?lang=es")) == "https://site.example/?lang=es"


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("chatgpt.es", "scheme is 'missing'"),
        ("ftp://chatgpt.es", "scheme is 'ftp'"),
        ("file:///etc/passwd", "scheme is 'file'"),
        ("https://", "names no host"),
        (" https://chatgpt.es", "whitespace or control"),
        ("https://chatgpt.es ", "whitespace or control"),
        ("https://chat gpt.es", "whitespace or control"),
        ("https://chatgpt.es/\r\nX-Injected: 1", "whitespace or control"),
        ("https://chatgpt.es\t", "whitespace or control"),
        ("https://chatgpt.es:99999", "port is not a number from 1 to 65535"),
        ("https://chatgpt.es:abc", "port is not a number from 1 to 65535"),
        ("https://chatgpt.es:0", "port is not a number from 1 to 65535"),
        ("https://exa%mple.com", "not a host name"),
    ],
)
def test_a_base_url_that_cannot_work_is_refused_at_construction(given: str, why: str) -> None:
    with pytest.raises(ValidationError, match="base_url") as info:
        ChatChatGptEs(base_url=given)
    assert why in str(info.value)


@pytest.mark.parametrize(
    "given",
    [
        "https://user:hunter2pass@site.example",
        "https://:hunter2pass@site.example/",
        # however it is written: a "/", "?", "#" or "@" in the password, no "//"
        "http://user:hunter2pass/x@site.example",
        "http://user:hunter2pass?x@site.example",
        "http://user:hunter2pass#x@site.example",
        "http://user:hunter2pass@x@site.example",
        "user:hunter2pass@site.example",
        "http:/user:hunter2pass@site.example",
        "http:\\\\user:hunter2pass@site.example",
    ],
)
def test_credentials_in_base_url_are_refused_and_never_shown(
    given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError) as info:
        ChatChatGptEs(base_url=given)
    text = str(info.value) + repr(info.value) + str(info.value.errors()) + info.value.json()
    assert "hunter2pass" not in text
    assert "credentials" in text
    monkeypatch.setenv("CHATGPTES_BASE_URL", given)  # from the environment too
    with pytest.raises(ValidationError) as info:
        ChatChatGptEs()
    assert "hunter2pass" not in str(info.value.errors()) + info.value.json()


def test_a_bad_base_url_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATGPTES_BASE_URL", "chatgpt.es")
    with pytest.raises(ValidationError, match="base_url"):
        ChatChatGptEs()


def test_what_the_model_shows_holds_no_credentials() -> None:
    # Credentials cannot be in base_url; the proxy's are a secret everywhere.
    model = ChatChatGptEs(proxy="http://user:hunter2pass@127.0.0.1:3128")
    shown = [
        repr(model),
        str(model),
        str(model._identifying_params),
        str(model._get_ls_params()),
        str(model.model_dump()),
        str(model.model_dump_json()),
        str(pickle.loads(pickle.dumps(model)).model_dump()),  # noqa: S301 (our own bytes)
    ]
    assert not [text for text in shown if "hunter2pass" in text]


@pytest.mark.parametrize("value", [math.inf, "inf", float("inf")])
def test_an_infinite_timeout_means_no_limit(value: object) -> None:
    assert ChatChatGptEs(timeout=value).timeout is None


@pytest.mark.parametrize("value", [0, -1, math.nan, -math.inf, 1e7, 1e300])
def test_a_timeout_that_cannot_work_is_refused(value: float) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        ChatChatGptEs(timeout=value)


def test_max_concurrency_is_bounded() -> None:
    assert ChatChatGptEs(max_concurrency=MAX_CONCURRENCY).max_concurrency == MAX_CONCURRENCY
    for value in (0, MAX_CONCURRENCY + 1, 4_000_000):
        with pytest.raises(ValidationError, match="max_concurrency"):
            ChatChatGptEs(max_concurrency=value)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("chat.example.com", "chat.example.com"),
        ("Chat.Example.COM:8443", "chat.example.com:8443"),
        ("[::1]", "[::1]"),
        ("[::1]:81", "[::1]:81"),
        ("ñandú.es", "xn--and-6ma2c.es"),
    ],
)
def test_allowed_hosts_are_host_names(given: str, kept: str) -> None:
    assert host_entry(given) == kept
    assert ChatChatGptEs(allowed_hosts=[given]).allowed_hosts == [host_entry(given)]


@pytest.mark.parametrize(
    "given",
    [
        "https://chat.example.com",
        "chat.example.com/path",
        "u:p@host",
        "",
        "a b",
        "h:x",
        "h:0",
        "site.com?x",
        "site.com#x",
        "site.com\\x",
    ],
)
def test_allowed_hosts_refuse_anything_else(given: str) -> None:
    with pytest.raises(ValidationError, match="allowed_hosts"):
        ChatChatGptEs(allowed_hosts=[given])


def test_an_allowed_host_without_a_port_allows_any_port_over_http_and_https() -> None:
    assert TrustRule("https://site.example/", ("[::1]",)).admit("http://[::1]:81/x")
    rule = TrustRule("https://site.example/", (host_entry("cdn.example"),))
    assert rule.admit("http://cdn.example:8080/x") == "http://cdn.example:8080/x"
    assert rule.admit("https://CDN.example/x") == "https://cdn.example/x"
    pinned = TrustRule("https://site.example/", (host_entry("cdn.example:8443"),))
    assert pinned.admit("https://cdn.example:8443/x")
    with pytest.raises(Exception, match="another site"):
        pinned.admit("https://cdn.example/x")


@pytest.mark.parametrize(
    ("page", "endpoint", "admitted"),
    [
        ("http://site.example/chat/", "https://site.example/wp-admin/admin-ajax.php", True),
        ("http://site.example:80/", "https://site.example:443/x", True),
        ("http://site.example/", "http://site.example:80/x", True),
        ("http://site.example:8080/", "https://site.example:8443/x", False),
        ("http://site.example:8080/", "https://site.example/x", False),
        ("https://site.example/", "http://site.example/x", False),  # no downgrade
        ("http://site.example/", "https://www.site.example/x", False),
        ("http://site.example/", "https://site.example.evil/x", False),
    ],
)
def test_an_http_page_may_be_upgraded_to_https_on_its_own_host_only(
    page: str, endpoint: str, admitted: bool
) -> None:
    rule = TrustRule(page)
    if admitted:
        assert rule.admit(endpoint)
    else:
        with pytest.raises(UntrustedEndpointError, match="another site"):
            rule.admit(endpoint)


def test_a_url_a_site_names_is_shown_without_its_credentials() -> None:
    from langchain_chatgptes._trust import mask_credentials

    assert mask_credentials("http://site.example/a@b") == "http://site.example/a@b"
    assert mask_credentials("http://u:pw@site.example/") == "http://***@site.example/"
    with pytest.raises(UntrustedEndpointError) as info:
        TrustRule("http://site.example/").admit("http://u:hunter2pass@other.example/x")
    assert "hunter2pass" not in str(info.value)


@pytest.mark.parametrize(
    "location", ["http://[", "//[::1", "http://a\tb/", "/x\r\nSet-Cookie: a=b"]
)
def test_an_unreadable_redirect_location_is_refused(location: str) -> None:
    from langchain_chatgptes import RefusedRedirectError
    from langchain_chatgptes._trust import redirect_location

    with pytest.raises(RefusedRedirectError, match="refused"):
        redirect_location("http://site.example/x", 302, {"location": location})


def test_a_location_is_kept_whole() -> None:
    from langchain_chatgptes._trust import redirect_location

    got = redirect_location("https://site.example/", 301, {"location": "/chat/?lang=es,en"})
    assert got == "https://site.example/chat/?lang=es,en"
