"""``python -m langchain_chatgptes doctor`` against the local emulator."""

from __future__ import annotations

import io
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Literal

import pytest
from langchain_core.messages import HumanMessage

from langchain_chatgptes.__main__ import main
from langchain_chatgptes._doctor import PROMPT, run_doctor, run_doctors
from langchain_chatgptes._prompt import build_message
from langchain_chatgptes.emulator import Emulator, Reply, ScriptedResponder
from langchain_chatgptes.protocols.wpaicg import NONCE_EXPIRED_TEXT

BLOCKED = "blocked by an anti-bot (Cloudflare) challenge"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback


def doctor(base_url: str, proxy: str | None = None, timeout: float = 5) -> tuple[bool, str]:
    out = io.StringIO()
    healthy = run_doctor(base_url, proxy=proxy, timeout=timeout, impersonate="chrome", out=out)
    return healthy, out.getvalue()


LEGACY_STEPS = ("fetch page", "read page", "send prompt")
AIPKIT_STEPS = ("fetch page", "read page", "nonce", "cache POST", "stream")
MWAI_STEPS = ("fetch page", "read page", "session", "send prompt")


def lines(report: str, steps: tuple[str, ...] = LEGACY_STEPS) -> dict[str, str]:
    """The step lines of a report, by step name (the steps of one plugin's doctor)."""
    return {line[:12].strip(): line for line in report.splitlines() if line.startswith(steps)}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_healthy_site(emulator: Emulator, stream: bool) -> None:
    emulator.stream = stream
    emulator.responder = ScriptedResponder(["pong"])
    healthy, report = doctor(emulator.base_url)
    assert healthy
    steps = lines(report)
    assert all(line[13:17] == "OK  " for line in steps.values()), report
    assert f"nonce {emulator.current_nonce()}" in steps["read page"]
    assert "post id 2173" in steps["read page"]
    assert f"stream mode: {'on' if stream else 'off'}" in steps["read page"]
    assert "answer received: 'pong'" in steps["send prompt"]
    assert report.splitlines()[-1] == "healthy"
    # One page GET and one valid POST carrying exactly the doctor's prompt.
    (post,) = emulator.chat_requests()
    assert post.nonce_valid
    assert post.form["message"] == build_message([HumanMessage(PROMPT)])
    assert len(emulator.page_requests()) == 1


def test_long_answer_is_cut_to_80_characters(emulator: Emulator) -> None:
    emulator.responder = ScriptedResponder(["x" * 200])
    healthy, report = doctor(emulator.base_url)
    assert healthy
    assert f"answer received: '{'x' * 80}'" in report


def test_main_healthy(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--base-url", emulator.base_url, "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "answer received: " in out
    assert out.splitlines()[-1] == "healthy"


def test_main_reads_the_base_url_from_the_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHATGPTES_BASE_URL", emulator.base_url)
    monkeypatch.delenv("CHATGPTES_PROXY", raising=False)
    assert main(["doctor"]) == 0
    assert emulator.base_url in capsys.readouterr().out


def test_main_with_the_bundled_emulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CHATGPTES_PROXY", raising=False)
    assert main(["doctor", "--emulator"]) == 0
    captured = capsys.readouterr()
    assert "stream mode: on" in captured.out
    assert "local chatgpt.es emulator" in captured.err


def test_cloudflare_on_the_page(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emulator.cloudflare = "get"
    healthy, report = doctor(emulator.base_url)
    assert not healthy
    steps = lines(report)
    assert " OK " in steps["fetch page"]
    assert " FAIL " in steps["read page"]
    assert BLOCKED in steps["read page"]
    assert "--proxy or --impersonate safari" in steps["read page"]
    assert " SKIP " in steps["send prompt"]
    assert report.splitlines()[-1] == "not healthy: read page"
    assert emulator.chat_requests() == []

    assert main(["doctor", "--base-url", emulator.base_url, "--timeout", "5"]) == 1
    out = capsys.readouterr().out
    assert BLOCKED in out
    assert out.splitlines()[-1] == "not healthy: read page"


def test_cloudflare_on_the_chat_endpoint(emulator: Emulator) -> None:
    emulator.cloudflare = "post"
    healthy, report = doctor(emulator.base_url)
    assert not healthy
    assert BLOCKED in lines(report)["send prompt"]


def test_page_changed(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    # Chat boxes are found by the plugin's class, so a page without one says what was
    # looked for (the error's `looked_for`), not which attribute was missing.
    emulator.page_variant = "no_chat_box"
    healthy, report = doctor(emulator.base_url)
    assert not healthy
    line = lines(report)["read page"]
    # Every protocol's chat box is named in what was looked for.
    assert "page changed: no chat box found (looked for an AIPKit bot" in line
    assert "or the AI Power chat box (div.wpaicg-chat-shortcode" in line
    assert " SKIP " in lines(report)["send prompt"]
    assert main(["doctor", "--base-url", emulator.base_url, "--timeout", "5"]) == 1
    assert "page changed" in capsys.readouterr().out


def test_chat_box_without_a_nonce(emulator: Emulator) -> None:
    emulator.page_variant = "no_nonce"
    healthy, report = doctor(emulator.base_url)
    assert not healthy
    line = lines(report)["read page"]
    assert "page changed: no usable chat box: " in line
    assert "has an AI Power chat box, but it is missing the nonce (data-nonce or " in line
    assert "post id" not in line.partition("missing")[2]  # only what is missing is named


def test_chat_box_with_its_nonce_only_in_the_script(emulator: Emulator) -> None:
    emulator.page_variant = "no_data_nonce"
    healthy, report = doctor(emulator.base_url)
    assert healthy, report


def test_page_not_found(emulator: Emulator) -> None:
    healthy, report = doctor(f"{emulator.base_url}/gone")
    assert not healthy
    assert "page changed: HTTP 404 instead of the chat page" in lines(report)["read page"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_nonce_refreshed_once_like_the_model(emulator: Emulator, stream: bool) -> None:
    # The doctor takes the model's path, transparent nonce refresh included, and says so.
    emulator.stream = stream
    emulator.responder = ScriptedResponder([Reply.raw(403, NONCE_EXPIRED_TEXT), "pong"])
    healthy, report = doctor(emulator.base_url)
    assert healthy, report
    assert "answer received (after one nonce refresh): 'pong'" in lines(report)["send prompt"]
    assert [r.method for r in emulator.requests] == ["GET", "POST", "GET", "POST"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_nonce_rejected(emulator: Emulator, stream: bool) -> None:
    emulator.stream = stream
    emulator.responder = ScriptedResponder([Reply.raw(403, NONCE_EXPIRED_TEXT)] * 2)
    healthy, report = doctor(emulator.base_url)
    assert not healthy
    line = lines(report)["send prompt"]
    assert " FAIL " in line
    assert "nonce rejected" in line
    assert report.splitlines()[-1] == "not healthy: send prompt"


@pytest.mark.parametrize("nonce_failure", ["modern", "legacy"])
def test_nonce_expired_between_page_and_post(nonce_failure: Literal["modern", "legacy"]) -> None:
    # Every reading of the site's clock is three days after the previous one, so the nonce
    # on the page has expired by the time the POST is checked.
    clock = itertools.count(time.time(), 3 * 86400.0).__next__
    with Emulator(clock=clock, nonce_failure=nonce_failure) as emu:
        healthy, report = doctor(emu.base_url)
        # Rejected, refreshed once (as the model does), rejected again.
        assert [r.nonce_valid for r in emu.chat_requests()] == [False, False]
    assert not healthy
    assert "nonce rejected" in lines(report)["send prompt"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_site_error(emulator: Emulator, stream: bool, capsys: pytest.CaptureFixture[str]) -> None:
    emulator.stream = stream
    emulator.responder = ScriptedResponder([Reply.site_error("Incorrect API key provided.")])
    healthy, report = doctor(emulator.base_url)
    assert not healthy
    line = lines(report)["send prompt"]
    assert "SiteError" in line
    assert "Incorrect API key provided." in line

    emulator.responder = ScriptedResponder([Reply.site_error("Incorrect API key provided.")])
    assert main(["doctor", "--base-url", emulator.base_url, "--timeout", "5"]) == 1
    assert "Incorrect API key provided." in capsys.readouterr().out


def test_consent_required(emulator: Emulator) -> None:
    emulator.checkbox_field = "wpaicg_checkbox"
    healthy, report = doctor(emulator.base_url)
    assert not healthy
    assert "ConsentRequiredError" in lines(report)["send prompt"]


def test_timeout(emulator: Emulator) -> None:
    emulator.latency = 1.0
    healthy, report = doctor(emulator.base_url, timeout=0.2)
    assert not healthy
    assert "timed out" in lines(report)["send prompt"]


def test_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    healthy, report = doctor(UNREACHABLE)
    assert not healthy
    steps = lines(report)
    assert " FAIL " in steps["fetch page"]
    assert "unreachable" in steps["fetch page"]
    assert " SKIP " in steps["read page"]
    assert " SKIP " in steps["send prompt"]
    assert main(["doctor", "--base-url", UNREACHABLE, "--timeout", "5"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "not healthy: fetch page"


@pytest.mark.parametrize(
    ("proxy", "shown"),
    [
        ("http://alice:s3cret@127.0.0.1:9", "http://***@127.0.0.1:9"),
        ("socks5://alice:s3cret@127.0.0.1:9", "socks5://***@127.0.0.1:9"),
        ("ftp://alice:s3cret@127.0.0.1:9", "ftp://***@127.0.0.1:9"),  # curl echoes this one
        ("http://alice:s3cret@127.0.0.1:port", "proxy ***,"),  # unreadable: not shown at all
    ],
)
def test_proxy_credentials_are_never_printed(
    proxy: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    healthy, report = doctor(UNREACHABLE, proxy=proxy)
    assert not healthy
    assert "s3cret" not in report
    assert "alice" not in report
    assert shown in report
    assert main(["doctor", "--base-url", UNREACHABLE, "--proxy", proxy]) == 1
    captured = capsys.readouterr()
    assert "s3cret" not in captured.out + captured.err


def test_unknown_impersonate_target() -> None:
    out = io.StringIO()
    healthy = run_doctor(UNREACHABLE, proxy=None, timeout=5, impersonate="netscape4", out=out)
    assert not healthy
    assert "--impersonate" in lines(out.getvalue())["fetch page"]


def test_a_question_is_still_asked(emulator: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--base-url", emulator.base_url, "--no-stream", "--timeout", "5", "what is up"]
    assert main(args) == 0
    assert "You wrote: what is up" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
@pytest.mark.parametrize("command", [["doctor"], []])
def test_a_time_limit_must_be_more_than_zero(
    value: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # curl reads 0 as "no limit" (the doctor waited forever) and -1 failed deep in curl.
    with pytest.raises(SystemExit) as info:
        main([*command, "--timeout", value, "--base-url", UNREACHABLE, *([] if command else ["q"])])
    assert info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_a_server_that_does_not_speak_http() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.recv(1024)
            connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        healthy, report = doctor(f"http://127.0.0.1:{listener.getsockname()[1]}")
    finally:
        listener.close()
    assert not healthy
    line = lines(report)["fetch page"]
    assert "not in HTTP" in line and "unreachable" not in line


# --- an AIPKit site ----------------------------------------------------------------------


@pytest.fixture
def aipkit_site() -> Iterator[Emulator]:
    with Emulator(plugin="aipkit") as site:
        yield site


def test_healthy_aipkit_site(aipkit_site: Emulator) -> None:
    aipkit_site.responder = ScriptedResponder(["pong"])
    healthy, report = doctor(aipkit_site.base_url)
    assert healthy, report
    steps = lines(report, AIPKIT_STEPS)
    assert list(steps) == ["fetch page", "read page", "nonce", "cache POST", "stream"]
    assert all(line[13:17] == "OK  " for line in steps.values()), report
    assert "aipkit bot 123 ('Support Bot'), inline" in steps["read page"]
    assert "the plugin hands out fresh nonces" in steps["nonce"]
    assert "answer received: 'pong'" in steps["stream"]
    # The page, one nonce request, one cache POST and one stream GET, nothing more.
    assert [(r.method, r.action) for r in aipkit_site.requests] == [
        ("GET", ""),
        ("POST", "aipkit_get_frontend_chat_nonce"),
        ("POST", "aipkit_cache_sse_message"),
        ("GET", "aipkit_frontend_chat_stream"),
    ]
    assert aipkit_site.cache_requests()[0].form["message"] == build_message([HumanMessage(PROMPT)])


def test_aipkit_site_without_a_nonce_action(aipkit_site: Emulator) -> None:
    aipkit_site.aipkit.nonce_refresh = False
    healthy, report = doctor(aipkit_site.base_url)
    assert healthy, report
    assert "no fresh-nonce endpoint (an older plugin)" in lines(report, AIPKIT_STEPS)["nonce"]


def test_aipkit_cache_post_failing_skips_the_stream(aipkit_site: Emulator) -> None:
    aipkit_site.aipkit.cache_faults.append(Reply.raw(503, '{"success":false,"data":{}}'))
    healthy, report = doctor(aipkit_site.base_url)
    assert not healthy
    steps = lines(report, AIPKIT_STEPS)
    assert " FAIL " in steps["cache POST"] and "503" in steps["cache POST"]
    assert " SKIP " in steps["stream"] and "'cache POST' failed" in steps["stream"]
    assert report.splitlines()[-1] == "not healthy: cache POST"
    assert aipkit_site.stream_requests() == []


def test_aipkit_stream_failing_is_its_own_line(aipkit_site: Emulator) -> None:
    aipkit_site.responder = ScriptedResponder([Reply.site_error("upstream down")])
    healthy, report = doctor(aipkit_site.base_url)
    assert not healthy
    steps = lines(report, AIPKIT_STEPS)
    assert " OK " in steps["cache POST"]
    assert " FAIL " in steps["stream"] and "API Error: upstream down" in steps["stream"]
    assert report.splitlines()[-1] == "not healthy: stream"


def test_doctor_plugin_and_bot_id_options(
    aipkit_site: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    aipkit_site.aipkit.bots = (5, 6)
    argv = ["doctor", "--base-url", aipkit_site.base_url, "--timeout", "5"]
    assert main([*argv, "--plugin", "aipkit", "--bot-id", "6"]) == 0
    out = capsys.readouterr().out
    assert "plugin aipkit, bot 6)" in out and "aipkit bot 6" in out
    assert "also on the page: 1 more" in out
    assert main([*argv, "--plugin", "wpaicg"]) == 1
    assert "shows no wpaicg bot (it shows: aipkit)" in capsys.readouterr().out
    assert main([*argv, "--bot-id", "9"]) == 1
    assert "no bot with the id '9'" in capsys.readouterr().out


def test_doctor_with_the_bundled_aipkit_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--emulator", "--plugin", "aipkit"]) == 0
    captured = capsys.readouterr()
    assert "cache POST" in captured.out and "stream" in captured.out
    assert "emulator (aipkit)" in captured.err


# --- an AI Engine site ---------------------------------------------------------------------


@pytest.fixture
def mwai_site() -> Iterator[Emulator]:
    with Emulator(plugin="mwai") as site:
        yield site


def test_healthy_ai_engine_site(mwai_site: Emulator) -> None:
    mwai_site.responder = ScriptedResponder(["pong"])
    healthy, report = doctor(mwai_site.base_url)
    assert healthy, report
    steps = lines(report, MWAI_STEPS)
    assert list(steps) == ["fetch page", "read page", "session", "send prompt"]
    assert "mwai bot default" in steps["read page"]
    assert "longest message 512 characters" in steps["read page"]
    assert "session started: REST nonce" in steps["session"]
    assert "answer received: 'pong'" in steps["send prompt"]
    # The session the doctor started is the one its prompt uses: one of each request.
    assert [r.route or r.method for r in mwai_site.requests] == [
        "GET",
        "/mwai/v1/start_session",
        "/mwai-ui/v1/chats/submit",
    ]


def test_ai_engine_before_sessions(mwai_site: Emulator) -> None:
    mwai_site.mwai.rest_nonce_in_page = True
    mwai_site.mwai.start_session = False
    healthy, report = doctor(mwai_site.base_url)
    assert healthy, report
    assert "no start_session route (AI Engine before 2.4.4)" in lines(report, MWAI_STEPS)["session"]


def test_ai_engine_without_any_nonce_fails_at_the_session(mwai_site: Emulator) -> None:
    mwai_site.mwai.start_session = False
    healthy, report = doctor(mwai_site.base_url)
    assert not healthy
    steps = lines(report, MWAI_STEPS)
    assert " FAIL " in steps["session"] and "no start_session route" in steps["session"]
    assert " SKIP " in steps["send prompt"]


def test_ai_engine_session_fault_is_its_line(mwai_site: Emulator) -> None:
    mwai_site.mwai.session_faults.append(Reply.raw(502, "<html>Bad gateway</html>"))
    healthy, report = doctor(mwai_site.base_url)
    assert not healthy
    assert (
        " FAIL " in lines(report, MWAI_STEPS)["session"]
        and "502" in lines(report, MWAI_STEPS)["session"]
    )


def test_ai_engine_error_on_the_prompt(mwai_site: Emulator) -> None:
    mwai_site.banned_words = ("pong",)
    healthy, report = doctor(mwai_site.base_url)
    assert not healthy
    assert "rejected" in lines(report, MWAI_STEPS)["send prompt"]


def test_doctor_with_the_bundled_ai_engine_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--emulator", "--plugin", "mwai"]) == 0
    captured = capsys.readouterr()
    assert "session" in captured.out and "emulator (mwai)" in captured.err


# --- several sites ---------------------------------------------------------------------------


def test_several_sites_are_checked_in_turn_and_ranked(emulator: Emulator) -> None:
    out = io.StringIO()
    healthy = run_doctors(
        [UNREACHABLE, emulator.base_url], proxy=None, timeout=5, impersonate="chrome", out=out
    )
    report = out.getvalue()
    assert healthy  # one site answers
    assert report.count("doctor: ") == 2
    ranking = report.split("sites, best first:\n", 1)[1].splitlines()
    assert ranking[0].startswith(" 1. OK") and emulator.base_url in ranking[0]
    assert ranking[1].startswith(" 2. FAIL") and UNREACHABLE in ranking[1]
    assert f"order (site_order='listed'): {emulator.base_url}\n" in report
    assert "1 of 2 sites answered" in report


def test_the_cli_checks_every_url_and_exits_0_when_one_answers(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", UNREACHABLE, emulator.base_url, "--timeout", "5"]) == 0
    assert "1 of 2 sites answered" in capsys.readouterr().out
    assert main(["doctor", UNREACHABLE, "http://127.0.0.1:7", "--timeout", "5"]) == 1
    assert "no site answered" in capsys.readouterr().out


def test_the_cli_can_check_one_emulated_site_per_plugin(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["doctor", "--emulator", "--all-plugins"]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 sites answered" in out
    assert all(f"{name} bot" in out for name in ("wpaicg", "aipkit", "mwai"))


def test_every_url_is_checked_before_any_request() -> None:
    out = io.StringIO()
    with pytest.raises(ValueError, match="base_url"):
        run_doctors(
            ["http://127.0.0.1:9", "ftp://x"], proxy=None, timeout=5, impersonate="chrome", out=out
        )
    assert out.getvalue() == ""
