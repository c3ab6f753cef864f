"""The client and the emulator write the plugin's facts down independently; they must agree.

The emulator is the oracle the client is tested against, so it takes nothing from the
client: a wrong string copied into both would let every test pass. Like h11's test against
the standard library, two separate writings of the same facts are compared here instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

from langchain_chatgptes import emulator
from langchain_chatgptes.emulator import _aipkit_plugin as aipkit_site
from langchain_chatgptes.emulator import _mwai_plugin as mwai_site
from langchain_chatgptes.emulator import _plugin as site
from langchain_chatgptes.protocols import aipkit, mwai
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


def test_aipkit_constants_agree_with_the_emulators() -> None:
    pairs = {
        "container class": (aipkit.CONTAINER_CLASS, aipkit_site.CONTAINER_CLASS),
        "popup class": (aipkit.POPUP_CLASS, aipkit_site.POPUP_CLASS),
        "cache action": (aipkit.CACHE_ACTION, aipkit_site.CACHE_ACTION),
        "stream action": (aipkit.STREAM_ACTION, aipkit_site.STREAM_ACTION),
        "message action": (aipkit.MESSAGE_ACTION, aipkit_site.MESSAGE_ACTION),
        "nonce refresh action": (aipkit.NONCE_ACTION, aipkit_site.REFRESH_ACTION),
        "cache nonce-failure code": (aipkit.NONCE_FAILURE_CODE, aipkit_site.CACHE_NONCE_CODE),
        "not-public codes": (
            sorted(aipkit.NOT_PUBLIC_CODES),
            sorted((aipkit_site.EMBED_NOT_AVAILABLE_CODE, aipkit_site.CORS_DENIED_CODE)),
        ),
        "stream nonce errors": (
            sorted(aipkit.STREAM_NONCE_ERRORS),
            sorted((aipkit_site.STREAM_NONCE_MSG, aipkit_site.OLD_STREAM_NONCE_MSG)),
        ),
        "cache-gone errors": (
            sorted(aipkit.CACHE_GONE_ERRORS),
            sorted(
                (
                    aipkit_site.KEY_MISSING_MSG,
                    aipkit_site.KEY_NOT_FOUND_MSG,
                    aipkit_site.KEY_EXPIRED_MSG,
                )
            ),
        ),
        "not-public error": (aipkit.NOT_PUBLIC_ERROR, aipkit_site.CORS_DENIED_MSG),
        "quota errors": (
            sorted(aipkit.QUOTA_ERRORS),
            sorted((aipkit_site.GUESTS_DISABLED_MSG, aipkit_site.QUOTA_MSG)),
        ),
    }
    disagree = {fact: pair for fact, pair in pairs.items() if pair[0] != pair[1]}
    assert not disagree, f"client vs emulator: {disagree}"


def test_ai_engine_constants_agree_with_the_emulators() -> None:
    pairs = {
        "container class": (mwai.CONTAINER_CLASS, mwai_site.CONTAINER_CLASS),
        "submit route": (mwai.SUBMIT_ROUTE, mwai_site.SUBMIT_ROUTE),
        "session route": (mwai.SESSION_ROUTE, mwai_site.SESSION_ROUTE),
        "session cookie": (mwai.SESSION_COOKIE, mwai_site.SESSION_COOKIE),
        "nonce codes": (
            sorted(mwai.NONCE_CODES),
            sorted((mwai_site.INVALID_NONCE[0], mwai_site.FORBIDDEN[0])),
        ),
        "no-route code": (mwai.NO_ROUTE_CODE, mwai_site.NO_ROUTE[0]),
        "rejection": (mwai.REJECTED, mwai_site.REJECTED_MSG),
        "default length limit": (mwai.DEFAULT_MAX_LENGTH, mwai_site.DEFAULT_MAX_LENGTH),
        "history window": (mwai.MAX_MESSAGES, mwai_site.MAX_MESSAGES),
        "guests' over-limit message is a limit": (
            True,
            mwai_site.OVER_LIMIT_MSG.startswith(mwai.LIMIT_PREFIXES),
        ),
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
