"""The server around the site: recording, latency, sockets, lifecycle, CLI, optional import."""

from __future__ import annotations

import importlib
import json
import signal
import socket
import sys
import threading
import time

import pytest

from langchain_chatgptes.emulator import (
    DEFAULT_PLUGIN,
    PLUGINS,
    AipkitOptions,
    Emulator,
    MwaiOptions,
    PluginSite,
)
from langchain_chatgptes.emulator.__main__ import _emulator, _parser
from langchain_chatgptes.emulator._plugin import AJAX_PATH

from .conftest import T0, chat_fields, emulator_cli, post, request, stop


def test_recording(emu: Emulator) -> None:
    request(emu.base_url + "/?x=1&x=2", headers={"X-Test": "Yes"})
    fields = chat_fields(emu)
    post(emu, fields)
    request(emu.base_url + "/missing")
    page, chat, missing = emu.requests
    assert (page.method, page.path, page.query, page.form, page.body) == (
        "GET",
        "/",
        {"x": "2"},
        {},
        b"",
    )
    assert page.headers["x-test"] == "Yes"
    assert page.nonce_valid is None
    assert page.time == T0
    assert (chat.method, chat.path, chat.form, chat.nonce_valid) == (
        "POST",
        AJAX_PATH,
        fields,
        True,
    )
    assert chat.body.startswith(b"_wpnonce=")
    assert chat.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert missing.path == "/missing"
    assert emu.page_requests() == [page]
    assert emu.chat_requests() == [chat]
    snapshot = emu.requests
    snapshot.clear()
    assert len(emu.requests) == 3
    emu.clear()
    assert emu.requests == []


def test_on_flush_sees_each_stream_event_once_it_is_written(emu: Emulator) -> None:
    flushed: list[bytes] = []
    post(emu, chat_fields(emu))  # a JSON reply: nothing reported, and no hook needed
    emu.on_flush = flushed.append
    post(emu, chat_fields(emu))
    assert flushed == []
    emu.stream = True
    body = post(emu, chat_fields(emu, message="Hola mundo")).body
    assert len(flushed) > 3
    assert b"".join(flushed) == body  # every event, in order, before the reply ended
    assert all(event.endswith(b"\n\n") for event in flushed)


def test_latency_is_async(emu: Emulator) -> None:
    emu.latency, emu.page_latency = 0.3, 0.2
    start = time.monotonic()
    request(emu.base_url)
    assert 0.2 <= time.monotonic() - start < 0.3
    threads = [threading.Thread(target=post, args=(emu, chat_fields(emu))) for _ in range(4)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 0.3 <= time.monotonic() - start < 0.55  # concurrent, not serialised
    assert len(emu.chat_requests()) == 4


def test_server_sockets_have_tcp_nodelay(emu: Emulator) -> None:
    with socket.create_connection(("127.0.0.1", emu.port)) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.recv(1)
        runner = emu._runner  # only the server side of the socket can tell
        assert runner is not None
        assert runner.server is not None
        (handler,) = runner.server.connections
        assert handler.transport is not None
        server_socket = handler.transport.get_extra_info("socket")
        assert server_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_lifecycle() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    assert emu.start() is emu
    assert emu.start() is emu
    port = emu.port
    assert emu.base_url == f"http://127.0.0.1:{port}"
    assert request(emu.base_url).status == 200
    emu.stop()
    emu.stop()
    with pytest.raises(ConnectionRefusedError):
        request(f"http://127.0.0.1:{port}/")


def test_the_plugins_are_the_registrys() -> None:
    assert PLUGINS == ("wpaicg", "aipkit", "mwai")
    assert DEFAULT_PLUGIN == PLUGINS[0] == Emulator().plugin
    emu = Emulator()
    assert tuple(emu.sites) == PLUGINS
    for name, site in emu.sites.items():
        assert isinstance(site, PluginSite)
        assert site.name == name
    assert emu.site is emu.sites[DEFAULT_PLUGIN]
    emu.plugin = "mwai"  # a plain attribute, like every other
    assert emu.site is emu.sites["mwai"]
    with pytest.raises(ValueError, match="one of wpaicg, aipkit, mwai"):
        Emulator(plugin="nope")


def test_each_emulator_has_its_own_plugin_settings() -> None:
    first, second = Emulator(), Emulator(aipkit=AipkitOptions(bots=(5,), pro=True))
    assert first.aipkit is not Emulator().aipkit
    assert first.mwai.session_faults is not Emulator().mwai.session_faults
    assert (first.aipkit.bots, second.aipkit.bots, second.aipkit.pro) == ((123,), (5,), True)
    first.mwai.text_input_max_length = 100
    assert Emulator().mwai == MwaiOptions()


def test_cli_plugin_choices_and_settings() -> None:
    (plugin,) = [action for action in _parser()._actions if action.dest == "plugin"]
    assert (tuple(plugin.choices or ()), plugin.default) == (PLUGINS, DEFAULT_PLUGIN)
    argv = ["--plugin", "aipkit", "--bot-id", "4", "--pro", "--max-length", "0", "--stream"]
    emu = _emulator(vars(_parser().parse_args(argv)))
    assert (emu.plugin, emu.stream, emu.aipkit.bots, emu.aipkit.pro) == ("aipkit", True, [4], True)
    assert emu.mwai.text_input_max_length is None  # 0: no length check
    assert emu.aipkit.version == AipkitOptions().version
    assert (emu.mwai.bots, emu.mwai.rest_url_style) == (MwaiOptions().bots, "pretty")


def test_port_in_use_raises() -> None:
    with Emulator() as emu, pytest.raises(OSError, match=r"(?i)in use"):
        Emulator(port=emu.port).start()


def test_cli_serves_until_terminated() -> None:
    with emulator_cli("--stream") as (proc, base_url):
        html = request(base_url).text
        assert 'data-openai_stream_nav="1"' in html
        assert stop(proc) == 0  # SIGTERM: what a background job (SIGINT ignored) can get


def test_cli_stops_on_ctrl_c() -> None:
    with emulator_cli(ctrl_c=True) as (proc, base_url):
        assert request(base_url).status == 200
        assert stop(proc, signal.SIGINT) == 0


def test_missing_aiohttp_explains_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "langchain_chatgptes.emulator")
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # makes `import aiohttp` fail
    with pytest.raises(ImportError, match=r'pip install "langchain-chatgptes\[emulator\]"'):
        importlib.import_module("langchain_chatgptes.emulator")


def test_json_answer_from_echo_default(emu: Emulator) -> None:
    data = json.loads(post(emu, chat_fields(emu, message="  many\n\n spaces ")).body)["data"]
    assert data == "This answer comes from the local chatgpt.es emulator. You wrote: many spaces"
