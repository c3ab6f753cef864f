"""The trust rule over real HTTP: a page or a reply never chooses where requests go.

Hostile pages and replies come from the emulator (``page_endpoint``, ``page_variant=
"decoys"``, redirecting replies); what reached which server is counted on the servers
themselves (pytest-socket cannot see libcurl's sockets): the site's emulator records every
request, a second emulator stands for "another host", and a bare TCP listener for an
internal service that ``gopher://`` or ``dict://`` would write to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from langchain_core.exceptions import ModelPermissionDeniedError

from langchain_chatgptes import (
    ChatChatGptEs,
    RefusedRedirectError,
    UntrustedEndpointError,
)
from langchain_chatgptes.emulator import (
    AipkitOptions,
    Emulator,
    MwaiOptions,
    Reply,
    ScriptedResponder,
    SilentSite,
)
from langchain_chatgptes.protocols import mwai

from .conftest import PATHS, call

Plugin = Literal["wpaicg", "aipkit", "mwai"]
PLUGINS: tuple[Plugin, ...] = ("wpaicg", "aipkit", "mwai")
SECRET = "TOP-SECRET-7f3a9c"
ANSWER = "answered by the site"


def site_for(plugin: Plugin, path: str, **options: Any) -> Emulator:
    emulator = Emulator(plugin=plugin, stream=path.endswith("stream"), **options)
    emulator.responder = ScriptedResponder(fallback=lambda request: ANSWER)
    return emulator


def model_for(site: Emulator, **settings: Any) -> ChatChatGptEs:
    return ChatChatGptEs(base_url=site.base_url, **{"timeout": 5, "max_retries": 2, **settings})


def endpoint_on(site: Emulator) -> str:
    """The chat endpoint a page of ``site``'s plugin names on ``site``."""
    if site.plugin == "mwai":
        return site.base_url + "/wp-json"
    return site.base_url + "/wp-admin/admin-ajax.php"


def only_the_page_was_read(site: Emulator) -> None:
    assert [(r.method, r.path) for r in site.requests] == [("GET", "/")]


# --- 1. and 3.: where the page points ----------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("plugin", PLUGINS)
async def test_a_page_cannot_make_the_client_read_a_local_file(
    plugin: Plugin, path: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    # (AI Engine appends its routes to restUrl: after "?" they do not change the file.)
    target = secret.as_uri() + ("?" if plugin == "mwai" else "")
    with site_for(plugin, path, page_endpoint=target) as site:
        with pytest.raises(UntrustedEndpointError) as info:
            await call(model_for(site), path)
        only_the_page_was_read(site)
    assert SECRET not in str(info.value)
    assert info.value.url.startswith(target)
    assert "scheme is 'file'" in info.value.reason
    assert isinstance(info.value, ModelPermissionDeniedError)
    assert not info.value.is_retryable
    assert "allowed_hosts" in str(info.value)  # the advice


@pytest.mark.parametrize("scheme", ["gopher", "dict"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("plugin", PLUGINS)
async def test_a_page_cannot_make_the_client_write_to_an_internal_service(
    plugin: Plugin, path: str, scheme: str, listener: SilentSite
) -> None:
    target = f"{scheme}://127.0.0.1:{listener.port}/_SET%20owned%201%0D%0A"
    with site_for(plugin, path, page_endpoint=target) as site:
        with pytest.raises(UntrustedEndpointError, match=f"scheme is '{scheme}'"):
            await call(model_for(site), path)
        only_the_page_was_read(site)
    assert listener.connections == 0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("plugin", PLUGINS)
async def test_endpoints_on_another_host_are_refused_unless_allowed(
    plugin: Plugin, path: str
) -> None:
    with (
        site_for(
            plugin, path, aipkit=AipkitOptions(pro=True)
        ) as other,  # (AIPKit Pro: embeds allowed)
        site_for(plugin, path, page_endpoint=endpoint_on(other)) as site,  # names `other`
    ):
        with pytest.raises(UntrustedEndpointError, match="on another site") as info:
            await call(model_for(site), path)
        assert f"127.0.0.1:{other.port}" in info.value.reason
        only_the_page_was_read(site)
        assert other.requests == []  # no prompt, nonce or session went there
        # The user may allow it: a chat box served from another host they trust.
        model = model_for(site, allowed_hosts=[f"127.0.0.1:{other.port}"])
        assert (await call(model, path)).text == ANSWER
        assert other.chat_requests()
        assert [r.path for r in site.requests] == ["/"] * len(site.requests)


# --- 2.: redirects -----------------------------------------------------------------------


def redirect(status: int, to: str) -> Reply:
    return Reply.raw(status, f"<p>moved {SECRET}</p>", headers={"Location": to})


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("plugin", PLUGINS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_chat_request_is_never_redirected(plugin: Plugin, path: str, status: int) -> None:
    with site_for(plugin, path) as other, site_for(plugin, path) as site:
        location = other.base_url + "/internal/admin?token=1"
        site.responder = ScriptedResponder([redirect(status, location)])
        with pytest.raises(RefusedRedirectError) as info:
            await call(model_for(site), path)
        assert info.value.url == location
        assert location in str(info.value)
        assert SECRET not in str(info.value)  # the redirect's body is not quoted
        assert other.requests == []
        assert not info.value.is_retryable
        assert "allowed_hosts" not in str(info.value)  # no advice that cannot help
        # Not retried: one chat request (AIPKit: the cache POST, then the redirected stream).
        assert len(site.chat_requests()) == (2 if plugin == "aipkit" else 1)


@pytest.mark.parametrize("path", PATHS)
async def test_aipkits_cache_post_and_nonce_refresh_are_never_redirected(path: str) -> None:
    with site_for("aipkit", path) as other, site_for("aipkit", path) as site:
        model = model_for(site)
        site.aipkit.cache_faults = [redirect(303, other.base_url + "/x")]
        with pytest.raises(RefusedRedirectError, match="cache POST"):
            await call(model, path)
        site.advance(259200)  # the nonce expires: the next call refreshes it
        site.aipkit.refresh_faults = [redirect(302, other.base_url + "/nonce")]
        with pytest.raises(RefusedRedirectError, match="nonce request"):
            await call(model, path)
        assert other.requests == []


@pytest.mark.parametrize("path", PATHS)
async def test_ai_engines_session_and_submit_are_never_redirected(path: str) -> None:
    with site_for("mwai", path) as other, site_for("mwai", path) as site:
        site.mwai.session_faults = [redirect(307, other.base_url + "/wp-json/x")]
        with pytest.raises(RefusedRedirectError, match="session request"):
            await call(model_for(site), path)
        site.responder = ScriptedResponder([redirect(307, other.base_url + mwai.SUBMIT_ROUTE)])
        with pytest.raises(RefusedRedirectError, match="submit request"):
            await call(model_for(site), path)
        assert other.requests == []  # neither the conversation nor the X-WP-Nonce went there


@pytest.mark.parametrize("plugin", PLUGINS)
async def test_a_redirect_on_the_sites_own_origin_is_refused_too(plugin: Plugin) -> None:
    with site_for(plugin, "ainvoke") as site:
        site.responder = ScriptedResponder([redirect(307, "/elsewhere")])
        with pytest.raises(RefusedRedirectError) as info:
            await call(model_for(site), "ainvoke")
        assert info.value.url == site.base_url + "/elsewhere"
        assert [r.path for r in site.requests if r.path == "/elsewhere"] == []


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("plugin", PLUGINS)
async def test_an_unreadable_endpoint_or_location_is_refused_typed(
    plugin: Plugin, path: str
) -> None:
    # urljoin raises ValueError on these; they end as the package's typed errors.
    with (
        site_for(plugin, path, page_endpoint="http://[") as site,
        pytest.raises(UntrustedEndpointError),
    ):
        await call(model_for(site), path)
    with site_for(plugin, path) as site:
        site.responder = ScriptedResponder([redirect(302, "http://[")])
        with pytest.raises(RefusedRedirectError, match="refused"):
            await call(model_for(site), path)


@pytest.mark.parametrize("target", ["file:///etc/hostname", "gopher://127.0.0.1:1/_x"])
async def test_the_page_get_follows_http_redirects_only(target: str) -> None:
    with Emulator(redirect_to=target) as moved:
        with pytest.raises(RefusedRedirectError, match="not http or https"):
            await call(model_for(moved), "ainvoke")
        assert len(moved.requests) == 1


async def test_a_page_that_redirects_forever_is_given_up() -> None:
    with Emulator() as loop:
        loop.redirect_to = loop.base_url
        with pytest.raises(RefusedRedirectError, match="more than 10 times"):
            await call(model_for(loop), "ainvoke")
        assert len(loop.requests) == 11


# --- 8. and 14.: what the page means -------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_ai_engine_resolves_a_relative_rest_url_against_the_page(path: str) -> None:
    with site_for("mwai", path, mwai=MwaiOptions(rest_url_style="relative")) as site:
        assert (await call(model_for(site, max_retries=0), path)).text == ANSWER
        assert len(site.submit_requests()) == 1


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("plugin", PLUGINS)
async def test_chat_boxes_a_browser_does_not_show_are_not_chosen(plugin: Plugin, path: str) -> None:
    # Copies pointing at decoy.invalid in a comment, a template, script text, noscript and
    # a textarea stand before the real box: only the real one is talked to.
    with site_for(plugin, path, page_variant="decoys") as site:
        assert (await call(model_for(site, max_retries=0), path)).text == ANSWER
        chat = site.chat_requests()
        assert chat and all(request.nonce_valid is not False for request in chat)


@pytest.mark.parametrize("path", PATHS)
async def test_a_base_url_query_string_is_kept(path: str) -> None:
    with site_for("wpaicg", path) as site:
        model = ChatChatGptEs(base_url=site.base_url + "/?lang=es", timeout=5, max_retries=0)
        assert (await call(model, path)).text == ANSWER
        (page,) = site.page_requests()
        assert (page.path, page.query) == ("/", {"lang": "es"})
