"""The HTML the emulated site serves: the chat page, a 404 page and a Cloudflare challenge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from langchain_chatgptes.emulator._plugin import AJAX_PATH, CHAT_BOX_CLASS, PARAMS_VARIABLE
from langchain_chatgptes.emulator._wordpress import php_json

PageVariant = Literal[
    "standard",
    "minified",
    "noisy",
    "no_chat_box",
    "no_data_nonce",
    "no_nonce",
    "both",
    "mixed",
    "decoys",
]
_PLUGIN = "/wp-content/plugins/gpt3-ai-content-generator"


@dataclass(frozen=True)
class PageFacts:
    """What changes from one rendering of the chat page to the next."""

    base_url: str
    path: str  # "" for the home page, "chat" for /chat/
    post_id: str
    nonce: str
    img_nonce: str  # a nonce for another plugin action (the image generator)
    rest_nonce: str  # another plugin's nonce, only shown by the "noisy" variant
    stream: bool
    ajax_url: str = ""  # wpaicgParams.ajax_url ("": the site's own admin-ajax.php)


def _chat_box_attributes(facts: PageFacts) -> list[tuple[str, str]]:
    # The order of the shortcode template (§3.2 of the protocol reference).
    url = facts.base_url + (f"/{facts.path}" if facts.path else "")
    return [
        ("class", CHAT_BOX_CLASS),
        ("data-user-bg-color", "#444654"),
        ("data-color", "#fff"),
        ("data-fontsize", "13"),
        ("data-use-avatar", "0"),
        ("data-user-avatar", f"{facts.base_url}{_PLUGIN}/public/images/default_profile.png"),
        ("data-you", "Tú"),
        ("data-ai-avatar", f"{facts.base_url}{_PLUGIN}/public/images/chatbot.png"),
        ("data-ai-name", "ChatGPT"),
        ("data-ai-bg-color", "#343541"),
        ("data-nonce", facts.nonce),
        ("data-post-id", facts.post_id),
        ("data-url", url),
        ("data-bot-id", "0"),
        ("data-width", "100%"),
        ("data-height", "445px"),
        ("data-footer", "1"),
        ("data-has-bar", ""),
        ("data-text_height", "60"),
        ("data-text_rounded", "20"),
        ("data-chat_rounded", "8"),
        ("data-voice_service", "openai"),
        ("data-openai_stream_nav", "1" if facts.stream else "0"),
        ("data-memory-limit", "100"),
        ("data-type", "shortcode"),
    ]


def _params_script(facts: PageFacts) -> str:
    params = {
        "ajax_url": facts.ajax_url or facts.base_url + AJAX_PATH,
        "search_nonce": facts.nonce,
        "logged_in": "0",
        "languages": {
            "source": "Fuentes",
            "no_result": "No se encontraron resultados",
            "wrong": "Algo salió mal",
        },
    }
    return f"var {PARAMS_VARIABLE} = {php_json(params)};"


def legacy_chat_box(facts: PageFacts) -> str:
    """The standard shortcode chat box alone, as an old post's saved HTML keeps it."""
    attrs = _chat_box_attributes(facts)
    return (
        f'<div class="{attrs[0][1]}"\n'
        + "".join(f'     {n}="{v}"\n' for n, v in attrs[1:])
        + '>\n    <div class="wpaicg-chat-shortcode-content">\n'
        + '        <ul class="wpaicg-chat-shortcode-messages"></ul>\n    </div>\n'
        + '    <div class="wpaicg-chat-shortcode-type">\n'
        + '        <textarea class="wpaicg-chat-shortcode-typing"'
        + ' placeholder="Escribe..."></textarea>\n'
        + '        <span class="wpaicg-chat-shortcode-send"></span>\n    </div>\n</div>'
    )


def render_page(facts: PageFacts, variant: PageVariant) -> str:
    """The WordPress page that embeds the chat box, in one of three shapes.

    ``standard`` follows the plugin's template byte for byte; ``minified`` is what an HTML
    minifier makes of it (one line, unquoted values, other attribute order); ``noisy`` puts
    another plugin's ``"nonce"`` in ``<head>``, before the chat box; ``no_chat_box`` is the
    page with the plugin switched off (no chat box, no ``wpaicgParams``), still HTTP 200;
    ``no_data_nonce`` is what caching and optimisation plugins leave: the chat box without
    ``data-nonce`` (the nonce only in ``wpaicgParams.search_nonce``); ``no_nonce`` has neither.
    ``both`` only means something for the AIPKit page and ``mixed`` for the AI Engine one;
    here they are ``standard``.
    """
    base, attrs = facts.base_url, _chat_box_attributes(facts)
    if variant in ("no_data_nonce", "no_nonce"):
        attrs = [(name, value) for name, value in attrs if name != "data-nonce"]
    body_class = (
        "home " if not facts.path else ""
    ) + f"page-template-default page page-id-{facts.post_id}"
    noise = ""
    if variant == "noisy":
        rest = {"root": f"{base}/wp-json/", "nonce": facts.rest_nonce, "versionString": "wp/v2/"}
        script = f"var wpApiSettings = {php_json(rest)};"
        noise = f'<script id="wp-api-request-js-extra">\n{script}\n</script>\n'
    if variant == "minified":
        # Minifiers drop quotes wherever the value allows it (never for an empty value).
        pairs = (f"{name}={value}" if value else f'{name}=""' for name, value in reversed(attrs))
        chat_box = "<div " + " ".join(pairs) + ">"
    else:
        chat_box = (
            f'<div class="{attrs[0][1]}"\n'
            + "".join(f'     {n}="{v}"\n' for n, v in attrs[1:])
            + ">"
        )
    params = f'<script id="wpaicg-init-js-extra">\n{_params_script(facts)}\n</script>'
    if variant == "no_chat_box":
        chat_box, params = "<div>", ""
    if variant == "no_nonce":
        params = ""
    page = f"""<!DOCTYPE html>
<html lang="es">
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ChatGPT Español &#8211; Chat GPT gratis y sin registro</title>
<meta name='robots' content='index, follow, max-image-preview:large' />
<link rel="canonical" href="{base}/{facts.path + "/" if facts.path else ""}" />
{noise}<link rel='stylesheet' id='wpaicg-chat-css'
 href='{base}{_PLUGIN}/public/css/wpaicg-chat.css?ver=1.9.11' media='all' />
<link rel="https://api.w.org/" href="{base}/wp-json/" />
</head>
<body class="{body_class}">
<div id="page" class="site">
<header id="masthead" class="site-header">
<p class="site-title"><a href="{base}/" rel="home">ChatGPT Español</a></p>
</header>
<main id="primary" class="site-main">
<article id="post-{facts.post_id}"
 class="post-{facts.post_id} page type-page status-publish hentry">
<div class="entry-content">
<p>Habla con ChatGPT en español: gratis, sin registro.</p>
{chat_box}
    <div class="wpaicg-chat-shortcode-content">
        <ul class="wpaicg-chat-shortcode-messages"></ul>
    </div>
    <div class="wpaicg-chat-shortcode-type">
        <textarea class="wpaicg-chat-shortcode-typing" placeholder="Escribe..."></textarea>
        <span class="wpaicg-chat-shortcode-send"></span>
        <input type="hidden" id="wpaicg-img-nonce" value="{facts.img_nonce}">
    </div>
</div>
</div>
</article>
</main>
<footer id="colophon" class="site-footer"><p>© ChatGPT Español</p></footer>
</div>
{params}
<script src='{base}{_PLUGIN}/public/js/wpaicg-init.js?ver=1.9.11' id='wpaicg-init-js'></script>
<script src='{base}{_PLUGIN}/public/js/wpaicg-chat.js?ver=1.9.11' id='wpaicg-chat-js'></script>
</body>
</html>
"""
    return " ".join(line.strip() for line in page.splitlines()) if variant == "minified" else page


def assistant_page(
    base_url: str,
    path: str,
    post_id: int | str,
    *,
    head: str,
    rest_root: str,
    chat: str,
    footer: str,
) -> str:
    """The theme's page around the newer plugins' bots (AIPKit and AI Engine pages share it).

    ``head``: stylesheet links printed in ``<head>``; ``rest_root``: the ``api.w.org`` link;
    ``chat``: the bots' markup; ``footer``: what is printed before ``</body>``.
    """
    body_class = ("home " if not path else "") + f"page-template-default page page-id-{post_id}"
    canonical = f"{base_url}/{path + '/' if path else ''}"
    return f"""<!DOCTYPE html>
<html lang="en-US">
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat &#8211; AI Assistant</title>
<meta name='robots' content='index, follow, max-image-preview:large' />
<link rel="canonical" href="{canonical}" />
{head}<link rel="https://api.w.org/" href="{rest_root}" />
</head>
<body class="{body_class}">
<div id="page" class="site">
<main id="primary" class="site-main">
<article id="post-{post_id}"
 class="post-{post_id} page type-page status-publish hentry">
<div class="entry-content">
<p>Ask our assistant anything.</p>
{chat}</div>
</article>
</main>
<footer id="colophon" class="site-footer"><p>&copy; AI Assistant</p></footer>
</div>
{footer}</body>
</html>
"""


DECOY_ORIGIN = "http://decoy.invalid"
"""Where the decoy boxes of ``page_variant="decoys"`` point (never reached: ``.invalid``)."""
_DECOY_NONCE = "dec0y0000"
_CHAT_BOX = re.compile(
    r"<div\b[^>]*\b(?:wpaicg-chat-shortcode|aipkit_chat_container|aipkit_popup_wrapper|"
    r"mwai-chatbot-container)\b[^>]*>"
)
_NONCE_ATTRIBUTE = re.compile(r'data-nonce="[^"]*"')
_PARAMS_SCRIPT = re.compile(r"var wpaicgParams = [^\n]*;")


def with_decoys(html: str, base_url: str) -> str:
    """The page with copies of its first chat box where a browser shows nothing.

    Before the real box: the box in an HTML comment, a ``<template>``, a
    ``<script type="text/template">``, a ``<noscript>`` and a hidden ``<textarea>``, each
    pointing at :data:`DECOY_ORIGIN` (and, for the legacy box, with another nonce and a
    ``wpaicgParams`` in a comment). A client that reads any of them talks to nobody.
    """
    box = _CHAT_BOX.search(html)
    if box is None:
        return html

    def decoy(text: str) -> str:
        text = text.replace(base_url, DECOY_ORIGIN)
        text = text.replace(base_url.replace("/", "\\/"), DECOY_ORIGIN.replace("/", "\\/"))
        return _NONCE_ATTRIBUTE.sub(f'data-nonce="{_DECOY_NONCE}"', text)

    tag = decoy(box.group())
    params = _PARAMS_SCRIPT.search(html)
    hidden = [
        f"<!-- {tag} -->",
        f"<template>{tag}</template>",
        f'<script type="text/template">{tag}</script>',
        f"<noscript>{tag}</noscript>",
        f"<textarea hidden>{tag}</textarea>",
    ]
    if params is not None:
        hidden.insert(0, f"<!-- <script>{decoy(params.group())}</script> -->")
    return html[: box.start()] + "\n".join(hidden) + "\n" + html[box.start() :]


NOT_FOUND_PAGE = """<!DOCTYPE html>
<html lang="es">
<head><meta charset="UTF-8"><title>Página no encontrada &#8211; ChatGPT Español</title></head>
<body class="error404 hfeed">
<main id="primary" class="site-main"><section class="error-404 not-found">
<h1 class="page-title">¡Vaya! No se puede encontrar esa página.</h1>
</section></main>
</body>
</html>
"""

CHALLENGE_HEADERS = {
    "Content-Type": "text/html; charset=UTF-8",
    "Server": "cloudflare",
    "cf-mitigated": "challenge",
    "CF-RAY": "8f1c2a3b4d5e6f70-MAD",
    "Cache-Control": (
        "private, max-age=0, no-store, no-cache, must-revalidate, post-check=0, pre-check=0"
    ),
    "Expires": "Thu, 01 Jan 1970 00:00:01 GMT",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "accelerometer=(),camera=(),geolocation=(),gyroscope=(),microphone=()",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
}

CHALLENGE_PAGE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
    '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">'
    '<meta http-equiv="X-UA-Compatible" content="IE=Edge">'
    '<meta name="robots" content="noindex,nofollow">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    '<meta http-equiv="refresh" content="390">'
    "<style>*{box-sizing:border-box;margin:0;padding:0}html{line-height:1.15}body{display:flex;"
    "flex-direction:column;height:100vh;min-height:100vh}"
    ".main-content{margin:8rem auto;max-width:60rem}</style>"
    '</head><body class="no-js"><div class="main-wrapper" role="main"><div class="main-content">'
    '<noscript><div id="challenge-error-title"><div class="h2"><span id="challenge-error-text">'
    "Enable JavaScript and cookies to continue</span></div></div></noscript></div></div>"
    "<script>(function(){window._cf_chl_opt={cvId: '3',cZone: \"chatgpt.es\",cType: 'managed',"
    "cRay: '8f1c2a3b4d5e6f70',cH: 'kWq3vX9rP2mN8sT1yZ4bC7dF0gH5jL6'};"
    "var cpo = document.createElement('script');"
    "cpo.src = '/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8f1c2a3b4d5e6f70';"
    "document.getElementsByTagName('head')[0].appendChild(cpo);}());</script></body></html>"
)
