"""The WordPress page of an AIPKit site (AI Power / AI Puffer >= 2.3): reference A.1, C.2 item 2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langchain_chatgptes.emulator import _aipkit_plugin as aip
from langchain_chatgptes.emulator._pages import (
    PageFacts,
    PageVariant,
    assistant_page,
    legacy_chat_box,
)
from langchain_chatgptes.emulator._plugin import AJAX_PATH
from langchain_chatgptes.emulator._wordpress import esc_attr, php_json, php_json_unicode

AipkitLayout = Literal["inline", "popup"]


@dataclass(frozen=True)
class AipkitBot:
    """One ``[aipkit_chatbot id="…"]`` on the page."""

    bot_id: int
    layout: AipkitLayout
    stream_enabled: bool | None  # the data-config key of 2.3 -> 2.4.0; None: no key


@dataclass(frozen=True)
class AipkitPageFacts:
    """What changes from one rendering of the AIPKit page to the next."""

    base_url: str
    path: str  # "" for the home page, "chat" for /chat/
    post_id: int
    nonce: str
    version: str
    bots: tuple[AipkitBot, ...]  # in document order, each id once
    header_name: str
    provider: str
    user_ip: str | None  # data-config.userIp (<= 2.3.87); None: no key
    nonce_refresh: bool  # print window.aipkit_getChatNonceAction (>= 2.3.41)
    legacy_box: PageFacts | None  # "both": a stale legacy chat box before the bots
    theme: str = "light"
    ajax_url: str = ""  # data-config.ajaxUrl ("": the site's own admin-ajax.php)


def frontend_config(facts: AipkitPageFacts, bot: AipkitBot) -> dict[str, Any]:
    """``data-config`` (A.1 table, ``build_config_array_logic``): protocol keys and some UI keys."""
    popup = bot.layout == "popup"
    config: dict[str, Any] = {
        "botId": bot.bot_id,
        # admin_url('admin-ajax.php'): absolute
        "ajaxUrl": facts.ajax_url or facts.base_url + AJAX_PATH,
        "nonce": facts.nonce,
        "postId": facts.post_id,
    }
    if facts.user_ip is not None:
        config["userIp"] = facts.user_ip
    config.update({"theme": facts.theme, "popupEnabled": popup})
    if popup:
        config.update(
            {
                "popupPosition": "bottom-right",
                "popupDelay": 0,
                "popupIconType": "default",
                "popupIconStyle": "circle",
                "popupIconValue": "chat-bubble",
                "popupIconSize": "medium",
            }
        )
    config["provider"] = facts.provider
    if bot.stream_enabled is not None:
        config["streamEnabled"] = bot.stream_enabled  # 2.3 -> 2.4.0 only (A.1, A.3.5)
    config.update(
        {
            "enableOpenAIConversationState": False,
            "enableGoogleConversationState": False,
            "allowWebSearchTool": False,
            "webToggleDefaultOn": False,
            "allowGoogleSearchGrounding": False,
            "showSources": False,
            "requireConsentCompliance": False,
            "imageTriggers": aip.DEFAULT_IMAGE_TRIGGERS,
            "fileUploadEnabledUI": False,
            "imageUploadEnabledUI": False,
            "headerName": facts.header_name,
            "footerText": "",
            "enableFullscreen": True,
            "enableDownload": False,
            "enableCopyButton": True,
            "enableFeedback": False,
            "enableSidebar": False,
            "enableStarters": False,
            "starters": [],
            "ttsEnabled": False,
            "enableVoiceInputUI": False,
            "customThemeSettings": [],  # PHP's empty array
            "text": dict(aip.TEXT_LABELS),
            "customTypingText": "",
        }
    )
    return config


def data_config_attribute(config: dict[str, Any]) -> str:
    """``esc_attr(wp_json_encode($cfg, UNESCAPED_UNICODE|HEX_TAG|HEX_APOS|HEX_AMP|HEX_QUOT))``.

    A.1 "Escaping" (``renderer/methods.php:115@2.4.71``): the value of a single-quoted
    ``data-config='…'`` attribute.
    """
    return esc_attr(php_json_unicode(config, hex_flags=True))


_CHAT_BODY = """
  <div class="aipkit_chat_body"><div class="aipkit_chat_main">
    <div class="aipkit_chat_messages"></div>
    <div class="aipkit_input_wrapper">
      <textarea class="aipkit_chat_input_field" placeholder="Type your message..."></textarea>
      <button type="button" class="aipkit_input_action_btn aipkit_send_btn">Send</button>
    </div>
  </div></div>
"""


def _inline(facts: AipkitPageFacts, bot: AipkitBot) -> str:
    # renderer/methods.php:335@2.4.71 (A.1 "Inline mode"); empty optional classes leave blanks.
    config = data_config_attribute(frontend_config(facts, bot))
    return (
        f'<div class="{aip.CONTAINER_CLASS} aipkit-theme-{facts.theme}  '
        f'aipkit-sidebar-state-closed   " id="aipkit_chat_container_{bot.bot_id}" '
        f"data-bot-id=\"{bot.bot_id}\" data-config='{config}' >{_CHAT_BODY}</div>"
    )


def _popup(facts: AipkitPageFacts, bot: AipkitBot) -> str:
    # renderer/methods.php:234,267@2.4.71 (A.1 "Popup mode"): data-config on the wrapper only.
    config = data_config_attribute(frontend_config(facts, bot))
    bot_id = bot.bot_id
    return (
        f'<div class="{aip.POPUP_CLASS} aipkit-popup-theme-{facts.theme} aipkit-popup-standard" '
        f"id=\"aipkit_popup_wrapper_{bot_id}\" data-config='{config}' "
        f'data-bot-id="{bot_id}" data-icon-size="medium">\n'
        f'  <button type="button" class="aipkit_popup_trigger aipkit_popup_position-bottom-right '
        f'aipkit_popup_trigger--circle" id="aipkit_popup_trigger_{bot_id}" '
        f'aria-label="Open chat" aria-expanded="false">'
        f'<span class="aipkit_popup_icon"></span></button>\n'
        f'  <div class="{aip.CONTAINER_CLASS} aipkit_popup_content aipkit-theme-{facts.theme}  '
        f'aipkit-sidebar-state-closed" id="aipkit_chat_container_{bot_id}" aria-hidden="true" '
        f"inert>{_CHAT_BODY}  </div>\n</div>"
    )


def aipkit_markup(facts: AipkitPageFacts) -> tuple[str, str, str]:
    """The bots' markup, the stylesheet ``<link>`` and the footer scripts of an AIPKit page.

    Also what a page with bots of another plugin beside AIPKit's reuses (``page_variant=
    "mixed"`` of the AI Engine mode).
    """
    base = facts.base_url
    version = facts.version
    boxes = [(_popup if bot.layout == "popup" else _inline)(facts, bot) for bot in facts.bots]
    css = (
        f"<link rel='stylesheet' id='aipkit-public-main-css' "
        f"href='{base}{aip.PLUGIN_PATH}/dist/css/public-main.bundle.css?ver={version}' "
        f"media='all' />\n"
    )
    # wp_localize_script, then the inline-before script, then the bundle (A.1 "Globals").
    labels = php_json({"text": aip.TEXT_LABELS})
    assets = (
        f'<script id="{aip.SCRIPT_ID}-extra">\nvar {aip.CONFIG_GLOBAL} = {labels};\n</script>\n'
    )
    if facts.nonce_refresh:
        assets += (
            f'<script id="{aip.SCRIPT_ID}-before">\n'
            f'window.{aip.NONCE_ACTION_GLOBAL} = "{aip.REFRESH_ACTION}";\n</script>\n'
        )
    src = f"{base}{aip.SCRIPT_PATH}?ver={version}"
    assets += f'<script src="{src}" id="{aip.SCRIPT_ID}"></script>\n'
    return "\n".join(boxes), css, assets


def render_aipkit_page(facts: AipkitPageFacts, variant: PageVariant) -> str:
    """The page with the AIPKit bot(s).

    ``standard``: the bots (inline or popup each); ``both``: a stale legacy
    ``div.wpaicg-chat-shortcode`` box (with ``data-nonce``) before them, as a cached page or an
    old post's saved HTML keeps it (C.1 step 5); ``no_chat_box``: the plugin switched off, so
    WordPress prints the shortcode verbatim and no plugin asset (C.1 step 6). Other variants
    render as ``standard``.
    """
    base = facts.base_url
    if variant == "no_chat_box":
        shortcodes = "".join(f'<p>[aipkit_chatbot id="{bot.bot_id}"]</p>\n' for bot in facts.bots)
        chat, assets, css = shortcodes, "", ""
    else:
        boxes, css, assets = aipkit_markup(facts)
        if variant == "both" and facts.legacy_box is not None:
            boxes = "\n".join(filter(None, (legacy_chat_box(facts.legacy_box), boxes)))
        chat = boxes + "\n"
    return assistant_page(
        base,
        facts.path,
        facts.post_id,
        head=css,
        rest_root=f"{base}/wp-json/",
        chat=chat,
        footer=assets,
    )
