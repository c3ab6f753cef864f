"""The emulated plugins by name: the one list of them, the default first."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from langchain_chatgptes.emulator._aipkit import AipkitSite
from langchain_chatgptes.emulator._mwai import MwaiSite
from langchain_chatgptes.emulator._site import PluginSite
from langchain_chatgptes.emulator._wpaicg import WpaicgSite

SITES: Mapping[str, type[PluginSite]] = MappingProxyType(
    {site.name: site for site in (WpaicgSite, AipkitSite, MwaiSite)}
)
"""Each emulated plugin's site class, by the name ``Emulator(plugin=…)`` takes."""

PLUGINS: tuple[str, ...] = tuple(SITES)
"""The emulated plugins' names, the default first."""

DEFAULT_PLUGIN: str = PLUGINS[0]
"""The plugin of ``Emulator()``: the legacy AI Power plugin (``wpaicg``), as on chatgpt.es."""
