"""The registry is the only list of protocols: nothing outside ``protocols/`` (and the
emulator, an independent oracle) names a plugin, and every list of plugins comes from it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from langchain_chatgptes import ChatChatGptEs
from langchain_chatgptes.__main__ import _doctor_parser, _parser
from langchain_chatgptes.protocols import plugin_names, protocol_named, registered

PACKAGE = Path(__file__).parents[2] / "langchain_chatgptes"
BUILT_IN = ("aipkit", "mwai", "wpaicg")


def string_constants(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_plugin_names_are_literals_only_in_protocols_and_the_emulator() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {value!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in ("protocols", "emulator")
        for line, value in string_constants(path)
        if value in BUILT_IN
    ]
    assert found == []


def test_the_lists_of_plugins_come_from_the_registry() -> None:
    names = tuple(protocol.name for protocol in registered())
    assert set(BUILT_IN) <= set(names)
    assert plugin_names() == ("auto", *names)
    for parser in (_parser(), _doctor_parser()):
        (action,) = [a for a in parser._actions if a.dest == "plugin"]
        assert tuple(action.choices or ()) == plugin_names()


def test_an_unknown_plugin_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="plugin must be one of 'auto', 'aipkit'"):
        ChatChatGptEs(plugin="nope")
    assert ChatChatGptEs(plugin="mwai").plugin == "mwai"


def test_each_protocol_says_what_the_rest_of_the_package_needs() -> None:
    for name in BUILT_IN:
        protocol = protocol_named(name)
        assert protocol.label and protocol.looked_for
        assert all(marker and meaning for marker, meaning in protocol.hints)
        assert all(other in plugin_names() for other in protocol.supersedes)


def test_a_protocol_declared_as_an_entry_point_is_registered_at_first_use(
    tmp_path: Path,
) -> None:
    # A distribution on sys.path declaring the entry point, as `pip install` would leave it.
    (tmp_path / "shout_protocol.py").write_text(
        textwrap.dedent(
            """
            from langchain_chatgptes.protocols import Findings, SiteProtocol

            class ShoutProtocol(SiteProtocol):
                name = "shout"
                looked_for = "a shout box"

                def find_bots(self, html, page_url):
                    return Findings()

                def start(self, bot, state, chat):
                    raise NotImplementedError
            """
        )
    )
    info = tmp_path / "shout_protocol-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-protocol\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[langchain_chatgptes.protocols]\nshout = shout_protocol:ShoutProtocol\n"
    )
    script = textwrap.dedent(
        """
        from langchain_chatgptes import ChatChatGptEs
        from langchain_chatgptes.protocols import plugin_names
        print(ChatChatGptEs(plugin="shout").plugin, plugin_names())
        """
    )
    done = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "shout ('auto', 'aipkit', 'mwai', 'wpaicg', 'shout')"


def test_register_protocol_refuses_what_cannot_work() -> None:
    from langchain_chatgptes.protocols import register_protocol

    with pytest.raises(ValueError, match="takes a SiteProtocol"):
        register_protocol(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="registered already"):
        register_protocol(type(protocol_named("mwai"))())
    auto = type("Auto", (type(protocol_named("mwai")),), {"name": "auto"})
    with pytest.raises(ValueError, match="other than 'auto'"):
        register_protocol(auto())
