"""Command line: ``python -m langchain_chatgptes "question"`` streams the answer.

Options choose the site (``--base-url``, or ``--emulator`` for the bundled local emulator),
the proxy, the model label, and ``--no-stream`` for one whole answer.

``python -m langchain_chatgptes doctor`` checks the site step by step instead (page reachable,
chat box found, one short prompt answered) and prints a verdict per step; it exits with 0
when every step passed, 1 otherwise. See ``doctor --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from langchain_chatgptes._doctor import run_doctor, run_doctors
from langchain_chatgptes._trust import host_entry
from langchain_chatgptes.chat_models import DEFAULT_BASE_URL, KNOWN_MODELS, ChatChatGptEs
from langchain_chatgptes.errors import ChatGptEsError
from langchain_chatgptes.protocols import plugin_names

PROXY_HELP = "http(s)://, socks4(a):// or socks5(h):// proxy (default: $CHATGPTES_PROXY)"


def _seconds(text: str) -> float:
    """A time limit on the command line: a number of seconds above 0 (curl reads 0 as none)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: the time limit must be more than 0 seconds")
    return value


def _host(text: str) -> str:
    """An ``--allowed-host`` value, checked as ``allowed_hosts`` entries are."""
    try:
        return host_entry(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _plugin_arguments(parser: argparse.ArgumentParser) -> None:
    """``--plugin``, ``--bot-id`` and ``--allowed-host``: which plugin, bot and hosts."""
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        type=_host,
        metavar="HOST",
        help="a host besides the page's own that its chat box may send requests to "
        "(repeatable; see allowed_hosts)",
    )
    parser.add_argument(
        "--plugin",
        choices=plugin_names(),
        help="the site's chat plugin protocol (default: $CHATGPTES_PLUGIN or auto: the one "
        "the page shows; with --emulator: the protocol the emulator speaks)",
    )
    parser.add_argument(
        "--bot-id", help="the chat bot to talk to when the page has several (default: the page's)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m langchain_chatgptes",
        description="Ask chatgpt.es (or any WordPress site running the AI Power / AIPKit or AI "
        "Engine chat plugin) a question.",
        epilog="To check the site step by step when it breaks: python -m langchain_chatgptes "
        "doctor [--base-url URL] [--proxy URL] [--timeout S] [--impersonate TARGET] (see "
        "doctor --help).",
    )
    parser.add_argument("question", nargs="?", help="the question; read from stdin if omitted")
    parser.add_argument(
        "--base-url", help=f"the site (default: $CHATGPTES_BASE_URL or {DEFAULT_BASE_URL})"
    )
    parser.add_argument("--proxy", help=PROXY_HELP)
    parser.add_argument("--model", default="gpt-4o", choices=KNOWN_MODELS, help="model label")
    parser.add_argument(
        "--timeout", type=_seconds, default=60.0, help="seconds, more than 0 (default: 60)"
    )
    parser.add_argument("--no-stream", action="store_true", help="print the whole answer at once")
    _plugin_arguments(parser)
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="start the bundled local emulator of the site and talk to it (offline)",
    )
    return parser


def _doctor_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m langchain_chatgptes doctor",
        description="Check the site step by step: fetch the chat page, read its chat bots "
        "(protocol, nonce, stream mode), ask for a fresh nonce where the plugin can, send one "
        "short prompt. Prints a verdict and the time "
        "of each step; exits with 0 when every step passed, 1 otherwise.",
    )
    parser.add_argument(
        "sites",
        nargs="*",
        metavar="URL",
        help="the sites to check, in the order a model would list them (default: --base-url, "
        f"$CHATGPTES_BASE_URL or {DEFAULT_BASE_URL}); with several, a ranking follows",
    )
    parser.add_argument(
        "--base-url", help=f"the site (default: $CHATGPTES_BASE_URL or {DEFAULT_BASE_URL})"
    )
    parser.add_argument("--proxy", help=PROXY_HELP)
    parser.add_argument(
        "--timeout", type=_seconds, default=30.0, help="seconds, more than 0 (default: 30)"
    )
    parser.add_argument(
        "--impersonate",
        default="chrome",
        help="curl_cffi browser target, e.g. chrome, safari, firefox (default: chrome)",
    )
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="check a fresh bundled local emulator of the site instead (offline demo)",
    )
    parser.add_argument(
        "--all-plugins",
        action="store_true",
        help="with --emulator: start one emulated site per plugin and check them all",
    )
    _plugin_arguments(parser)
    return parser


@contextmanager
def _site(args: argparse.Namespace, *, stream: bool = True) -> Iterator[str | None]:
    """The base URL to use: the user's, or a local emulator's for the block's duration."""
    if not args.emulator:
        yield args.base_url
        return
    from langchain_chatgptes.emulator import DEFAULT_PLUGIN, PLUGINS, Emulator

    # The plugin asked for, when the emulator has it; else the emulator's default one.
    plugin = args.plugin if args.plugin in PLUGINS else DEFAULT_PLUGIN
    with Emulator(stream=stream, chunk_delay=0.02, plugin=plugin) as emulator:
        print(f"[local chatgpt.es emulator ({plugin}) at {emulator.base_url}]", file=sys.stderr)
        yield emulator.base_url


@contextmanager
def _doctor_sites(args: argparse.Namespace) -> Iterator[list[str]]:
    """The sites to check: the emulators started for the purpose, or the user's."""
    if args.emulator and args.all_plugins:
        from langchain_chatgptes.emulator import PLUGINS, Emulator

        with ExitStack() as stack:
            emulators = [stack.enter_context(Emulator(plugin=name)) for name in PLUGINS]
            for name, emulator in zip(PLUGINS, emulators, strict=True):
                print(f"[local emulator ({name}) at {emulator.base_url}]", file=sys.stderr)
            yield [emulator.base_url for emulator in emulators]
        return
    with _site(args) as base_url:
        given = args.sites or ([base_url] if base_url else [])
        listed = os.environ.get("CHATGPTES_BASE_URL", "").replace(",", " ").split()
        yield given or listed or [DEFAULT_BASE_URL]


def _doctor(argv: Sequence[str]) -> int:
    """Run ``doctor``; returns the exit status."""
    args = _doctor_parser().parse_args(argv)
    try:
        with _doctor_sites(args) as sites:
            options: dict[str, Any] = {
                "proxy": args.proxy or os.environ.get("CHATGPTES_PROXY") or None,
                "timeout": args.timeout,
                "impersonate": args.impersonate,
                "out": sys.stdout,
                "plugin": args.plugin or os.environ.get("CHATGPTES_PLUGIN") or "auto",
                "bot_id": args.bot_id,
                "allowed_hosts": tuple(args.allowed_host),
            }
            if len(sites) == 1:
                healthy = run_doctor(sites[0], **options)
            else:
                healthy = run_doctors(sites, **options)
    except ValueError as exc:  # a base URL that is not one
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if healthy else 1


def _model_settings(args: argparse.Namespace, base_url: str | None) -> dict[str, Any]:
    """The model's settings the command line gives (the others: environment or defaults)."""
    given = {
        "base_url": base_url,
        "proxy": args.proxy,
        "plugin": args.plugin,
        "bot_id": args.bot_id,
        "allowed_hosts": args.allowed_host,
    }
    return {name: value for name, value in given.items() if value}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["doctor"]:
        return _doctor(argv[1:])
    args = _parser().parse_args(argv)
    question = args.question if args.question is not None else sys.stdin.read()
    if not question.strip():
        _parser().error("no question given")
    try:
        with _site(args, stream=not args.no_stream) as base_url:
            settings = _model_settings(args, base_url)
            with ChatChatGptEs(model=args.model, timeout=args.timeout, **settings) as model:
                if args.no_stream:
                    print(model.invoke(question).text)
                else:
                    for chunk in model.stream(question):
                        print(chunk.text, end="", flush=True)
                    print()
    except ChatGptEsError as exc:
        print(f"error ({type(exc).__name__}): {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # invalid settings (pydantic) name the field at fault
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `| head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
