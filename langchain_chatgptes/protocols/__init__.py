"""Site protocols (one sans-I/O module per chat-plugin generation) and page detection.

:func:`read_page` runs every registered protocol over a page and returns the bots found;
:func:`choose_bot` picks the one a model talks to, by the rule documented there. Adding a
protocol means adding its module and listing it in :data:`PROTOCOLS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from langchain_chatgptes.errors import NonceNotFoundError
from langchain_chatgptes.protocols import aipkit, mwai, wpaicg
from langchain_chatgptes.protocols._base import Bot, SiteProtocol

PROTOCOLS: tuple[SiteProtocol, ...] = (
    aipkit.AipkitProtocol(),
    mwai.MwaiProtocol(),
    wpaicg.WpaicgProtocol(),
)
"""The protocols a page is read with."""

PLUGINS = ("auto", *(protocol.name for protocol in PROTOCOLS))
"""Values of the model's ``plugin`` setting."""

_BY_NAME = {protocol.name: protocol for protocol in PROTOCOLS}
_DESCRIBE: dict[str, Callable[[tuple[str, ...]], str]] = {
    aipkit.NAME: aipkit.describe_missing,
    mwai.NAME: mwai.describe_missing,
    wpaicg.NAME: wpaicg.describe_missing,
}
_PLUGIN_WORDS = {
    aipkit.NAME: "AIPKit bot",
    mwai.NAME: "AI Engine bot",
    wpaicg.NAME: "AI Power chat box",
}

# What other pages show when no bot this package speaks is there (wp-chat-plugins.md C.1).
_HINTS = (
    ("[aipkit_chatbot", "an AIPKit shortcode left as text (the plugin is off or updating)"),
    ("[wpaicg_chatgpt", "a legacy AI Power shortcode left as text (since 2.3 it is not rendered)"),
    ("[mwai_chatbot", "an AI Engine shortcode left as text (the plugin is off)"),
    ("data-mwai-chatbot", "an AI Engine bot embedded from another site (not supported)"),
    ("ai-engine/app/chatbot.js", "AI Engine's script but no bot on this page"),
    ("embed-bootstrap.bundle.js", "an AIPKit bot embedded from another site (not supported)"),
    ("public-main.bundle.js", "AIPKit's script but no bot on this page"),
)


def protocol_named(name: str) -> SiteProtocol:
    """The registered protocol called ``name``."""
    return _BY_NAME[name]


@dataclass(frozen=True)
class Page:
    """A chat page as read: where it ended up and every bot it shows."""

    url: str
    bots: tuple[Bot, ...]


def read_page(html: str, page_url: str) -> Page:
    """Every bot of every known plugin the page shows.

    Args:
        html: The page, after the shared status checks.
        page_url: Its final URL (after redirects), against which endpoints are resolved.

    Raises:
        NonceNotFoundError: No usable bot: ``missing`` says what a chat box lacks, or
            ``looked_for`` what was looked for when there is no chat box at all (the
            message also names another chat plugin the page shows, if any).
    """
    bots: list[Bot] = []
    incomplete: list[tuple[str, tuple[str, ...]]] = []
    for protocol in PROTOCOLS:
        findings = protocol.find_bots(html, page_url)
        bots.extend(findings.bots)
        incomplete.extend((protocol.name, missing) for missing in findings.incomplete)
    if bots:
        return Page(page_url, tuple(sorted(bots, key=lambda bot: bot.position)))
    looked_for = tuple(protocol.looked_for for protocol in PROTOCOLS)
    if incomplete:
        name, missing = incomplete[0]
        raise NonceNotFoundError(
            f"The page at {page_url} has an {_PLUGIN_WORDS[name]}, but it is missing "
            f"{_DESCRIBE[name](missing)}.",
            page_url=page_url,
            missing=missing,
            looked_for=looked_for,
        )
    hints = [hint for marker, hint in _HINTS if marker in html]
    seen = f" It shows {'; '.join(hints)}." if hints else ""
    raise NonceNotFoundError(
        f"The page at {page_url} shows no chat bot this package can talk to; it looked for "
        f"{' or '.join(looked_for)}.{seen}",
        page_url=page_url,
        looked_for=looked_for,
    )


def choose_bot(page: Page, plugin: str = "auto", bot_id: str | None = None) -> Bot:
    """The bot a model talks to.

    The rule: only bots of ``plugin`` when one is forced; with ``"auto"``, a legacy AI Power
    box beside an AIPKit bot is stale markup (a 2.3+ site no longer answers the legacy
    action) and is passed over. Then the bot whose id is ``bot_id``, when given; else the
    first inline bot on the page, else the first bot.

    Raises:
        NonceNotFoundError: The page shows no bot of ``plugin``, or none with ``bot_id``
            (the message lists the ids it does show).
    """
    bots = list(page.bots)
    if plugin != "auto":
        bots = [bot for bot in bots if bot.protocol == plugin]
        if not bots:
            shown = ", ".join(sorted({bot.protocol for bot in page.bots}))
            raise NonceNotFoundError(
                f"The page at {page.url} shows no {plugin} bot (it shows: {shown}).",
                page_url=page.url,
                looked_for=(protocol_named(plugin).looked_for,),
            )
    elif any(bot.protocol == aipkit.NAME for bot in bots):
        bots = [bot for bot in bots if bot.protocol != wpaicg.NAME]
    if bot_id is not None:
        matching = [bot for bot in bots if bot.bot_id == bot_id]
        if not matching:
            shown = ", ".join(f"{bot.bot_id!r} ({bot.protocol})" for bot in bots)
            raise NonceNotFoundError(
                f"The page at {page.url} shows no bot with the id {bot_id!r}; it shows {shown}.",
                page_url=page.url,
                looked_for=(f"a bot with the id {bot_id!r}",),
            )
        bots = matching
    return next((bot for bot in bots if bot.inline), bots[0])
