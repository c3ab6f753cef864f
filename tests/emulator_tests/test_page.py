"""The chat page: layout, nonces in it, variants."""

from __future__ import annotations

import hmac
import json
import re

from langchain_chatgptes.emulator import Emulator

from .conftest import T0, request

G4F_V3_FALLBACK = re.compile(r"nonce['\"]?\s*[=:]\s*['\"]([a-zA-Z0-9]+)['\"]")


def params(html: str) -> dict[str, object]:
    match = re.search(r"var wpaicgParams = (\{.*?\});", html)
    assert match
    return json.loads(match[1])


def test_standard_layout(emu: Emulator) -> None:
    answer = request(emu.base_url)
    html = answer.text
    nonce = emu.current_nonce()
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert '<body class="home page-template-default page page-id-2173">' in html
    block = (
        f'     data-ai-bg-color="#343541"\n     data-nonce="{nonce}"\n     data-post-id="2173"\n'
        f'     data-url="{emu.base_url}"\n     data-bot-id="0"\n     data-width="100%"\n'
    )
    assert '<div class="wpaicg-chat-shortcode"\n     data-user-bg-color=' in html
    assert block in html
    assert '     data-openai_stream_nav="0"\n' in html
    assert '     data-type="shortcode"\n>' in html
    assert html.count('wpaicg-chat-shortcode"') == 1


def test_nonce_is_wordpress_hmac_and_first_token(emu: Emulator) -> None:
    html = request(emu.base_url + "/").text
    tick = -(-T0 // 43200)  # ceil(now / (life / 2))
    expected = hmac.new(b"emulator-nonce-salt", f"{int(tick)}|wpaicg-chatbox|0|".encode(), "md5")
    nonce = expected.hexdigest()[-12:-2]
    assert emu.current_nonce() == nonce
    assert re.fullmatch(r"[0-9a-f]{10}", nonce)
    assert params(html)["search_nonce"] == nonce
    assert html.index(f'data-nonce="{nonce}"') < html.index("wpaicgParams")
    first = G4F_V3_FALLBACK.search(html)
    assert first
    assert first[1] == nonce
    img = re.search(r'<input type="hidden" id="wpaicg-img-nonce" value="([0-9a-f]{10})">', html)
    assert img
    assert img[1] != nonce


def test_params_script_uses_php_escaping(emu: Emulator) -> None:
    html = request(emu.base_url).text
    port = emu.port
    ajax = f'"ajax_url":"http:\\/\\/127.0.0.1:{port}\\/wp-admin\\/admin-ajax.php"'
    assert f'<script id="wpaicg-init-js-extra">\nvar wpaicgParams = {{{ajax},' in html
    assert '"logged_in":"0"' in html
    assert params(html)["ajax_url"] == f"{emu.base_url}/wp-admin/admin-ajax.php"


def test_stream_nav_follows_runtime_setting(emu: Emulator) -> None:
    emu.stream = True
    assert '     data-openai_stream_nav="1"\n' in request(emu.base_url).text


def test_post_id_setting() -> None:
    with Emulator(post_id="58") as emu:
        html = request(emu.base_url).text
    assert 'data-post-id="58"' in html
    assert "page-id-58" in html


def test_chat_page_and_redirect(emu: Emulator) -> None:
    html = request(emu.base_url + "/chat/").text
    assert '<body class="page-template-default page page-id-2173">' in html
    assert f'data-url="{emu.base_url}/chat"' in html
    redirect = request(emu.base_url + "/chat")
    assert redirect.status == 301
    assert redirect.headers["Location"] == emu.base_url + "/chat/"


def test_minified_variant() -> None:
    with Emulator(page_variant="minified") as emu:
        html = request(emu.base_url).text
        nonce = emu.current_nonce()
    assert "\n" not in html.strip()
    assert f" data-nonce={nonce} " in html
    assert 'data-nonce="' not in html
    assert html.index("data-post-id=2173") < html.index("data-nonce=")
    assert params(html)["search_nonce"] == nonce


def test_noisy_variant_puts_another_nonce_first() -> None:
    with Emulator(page_variant="noisy") as emu:
        html = request(emu.base_url).text
        nonce = emu.current_nonce()
    first = G4F_V3_FALLBACK.search(html)
    assert first
    assert first[1] != nonce
    assert html.index(first[0]) < html.index("</head>") < html.index(f'data-nonce="{nonce}"')


def test_unknown_path_is_404(emu: Emulator) -> None:
    answer = request(emu.base_url + "/nope")
    assert answer.status == 404
    assert "text/html" in answer.headers["Content-Type"]


def test_no_chat_box_variant_is_a_normal_page_without_the_plugin() -> None:
    with Emulator(page_variant="no_chat_box") as emu:
        page = request(emu.base_url + "/")
    assert page.status == 200
    assert b"data-nonce" not in page.body
    assert b"wpaicgParams" not in page.body
