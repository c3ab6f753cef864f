"""A faithful local chatgpt.es for tests and demos: WordPress page + AI Power admin-ajax.

Real HTTP over loopback, in a background thread, so clients are tested exactly as they talk
to the site (nonces, JSON or event-stream replies, the site's errors)::

    from langchain_chatgptes.emulator import Emulator, ScriptedResponder, Reply

    with Emulator(stream=True) as emu:
        emu.responder = ScriptedResponder(["Hola", Reply.site_error("Upstream down")])
        ...  # point the client at emu.base_url
        assert emu.chat_requests()[0].form["message"] == "Hi"

``Emulator(plugin="aipkit", aipkit=AipkitOptions(bots=(5,)))`` is a site running AIPKit (AI
Power / AI Puffer >= 2.3) instead: ``data-config`` bots, the cache POST + SSE stream, the nonce
refresh endpoint, server-side history (``AipkitOptions(version="2.4.0")`` adds
``streamEnabled`` and the JSON endpoint).

``Emulator(plugin="mwai", mwai=MwaiOptions(...))`` is a site running AI Engine (Meow Apps)
3.6.2: ``data-system`` bots, the WordPress REST API with ``rest_cookie_check_errors``,
``POST /mwai/v1/start_session`` and ``POST /mwai-ui/v1/chats/submit`` (JSON or ``data:``
lines), client-side history.

:data:`PLUGINS` names the emulated plugins (:data:`DEFAULT_PLUGIN` first); each is a
``PluginSite`` subclass in the emulator's registry. :class:`SilentSite` is a site that never
answers, for tests of timeouts and of failover between several sites.

Needs aiohttp: ``pip install "langchain-chatgptes[emulator]"``. Run it standalone with
``python -m langchain_chatgptes.emulator --port 8000``.
"""

try:
    import aiohttp  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'The chatgpt.es emulator needs aiohttp: pip install "langchain-chatgptes[emulator]"'
    ) from exc

from langchain_chatgptes.emulator._aipkit import AipkitOptions
from langchain_chatgptes.emulator._mwai import MwaiOptions
from langchain_chatgptes.emulator._records import RecordedRequest
from langchain_chatgptes.emulator._registry import DEFAULT_PLUGIN, PLUGINS
from langchain_chatgptes.emulator._server import Emulator
from langchain_chatgptes.emulator._silent import SilentSite
from langchain_chatgptes.emulator._site import PluginSite
from langchain_chatgptes.emulator._tool_model import CallStyle, ToolModelResponder
from langchain_chatgptes.emulator.responders import (
    ChatRequest,
    EchoResponder,
    Reply,
    Responder,
    ScriptedResponder,
)

__all__ = [
    "DEFAULT_PLUGIN",
    "PLUGINS",
    "AipkitOptions",
    "CallStyle",
    "ChatRequest",
    "EchoResponder",
    "Emulator",
    "MwaiOptions",
    "PluginSite",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedResponder",
    "SilentSite",
    "ToolModelResponder",
]
