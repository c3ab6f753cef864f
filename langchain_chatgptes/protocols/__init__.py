"""Site protocols (one sans-I/O :class:`SiteProtocol` per plugin), their registry, detection.

The registry is the only list of protocols: the package's three (AIPKit, AI Engine and the
legacy AI Power box) are registered here, a third party adds its own with
:func:`register_protocol` or through the entry-point group ``langchain_chatgptes.protocols``
(loaded at first use). The model's ``plugin`` values, the command line's choices, the
doctor's steps and :func:`choose_bot`'s rule all come from the registered protocol objects.

:func:`read_page` runs every registered protocol over a page and returns the bots found;
:func:`choose_bot` picks the one a model talks to, by the rule documented there.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import entry_points

from langchain_chatgptes._conversation import ChatInput, Turn, Visitor, flatten
from langchain_chatgptes.errors import NonceNotFoundError
from langchain_chatgptes.protocols import aipkit, mwai, wpaicg
from langchain_chatgptes.protocols._base import (
    BodyReader,
    Bot,
    BotState,
    Call,
    End,
    Event,
    Fact,
    Findings,
    HttpRequest,
    Metadata,
    Notice,
    OneRequestCall,
    ReplyHead,
    SiteProtocol,
    StagedCall,
    TextDelta,
    Usage,
)
from langchain_chatgptes.protocols._common import (
    SniffedBody,
    WholeBodyReader,
    browser_headers,
    check_status,
    empty_answer,
    ended_early,
    events_until,
    excerpt,
    json_object,
    missing,
    not_json,
    resolve,
    scan_bots,
    text_of,
)
from langchain_chatgptes.protocols._html import Tag, json_attribute, script_object, start_tags
from langchain_chatgptes.protocols._sse import SSEEvent, SSEParser

# What a protocol module needs, in one place (see the "Adding a protocol" guide).
__all__ = [
    "ENTRY_POINT_GROUP",
    "BodyReader",
    "Bot",
    "BotState",
    "Call",
    "ChatInput",
    "End",
    "Event",
    "Fact",
    "Findings",
    "HttpRequest",
    "Metadata",
    "Notice",
    "OneRequestCall",
    "Page",
    "ReplyHead",
    "SSEEvent",
    "SSEParser",
    "SiteProtocol",
    "SniffedBody",
    "StagedCall",
    "Tag",
    "TextDelta",
    "Turn",
    "Usage",
    "Visitor",
    "WholeBodyReader",
    "browser_headers",
    "check_status",
    "choose_bot",
    "empty_answer",
    "ended_early",
    "events_until",
    "excerpt",
    "flatten",
    "json_attribute",
    "json_object",
    "missing",
    "not_json",
    "plugin_names",
    "protocol_named",
    "read_page",
    "register_protocol",
    "registered",
    "resolve",
    "scan_bots",
    "script_object",
    "start_tags",
    "text_of",
    "unregister_protocol",
]

ENTRY_POINT_GROUP = "langchain_chatgptes.protocols"
"""Entry points of this group name a :class:`SiteProtocol` (an instance or a class)."""

AUTO = "auto"
"""The ``plugin`` value that lets the page decide."""

_registry: dict[str, SiteProtocol] = {}
_lock = threading.Lock()
_entry_points_loaded = False


def register_protocol(protocol: SiteProtocol, *, replace: bool = False) -> None:
    """Add a protocol: every page is then read with it too, and ``plugin=<its name>`` works.

    Args:
        protocol: The protocol object (see :class:`SiteProtocol` and the "Adding a protocol"
            guide).
        replace: Replace a protocol registered under the same name (else that is an error).

    Raises:
        ValueError: Not a :class:`SiteProtocol`, a name that is not a lower-case word, the
            reserved name ``auto``, or a name already taken.
    """
    if not isinstance(protocol, SiteProtocol):
        raise ValueError(f"register_protocol takes a SiteProtocol, not {protocol!r}")
    name = getattr(protocol, "name", "")
    if not (isinstance(name, str) and name.isidentifier() and name.islower()) or name == AUTO:
        raise ValueError(f"a protocol's name must be a lower-case word other than 'auto': {name!r}")
    with _lock:
        if name in _registry and not replace and _registry[name] is not protocol:
            raise ValueError(f"a protocol named {name!r} is registered already")
        _registry[name] = protocol


def unregister_protocol(name: str) -> None:
    """Remove the protocol called ``name`` (e.g. a test's); unknown names are ignored."""
    with _lock:
        _registry.pop(name, None)


def _load_entry_points() -> None:
    """Register the protocols other packages declare (once, at first use)."""
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = point.load()
        register_protocol(loaded() if isinstance(loaded, type) else loaded)


def registered() -> tuple[SiteProtocol, ...]:
    """Every registered protocol, the package's own first, in registration order."""
    _load_entry_points()
    with _lock:
        return tuple(_registry.values())


def plugin_names() -> tuple[str, ...]:
    """The values the model's ``plugin`` setting accepts: ``auto``, then every protocol's."""
    return (AUTO, *(protocol.name for protocol in registered()))


def protocol_named(name: str) -> SiteProtocol:
    """The registered protocol called ``name``.

    Raises:
        KeyError: No protocol has that name.
    """
    with _lock:
        protocol = _registry.get(name)
    if protocol is None:
        _load_entry_points()
        with _lock:
            return _registry[name]
    return protocol


for _builtin in (aipkit.AipkitProtocol(), mwai.MwaiProtocol(), wpaicg.WpaicgProtocol()):
    register_protocol(_builtin)


@dataclass(frozen=True)
class Page:
    """A chat page as read: where it ended up and every bot it shows."""

    url: str
    bots: tuple[Bot, ...]


def read_page(html: str, page_url: str) -> Page:
    """Every bot of every registered protocol the page shows.

    Args:
        html: The page, after the shared status checks.
        page_url: Its final URL (after redirects), against which endpoints are resolved.

    Raises:
        NonceNotFoundError: No usable bot: ``missing`` says what a chat box lacks, or
            ``looked_for`` what was looked for when there is no chat box at all (the
            message also names another chat plugin the page shows, if any).
    """
    protocols = registered()
    bots: list[Bot] = []
    incomplete: list[tuple[SiteProtocol, tuple[str, ...]]] = []
    for protocol in protocols:
        findings = protocol.find_bots(html, page_url)
        bots.extend(findings.bots)
        incomplete.extend((protocol, missing) for missing in findings.incomplete)
    if bots:
        return Page(page_url, tuple(sorted(bots, key=lambda bot: bot.position)))
    looked_for = tuple(protocol.looked_for for protocol in protocols)
    if incomplete:
        protocol, missing = incomplete[0]
        raise NonceNotFoundError(
            f"The page at {page_url} has an {protocol.label}, but it is missing "
            f"{protocol.describe_missing(missing)}.",
            page_url=page_url,
            missing=missing,
            looked_for=looked_for,
        )
    hints = [hint for protocol in protocols for marker, hint in protocol.hints if marker in html]
    seen = f" It shows {'; '.join(hints)}." if hints else ""
    raise NonceNotFoundError(
        f"The page at {page_url} shows no chat bot this package can talk to; it looked for "
        f"{' or '.join(looked_for)}.{seen}",
        page_url=page_url,
        looked_for=looked_for,
    )


def _of_plugin(page: Page, plugin: str) -> list[Bot]:
    """The bots ``plugin`` may talk to: those of a forced protocol, or the live ones."""
    if plugin != AUTO:
        bots = [bot for bot in page.bots if bot.protocol == plugin]
        if not bots:
            shown = ", ".join(sorted({bot.protocol for bot in page.bots}))
            raise NonceNotFoundError(
                f"The page at {page.url} shows no {plugin} bot (it shows: {shown}).",
                page_url=page.url,
                looked_for=(protocol_named(plugin).looked_for,),
            )
        return bots
    present = {bot.protocol for bot in page.bots}
    stale = {old for name in present for old in protocol_named(name).supersedes}
    return [bot for bot in page.bots if bot.protocol not in stale]


def choose_bot(page: Page, plugin: str = AUTO, bot_id: str | None = None) -> Bot:
    """The bot a model talks to.

    The rule: only bots of ``plugin`` when one is forced; with ``"auto"``, bots of a
    protocol that another one on the page supersedes (:attr:`SiteProtocol.supersedes`:
    e.g. a legacy AI Power box beside an AIPKit bot is stale markup, as a 2.3+ site no
    longer answers the legacy action) are passed over. Then the bot whose id is
    ``bot_id``, when given; else the first inline bot on the page, else the first bot.

    Raises:
        NonceNotFoundError: The page shows no bot of ``plugin``, or none with ``bot_id``
            (the message lists the ids it does show).
    """
    bots = _of_plugin(page, plugin)
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
