"""Run the chatgpt.es emulator in the foreground: ``python -m langchain_chatgptes.emulator``."""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any, get_args

from langchain_chatgptes.emulator import (
    DEFAULT_PLUGIN,
    PLUGINS,
    AipkitOptions,
    Emulator,
    MwaiOptions,
)
from langchain_chatgptes.emulator._pages import PageVariant


class _Stop(Exception):
    """SIGTERM arrived: stop serving, as Ctrl-C does."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _parser() -> argparse.ArgumentParser:
    """The emulator's options; ``aipkit_*`` and ``mwai_*`` go to the plugins' settings."""
    parser = argparse.ArgumentParser(
        prog="python -m langchain_chatgptes.emulator", description=__doc__
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8000, help="0 picks a free port")
    add("--stream", action="store_true", help="answer with an event stream")
    add("--latency", type=float, default=0.0, help="seconds before each chat answer")
    add("--page-latency", type=float, default=0.0, help="seconds before each page")
    add("--chunk-delay", type=float, default=0.0, help="seconds between stream events")
    add("--nonce-failure", choices=["modern", "legacy"], default="modern")
    add("--nonce-life", type=float, default=86400.0)
    add("--post-id", default="2173")
    add("--legacy-trailing-json", action="store_true")
    add("--cloudflare", choices=["off", "get", "post", "both"], default="off")
    add("--checkbox-field", default=None, help="e.g. check_51710191")
    add("--sanitize", choices=["raw", "text_field"], default="raw")
    add("--banned-word", action="append", default=[], dest="banned_words")
    add("--banned-ip", action="append", default=[], dest="banned_ips")
    add("--token-limit", type=int, default=None)
    add(
        "--page-variant",
        choices=get_args(PageVariant),
        default="standard",
    )
    add("--page-endpoint", default=None, help="the chat endpoint the page names (hostile pages)")
    add(
        "--plugin",
        choices=PLUGINS,
        default=DEFAULT_PLUGIN,
        help="aipkit: AI Power >= 2.3; mwai: AI Engine 3.6.2",
    )
    add("--aipkit-version", default="2.4.71", help="e.g. 2.4.0 for streamEnabled + JSON endpoint")
    add("--bot-id", type=int, action="append", dest="aipkit_bots", help="AIPKit bot (repeatable)")
    add("--aipkit-layout", choices=["inline", "popup"], default="inline")
    add("--unpublished-bot", type=int, action="append", default=[], dest="aipkit_unpublished")
    add("--stream-off-bot", type=int, action="append", default=[], dest="aipkit_stream_off")
    add("--no-nonce-refresh", action="store_false", dest="aipkit_nonce_refresh")
    add("--pro", action="store_true", dest="aipkit_pro", help="AIPKit Pro: cross-origin embeds")
    add("--allowed-origin", action="append", default=[], dest="aipkit_allowed_origins")
    mwai = parser.add_argument_group("AI Engine (--plugin mwai)").add_argument
    mwai("--mwai-bot", action="append", dest="mwai_bots", help="chatbot id (repeatable)")
    mwai("--mwai-custom-bot", action="append", default=[], dest="mwai_custom_bots")
    mwai(
        "--max-length",
        type=int,
        default=512,
        dest="mwai_text_input_max_length",
        help="textInputMaxLength (0: none)",
    )
    mwai("--instructions", dest="mwai_instructions", help="the system message")
    mwai("--rest-nonce-in-page", action="store_true", dest="mwai_rest_nonce_in_page")
    mwai("--no-start-session", action="store_false", dest="mwai_start_session")
    mwai("--no-stream-option", action="store_false", dest="mwai_stream_option")
    mwai(
        "--rest-url-style",
        choices=["pretty", "plain", "relative"],
        default="pretty",
        dest="mwai_rest_url_style",
    )
    mwai("--max-messages", type=int, default=15, dest="mwai_max_messages")
    mwai("--moderate", action="append", default=[], dest="mwai_moderation", help="a word")
    mwai("--no-usage", action="store_false", dest="mwai_usage", help="no usage key")
    return parser


def _emulator(options: dict[str, Any]) -> Emulator:
    """An emulator with these options; the plugins' own go into their settings objects."""
    settings: dict[str, dict[str, Any]] = {"aipkit": {}, "mwai": {}}
    for name in list(options):
        prefix, _, key = name.partition("_")
        if prefix in settings:
            value = options.pop(name)
            if value is not None:  # not given: the plugin's default
                settings[prefix][key] = value
    mwai = settings["mwai"]
    if mwai.get("text_input_max_length", 1) <= 0:
        mwai["text_input_max_length"] = None  # no length check
    return Emulator(**options, aipkit=AipkitOptions(**settings["aipkit"]), mwai=MwaiOptions(**mwai))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, serve until Ctrl-C or SIGTERM."""
    emulator = _emulator(vars(_parser().parse_args(argv)))
    # A shell's background job ignores SIGINT, so SIGTERM stops it cleanly too.
    signal.signal(signal.SIGTERM, _stop)
    try:
        emulator.start()
        print(f"chatgpt.es emulator listening on {emulator.base_url}  (Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        emulator.stop()


if __name__ == "__main__":
    main()
