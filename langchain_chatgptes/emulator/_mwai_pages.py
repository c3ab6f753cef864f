"""The WordPress page of an AI Engine site (Meow Apps, 3.6.2): reference B.1, C.3 item 2."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_chatgptes.emulator import _mwai_plugin as mw
from langchain_chatgptes.emulator._aipkit_pages import AipkitPageFacts, aipkit_markup
from langchain_chatgptes.emulator._pages import PageVariant, assistant_page, legacy_chat_box
from langchain_chatgptes.emulator._wordpress import (
    htmlspecialchars,
    is_numeric,
    php_encode,
    sanitize_text_field,
)


@dataclass(frozen=True)
class MwaiBot:
    """One ``[mwai_chatbot …]`` on the page: a registered bot, or a custom (overridden) one."""

    bot_id: str | None  # id="…"; None for a custom bot (data-system.botId is then null)
    custom_id: str | None  # custom_id="…" of a shortcode with server overrides
    max_length: int | None  # the chatbot's textInputMaxLength (None: no key)


@dataclass(frozen=True)
class MwaiPageFacts:
    """What changes from one rendering of the AI Engine page to the next."""

    base_url: str
    path: str  # "" for the home page, "chat" for /chat/
    post_id: str
    rest_url: str  # untrailingslashit(get_rest_url())
    rest_nonce: str | None  # data-system.restNonce (None: a guest on >= 2.4.4)
    stream: bool  # the ai_streaming option
    bots: tuple[MwaiBot, ...]
    aipkit: AipkitPageFacts | None  # "mixed": AIPKit bots (and a stale legacy box) first


def clean_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``clean_params()`` (B.1; source ``chatbot.php:1428-1450``).

    Numbers and numeric strings become floats, ``"true"``/``"false"`` (any case) booleans;
    ``restNonce``, nulls, arrays and empty strings are kept as they are. ``json_encode``
    prints a whole float without ``.0`` (``512``, as a real page shows: ``real-plugins.md``).
    """
    cleaned = dict(params)
    for key, value in params.items():
        if key == "restNonce" or value is None or value == "" or isinstance(value, list | dict):
            continue
        if isinstance(value, bool) or (
            isinstance(value, str) and value.lower() in ("true", "false")
        ):
            cleaned[key] = value is True or (isinstance(value, str) and value.lower() == "true")
        elif is_numeric(value):
            cleaned[key] = float(value)
    return cleaned


def front_params(bot: MwaiBot) -> dict[str, Any]:
    """``data-params`` of the default chatbot record, uploads off (B.1 ``data-params``)."""
    params: dict[str, Any] = {}
    for key, value in mw.FRONT_PARAMS:
        if key == "textInputMaxLength":
            if bot.max_length is None:  # isset() fails: no key
                continue
            value = bot.max_length
        params[key] = value
    params.update(mw.UPLOAD_PARAMS)  # new keys go last; multiUpload (set above) keeps its place
    return clean_params(params)


def front_system(facts: MwaiPageFacts, bot: MwaiBot) -> dict[str, Any]:
    """``data-system``: ``build_front_params`` plus actions/blocks/shortcuts (B.1 table)."""
    custom = bot.custom_id or None
    system: dict[str, Any] = {
        "botId": None if custom else sanitize_text_field(bot.bot_id or ""),
        "customId": sanitize_text_field(custom) if custom else None,
        "userData": None,  # a guest
        "sessionId": None,  # guests >= 3.5.2
        "restNonce": facts.rest_nonce,
        "contextId": int(facts.post_id) if facts.post_id.isdigit() else None,  # is_singular()
        "pluginUrl": facts.base_url + mw.PLUGIN_PATH,
        "restUrl": facts.rest_url,
        "stream": facts.stream,
        "debugMode": False,
        "eventLogs": False,
        "speech_recognition": False,
        "speech_synthesis": False,
        "typewriter": False,
        "crossSite": False,
    }
    system = clean_params(system)
    system.update({"actions": [], "blocks": [], "shortcuts": []})  # added after cleaning
    return system


def data_attribute(value: Any) -> str:
    """``htmlspecialchars(json_encode($value), ENT_QUOTES, 'UTF-8')`` (B.1)."""
    return htmlspecialchars(php_encode(value))


def container(facts: MwaiPageFacts, bot: MwaiBot) -> str:
    """The shortcode's output, byte for byte (B.1, ``chatbot.php:1325-1332@3.6.2``)."""
    params = data_attribute(front_params(bot))
    system = data_attribute(front_system(facts, bot))
    theme = data_attribute(mw.THEME)
    return (
        f"<div class='{mw.CONTAINER_CLASS}' data-params='{params}' data-system='{system}' "
        f"data-theme='{theme}'></div>"
    )


def shortcode(bot: MwaiBot) -> str:
    """The shortcode as an editor wrote it (printed verbatim when the plugin is off)."""
    if bot.custom_id:
        return f'[{mw.SHORTCODE} custom_id="{bot.custom_id}" instructions="…"]'
    return f'[{mw.SHORTCODE} id="{bot.bot_id}"]'


def render_mwai_page(facts: MwaiPageFacts, variant: PageVariant) -> str:
    """The page with the AI Engine bot(s).

    ``standard``: one container per bot, then the theme stylesheet and the scripts
    (``wp-element``, ``mwai_chatbot``) in the footer; ``no_chat_box``: the plugin switched
    off, so the shortcodes are printed verbatim and no asset (C.1 step 6); ``mixed``: a
    stale legacy AI Power box and the AIPKit bot(s) before the AI Engine ones (C.1 step 5:
    several protocols on one page). Other variants render as ``standard``.
    """
    base = facts.base_url
    head_css, assets = "", ""
    if variant == "no_chat_box":
        chat = "".join(f"<p>{shortcode(bot)}</p>\n" for bot in facts.bots)
    else:
        parts: list[str] = []
        if variant == "mixed" and facts.aipkit is not None:
            boxes, head_css, assets = aipkit_markup(facts.aipkit)
            if facts.aipkit.legacy_box is not None:
                parts.append(legacy_chat_box(facts.aipkit.legacy_box))
            parts.append(boxes)
        parts += [container(facts, bot) for bot in facts.bots]
        chat = "\n".join(part for part in parts if part) + "\n"
        # Enqueued while the content renders, so printed in the footer.
        assets += (
            f"<link rel='stylesheet' id='mwai_chatbot_theme_chatgpt-css' "
            f"href='{base}{mw.PLUGIN_PATH}/themes/chatgpt.css?ver={mw.SCRIPT_VERSION}' "
            f"media='all' />\n"
            f'<script src="{base}/wp-includes/js/dist/element.min.js?ver=a4eeeadd23c0d7ab1d2d" '
            f'id="wp-element-js"></script>\n'
            f'<script src="{base}{mw.SCRIPT_PATH}?ver={mw.SCRIPT_VERSION}" '
            f'id="{mw.SCRIPT_ID}"></script>\n'
        )
    return assistant_page(
        base,
        facts.path,
        facts.post_id,
        head=head_css,
        rest_root=f"{facts.rest_url}/",
        chat=chat,
        footer=assets,
    )
