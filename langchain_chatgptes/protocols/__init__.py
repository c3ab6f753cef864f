"""Site protocols (one sans-I/O module per chat-plugin generation) and page detection.

:func:`read_page` runs every registered protocol over a page and returns the bots found;
:func:`choose_bot` picks the one a model talks to. Adding a protocol means adding its module
and listing it in :data:`PROTOCOLS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_chatgptes.errors import NonceNotFoundError
from langchain_chatgptes.protocols._base import Bot, SiteProtocol
from langchain_chatgptes.protocols.wpaicg import WpaicgProtocol, describe_missing

PROTOCOLS: tuple[SiteProtocol, ...] = (WpaicgProtocol(),)
"""The protocols a page is read with, in order of preference."""

_BY_NAME = {protocol.name: protocol for protocol in PROTOCOLS}


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
            ``looked_for`` what was looked for when there is no chat box at all.
    """
    bots: list[Bot] = []
    incomplete: list[tuple[str, ...]] = []
    for protocol in PROTOCOLS:
        findings = protocol.find_bots(html, page_url)
        bots.extend(findings.bots)
        incomplete.extend(findings.incomplete)
    if bots:
        return Page(page_url, tuple(bots))
    looked_for = tuple(protocol.looked_for for protocol in PROTOCOLS)
    if incomplete:
        missing = incomplete[0]
        raise NonceNotFoundError(
            f"The page at {page_url} has an AI Power chat box, but it is missing "
            f"{describe_missing(missing)}.",
            page_url=page_url,
            missing=missing,
            looked_for=looked_for,
        )
    raise NonceNotFoundError(
        f"The page at {page_url} shows no chat bot this package can talk to; it looked for "
        f"{' or '.join(looked_for)}.",
        page_url=page_url,
        looked_for=looked_for,
    )


def choose_bot(page: Page) -> Bot:
    """The bot a model talks to: the page's first inline bot, else its first bot."""
    return next((bot for bot in page.bots if bot.inline), page.bots[0])
