"""The client and the emulator write the plugin's facts down independently; they must agree.

The emulator is the oracle the client is tested against, so it takes nothing from the
client: a wrong string copied into both would let every test pass. Like h11's test against
the standard library, two separate writings of the same facts are compared here instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

from langchain_chatgptes import emulator
from langchain_chatgptes.emulator import _plugin as site
from langchain_chatgptes.protocols import wpaicg as client


def test_client_constants_agree_with_the_emulators() -> None:
    pairs = {
        "action": (client.ACTION, site.ACTION),
        "admin-ajax path": (client.AJAX_PATH, site.AJAX_PATH),
        "nonce-expired body": (client.NONCE_EXPIRED_TEXT, site.NONCE_EXPIRED_TEXT),
        "legacy nonce-failure msg": (client.NONCE_FAILED_MSG, site.NONCE_FAILED_MSG),
        "checkbox sentence": (client.CHECKBOX_MESSAGE, site.CHECKBOX_MESSAGE),
        "token-limit key": (client.TOKEN_LIMIT_KEY, site.TOKEN_LIMIT_KEY),
        "flag keys": (sorted(client.FLAG_KEYS), sorted(site.FLAG_KEYS)),
        "chat box class": (client.CHAT_BOX_CLASS, site.CHAT_BOX_CLASS),
        "params variable": (client.PARAMS_VARIABLE, site.PARAMS_VARIABLE),
    }
    disagree = {fact: pair for fact, pair in pairs.items() if pair[0] != pair[1]}
    assert not disagree, f"client vs emulator: {disagree}"


def _imported(tree: ast.AST) -> list[str]:
    """Every module a source file imports (a relative import above the package as ``..``)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(".." if node.level > 1 else "." * node.level + (node.module or ""))
    return names


def test_the_emulator_imports_nothing_from_the_client() -> None:
    foreign = [
        f"{path.name}: {name}"
        for path in sorted(Path(emulator.__file__).parent.glob("*.py"))
        for name in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if name == ".."
        or (name.startswith("langchain_chatgptes") and not name.startswith(emulator.__name__))
    ]
    assert not foreign, "the emulator must not import the client"
