"""The hostile-input suite: generated pages and replies, and the trust rule's invariants.

Hypothesis writes chat pages of all three plugins whose endpoints have odd schemes, hosts,
ports and forms (relative, scheme-relative, with credentials, with control characters),
with nested quotes and escapes in ``data-config`` / ``data-system``, huge attributes, and
decoy boxes in comments, templates and element text; the page itself may redirect
anywhere; every other reply is a success, an error or a redirect with a marked body. The
policy layer runs each call through a recording adapter (no sockets), and whatever happens:

* nothing is sent outside the page's final origin (or its https upgrade), and nothing but
  http(s) is ever requested (so no local file is read, no internal service written to);
* every failure is a ``ChatGptEsError`` and a LangChain ``ModelError``;
* a refused redirect never quotes the redirect's body.

That parsing stays linear in the page's size is checked in ``test_linear_parsing``.
"""

from __future__ import annotations

import asyncio
import html
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.exceptions import ModelError

from langchain_chatgptes import ChatGptEsError, RefusedRedirectError
from langchain_chatgptes._conversation import ChatInput, Turn, Visitor
from langchain_chatgptes._policy import Pipeline, Settings
from langchain_chatgptes._site_cache import SiteCache
from langchain_chatgptes._trust import TrustRule, host_entry, origin_of
from langchain_chatgptes.protocols._base import HttpRequest

from .scripted import Scripted, ScriptedAdapter

PAGE_URL = "http://site.example/chat/"
SECRET = "SECRET-BODY-91c2"
EXAMPLES = 300
CHAT = ChatInput((Turn("user", "User", "hi"),), "", Visitor("0123456789", "uuid"))

hosts = st.sampled_from(
    [
        "site.example",
        "SITE.example",
        "other.example",
        "127.0.0.1",
        "localhost",
        "[::1]",
        "169.254.169.254",
        "site.example.evil",
        "xn--nda-6ma2c.es",
        "ñandú.es",
        "[",
        "[::1",
        "[zz]",
        "site.example.",
        "%73ite.example",
    ]
)
schemes = st.sampled_from(
    ["http", "https", "HTTP", "file", "gopher", "dict", "ftp", "javascript", "data", "ws"]
)
ports = st.sampled_from(["", ":80", ":443", ":8080", ":0", ":99999", ":abc", ":6379"])
paths = st.sampled_from(
    ["/wp-admin/admin-ajax.php", "/wp-json", "/etc/passwd", "/_SET%20x%201", "/", ""]
)
oddities = st.sampled_from(["", "user:pass@", " ", "\r\n", "\t", "\x00", "#frag", "?q=1"])


@st.composite
def urls(draw: st.DrawFn) -> str:
    """An endpoint as a page might name it: absolute, relative or broken."""
    form = draw(st.integers(0, 4))
    path = draw(paths)
    if form == 0:
        return path or "/"
    if form == 1:
        return f"//{draw(hosts)}{draw(ports)}{path}"
    if form == 2:
        return draw(st.text(max_size=40))
    odd = draw(oddities)
    userinfo, rest = (odd, "") if "@" in odd else ("", odd)
    return f"{draw(schemes)}://{userinfo}{draw(hosts)}{draw(ports)}{path}{rest}"


junk = st.text(
    alphabet=st.sampled_from(list("a\"'\\<>&;/{}[]-!é\u2028")) | st.characters(), max_size=30
)


@st.composite
def boxes(draw: st.DrawFn, endpoint: str) -> str:
    """One chat box of a random plugin naming ``endpoint``, with junk in its JSON."""
    plugin = draw(st.sampled_from(["wpaicg", "aipkit", "mwai"]))
    extra = {
        draw(junk): draw(junk | st.integers() | st.none()) for _ in range(draw(st.integers(0, 3)))
    }
    huge = "x" * draw(st.sampled_from([0, 0, 70_000]))
    if plugin == "wpaicg":
        params = json.dumps({"ajax_url": endpoint, "search_nonce": "abc123", **extra})
        return (
            '<div class="wpaicg-chat-shortcode" data-nonce="abc123" data-post-id="7" '
            f'data-bot-id="0" data-openai_stream_nav="{draw(st.sampled_from("01"))}" '
            f'data-huge="{huge}"></div><script>var wpaicgParams = {params};</script>'
        )
    if plugin == "aipkit":
        config = {"botId": 5, "ajaxUrl": endpoint, "nonce": "n1", "postId": 7, **extra}
        attribute = html.escape(json.dumps(config), quote=True)
        return f'<div class="aipkit_chat_container" data-config="{attribute}" x="{huge}"></div>'
    nonce = draw(st.sampled_from(["n2", None]))  # None: a session is started first
    system = {"botId": "default", "restUrl": endpoint, "restNonce": nonce, **extra}
    attribute = html.escape(json.dumps(system), quote=True)
    return (
        f'<div class="mwai-chatbot-container" data-system="{attribute}" data-params="{{}}"></div>'
    )


own_endpoints = st.sampled_from(
    [
        "/wp-admin/admin-ajax.php",
        "http://site.example/wp-admin/admin-ajax.php",
        "https://site.example/wp-admin/admin-ajax.php",
        "/wp-json",
        "http://SITE.example:80/wp-json",
        "/index.php?rest_route=",
    ]
)


@st.composite
def pages(draw: st.DrawFn) -> str:
    """A page: decoys where a browser shows nothing, then the real box (or none)."""
    hidden = [
        "<!-- {} -->",
        "<template>{}</template>",
        '<script type="text/template">{}</script>',
        "<textarea>{}</textarea>",
        "<noscript>{}</noscript>",
        "<style>{}</style>",
    ]
    parts = [
        draw(st.sampled_from(hidden)).format(draw(boxes(draw(urls()))))
        for _ in range(draw(st.integers(0, 3)))
    ]
    if draw(st.integers(0, 4)):  # mostly a real box, mostly naming the site's own endpoint
        parts.append(draw(boxes(draw(st.one_of(own_endpoints, own_endpoints, urls())))))
    if draw(st.booleans()):
        parts.append(draw(junk))
    return "<html><body>" + "".join(parts) + "</body></html>"


@st.composite
def replies(draw: st.DrawFn) -> Scripted:
    """A reply to a chat, nonce or session request: success, failure or redirect."""
    status = draw(st.sampled_from([200, 200, 301, 302, 303, 307, 308, 400, 403, 404, 429, 500]))
    if 300 <= status < 400:
        headers = {"location": draw(urls().filter(str.strip))}
        body = f"<p>moved: {SECRET}</p>".encode()
    else:
        headers = {}
        body = draw(
            st.sampled_from(
                [
                    b'{"status":"success","data":"hello"}',
                    b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n',
                    b'{"success":true,"data":{"cache_key":"k1"}}',
                    b"event: done\ndata: {}\n\n",
                    b'data: {"type":"end","data":"{\\"success\\":true,\\"reply\\":\\"ok\\"}"}\n\n',
                    b'{"success":true,"restNonce":"n3"}',
                    b"0",
                    b"<html>error</html>",
                ]
            )
        )
    return Scripted(status, [body], headers)


class Site:
    """Answers the generated page (after an optional redirect) and the generated replies."""

    def __init__(self, page: str, page_redirect: str | None, answers: list[Scripted]) -> None:
        self.page = page
        self.page_redirect = page_redirect
        self.answers = answers
        self.served = 0

    def __call__(self, request: HttpRequest) -> Scripted:
        if request.step == "page":
            if self.page_redirect is not None and request.url == PAGE_URL:
                return Scripted(301, [SECRET.encode()], {"location": self.page_redirect})
            return Scripted(200, [self.page.encode()])
        answer = self.answers[self.served % len(self.answers)]
        self.served += 1
        return answer


def final_page_url(adapter: ScriptedAdapter) -> str:
    return [request.url for request in adapter.requests if request.step == "page"][-1]


async def run(site: Site) -> tuple[ScriptedAdapter, BaseException | None]:
    adapter = ScriptedAdapter(site)
    pipeline = Pipeline(Settings(PAGE_URL, timeout=5, max_retries=0), SiteCache(), adapter)
    try:
        async for _ in pipeline.chat(CHAT):
            pass
    except Exception as exc:
        return adapter, exc
    return adapter, None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    page=pages(),
    page_redirect=st.none() | st.none() | urls().filter(str.strip),
    answers=st.lists(replies(), min_size=1, max_size=4),
)
def test_a_hostile_site_never_chooses_where_requests_go(
    page: str, page_redirect: str | None, answers: list[Scripted]
) -> None:
    adapter, error = asyncio.run(run(Site(page, page_redirect, answers)))
    for request in adapter.requests:
        assert request.url.split(":", 1)[0] in ("http", "https"), request.url
    rule = TrustRule(final_page_url(adapter))
    for request in adapter.requests:
        if request.step != "page":
            assert rule.origin.admits(origin_of(request.url)), (request.step, request.url)
    if error is not None:
        assert isinstance(error, ChatGptEsError), repr(error)
        assert isinstance(error, ModelError)
        if isinstance(error, RefusedRedirectError):
            assert SECRET not in str(error)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    endpoint=urls(),
    allowed=st.lists(
        st.sampled_from(["other.example", "127.0.0.1", "[::1]", "ñandú.es"]), max_size=2
    ),
)
def test_the_rule_admits_http_on_the_site_or_an_allowed_host_only(
    endpoint: str, allowed: list[str]
) -> None:
    entries = tuple(host_entry(host) for host in allowed)
    rule = TrustRule(PAGE_URL, entries)
    try:
        admitted = rule.admit(endpoint)
    except ChatGptEsError as exc:
        refused: ChatGptEsError | None = exc
    else:
        refused = None
    if refused is not None:
        assert isinstance(refused, ModelError)
        assert not refused.is_retryable
        return
    origin = origin_of(admitted)
    assert origin.scheme in ("http", "https")
    assert "@" not in admitted.split("/")[2]  # no credentials
    assert not any(ch in admitted for ch in " \r\n\t\x00")
    # (the generated hosts carry no port: an entry is the bare host, IPv6 in brackets)
    assert rule.origin.admits(origin) or origin.host in {entry.strip("[]") for entry in entries}
