"""``make bench``: this package against g4f's ChatGptEs and a raw-POST floor, side by side.

One emulator (in this process), every client in its own fresh process, every figure the
median of repeated runs with its spread. Writes the raw figures to
``benchmarks/results.json`` and what the docs show (and the sdist ships) to
``docs/assets/benchmarks.md`` (included by ``docs/performance.md``) and ``.png``. The g4f
versions come from ``--target`` installs under ``.bench/`` (see the Makefile); they are
never dependencies of the package.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_chatgptes.emulator import ChatRequest, Emulator, Reply, SilentSite

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks"  # the raw figures (results.json)
PUBLISHED = ROOT / "docs" / "assets"  # the table and chart the docs show (and ship)
CLIENT_SCRIPT = OUT / "clients.py"
G4F = {"seed-0.5.2": ROOT / ".bench/g4f-0.5.2.0", "seed-0.4.8": ROOT / ".bench/g4f-0.4.8.0"}
NAMES = {
    "chatgptes-sync": "chatgptes (sync)",
    "chatgptes-async": "chatgptes (async)",
    "seed-0.5.2": "g4f 0.5.2.0 ChatGptEs (seed)",
    "seed-0.4.8": "g4f 0.4.8.0 ChatGptEs (aiohttp)",
    "floor-sync": "floor: raw curl_cffi POST (sync)",
    "floor-async": "floor: raw curl_cffi POST (async)",
    "langchain-noop": "reference: langchain-core with a no-op async model (no HTTP)",
    "chatgptes-own": "chatgptes (async, own path: _astream without BaseChatModel.astream)",
    "floor-aipkit-sync": "floor: raw curl_cffi cache POST + stream GET (sync)",
    "floor-aipkit-async": "floor: raw curl_cffi cache POST + stream GET (async)",
    "floor-mwai-sync": "floor: raw curl_cffi REST POST, one session (sync)",
    "floor-mwai-async": "floor: raw curl_cffi REST POST, one session (async)",
}
LEGACY_SEQUENTIAL = (
    "chatgptes-sync",
    "chatgptes-async",
    "seed-0.5.2",
    "seed-0.4.8",
    "floor-sync",
    "floor-async",
    "langchain-noop",
)
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
BIG_CHARS = 10 * 1024 * 1024
CONCURRENT = 64
LATENCY = 0.2


@dataclass
class Row:
    """One figure for one client: median and spread over repeats."""

    metric: str
    client: str
    unit: str
    values: list[float]
    note: str = ""
    ratio: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cells(self) -> list[str]:
        low, high = min(self.values), max(self.values)
        spread = f"{_fmt(low, self.unit)} – {_fmt(high, self.unit)}" if len(self.values) > 1 else ""
        return [
            self.metric,
            self.client,
            _fmt(self.median, self.unit),
            spread,
            self.ratio,
            self.note,
        ]


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(" | ".join(row.cells()), flush=True)
        return row


def _fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value * 1000:.2f} ms"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "MB":
        return f"{value / 1e6:.1f} MB"
    return f"{value:.2f}"


def run(client: str, scenario: str, emulator: Emulator, **options: Any) -> dict[str, Any]:
    """Run one client on one scenario in a fresh process and return its measurements."""
    env = dict(os.environ)
    if client in G4F:
        env["PYTHONPATH"] = str(G4F[client])
    command = [sys.executable, str(CLIENT_SCRIPT), "--client", client, "--scenario", scenario]
    command += ["--base-url", emulator.base_url, "--nonce", emulator.current_nonce()]
    command += ["--post-id", emulator.post_id, "--bot-id", str(emulator.aipkit.bots[0])]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{client} {scenario} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def repeat(times: int, measure: Callable[[], float]) -> list[float]:
    """``measure`` called ``times`` times."""
    return [measure() for _ in range(times)]


def big_sse_body() -> bytes:
    piece = ("lorem ipsum dolor sit amet " * 400)[:10_240]
    event = "data: " + json.dumps({"choices": [{"delta": {"content": piece}}]}) + "\n\n"
    return (event * (BIG_CHARS // len(piece)) + "data: [DONE]\n\n").encode()


def requests_per_call(emulator: Emulator, results: Results) -> None:
    for client in ("chatgptes-sync", "chatgptes-async", "seed-0.5.2", "seed-0.4.8", "floor-sync"):

        def measure(client: str = client) -> float:
            counts = []
            for n in (2, 12):  # fresh processes: the difference is the steady state
                emulator.clear()
                run(client, "calls", emulator, n=n)
                counts.append(len(emulator.requests))
            return (counts[1] - counts[0]) / 10

        results.add(
            Row("HTTP requests per call (steady state)", NAMES[client], "", repeat(1, measure))
        )


def sequential(emulator: Emulator, results: Results) -> None:
    for latency, n in ((0.0, 40), (0.05, 10)):
        emulator.latency = latency
        label = f"sequential latency per call at {int(latency * 1000)} ms"
        rows: dict[str, Row] = {}
        for client in [name for name in NAMES if name in LEGACY_SEQUENTIAL]:
            values = [
                run(client, "sequential", emulator, n=n, latency=latency)["per_call"]
                for _ in range(REPEATS)
            ]
            rows[client] = results.add(Row(label, NAMES[client], "ms", values))
        # langchain-core's own cost per call under the same conditions: a no-op model's time
        # minus its sleep (after an idle wait the same Python work runs slower here).
        langchain_own = rows["langchain-noop"].median - latency
        for ours, floor in (("chatgptes-sync", "floor-sync"), ("chatgptes-async", "floor-async")):
            overhead = rows[ours].median - rows[floor].median
            rows[ours].ratio = f"{rows[ours].median / rows[floor].median:.2f}× floor"
            rows[ours].note = (
                f"overhead {overhead * 1000:+.2f} ms/call vs the floor; langchain-core alone "
                f"(no-op model, same latency): {langchain_own * 1000:.2f} ms/call"
            )
        for seed in ("seed-0.5.2", "seed-0.4.8"):
            rows[seed].ratio = f"{rows[seed].median / rows['chatgptes-async'].median:.2f}× ours"
    emulator.latency = 0.0


def concurrent(emulator: Emulator, results: Results) -> None:
    emulator.latency = LATENCY
    cases = [
        ("chatgptes-async", CONCURRENT, "max_concurrency=64"),
        ("chatgptes-async", 16, "max_concurrency=16 (default)"),
        ("seed-0.5.2", CONCURRENT, ""),
        ("seed-0.4.8", CONCURRENT, ""),
        ("floor-async", CONCURRENT, "max_clients=64"),
        ("langchain-noop", CONCURRENT, "sleeps 200 ms"),
    ]
    walls: dict[str, Row] = {}
    for client, limit, note in cases:
        repeats = REPEATS if not client.startswith("seed-0.5") else 3
        runs = [
            run(client, "concurrent", emulator, n=CONCURRENT, concurrency=limit, latency=LATENCY)
            for _ in range(repeats)
        ]
        name = NAMES[client] + (f" [{note}]" if note else "")
        ideal = LATENCY * math.ceil(CONCURRENT / limit)
        wall = results.add(
            Row(
                f"{CONCURRENT} concurrent calls at 200 ms: wall time",
                name,
                "s",
                [r["wall"] for r in runs],
            )
        )
        wall.ratio = f"{wall.median / ideal:.2f}× ideal ({ideal:.1f} s)"
        walls[name] = wall
        results.add(
            Row(
                "longest event-loop stall during those calls",
                name,
                "ms",
                [r["max_stall"] for r in runs],
            )
        )
    ours = walls[NAMES["chatgptes-async"] + " [max_concurrency=64]"].median
    seed = walls[NAMES["seed-0.5.2"]]
    seed.note = f"ours is {seed.median / ours:.0f}× faster"
    emulator.latency = 0.0


class FirstTextClock:
    """An ``Emulator.on_flush`` hook: when the first event carrying answer text was flushed.

    ``time.perf_counter()`` is system-wide (CLOCK_MONOTONIC), so it can be compared with the
    client process's own reading of it.
    """

    def __init__(self) -> None:
        self.flushed_at: float | None = None

    def reset(self) -> None:
        self.flushed_at = None

    def __call__(self, event: bytes) -> None:
        if self.flushed_at is None and _answer_text(event):
            self.flushed_at = time.perf_counter()


def _answer_text(event: bytes) -> str:
    """The text of a ``chat.completion.chunk`` or AIPKit ``{"delta"}`` event, else ""."""
    for line in event.decode("utf-8", "replace").splitlines():
        if line.startswith("data: {"):
            try:
                data = json.loads(line[len("data: ") :])
            except ValueError:
                return ""
            if isinstance(data.get("delta"), str):  # AIPKit: unnamed events carry text
                return str(data["delta"])
            if data.get("type") == "live" and "subtype" not in data:  # AI Engine's tokens
                return str(data.get("data") or "")
            choices = data.get("choices") or [{}]
            delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            return content if isinstance(content, str) else ""
    return ""


def first_chunk_rows(emulator: Emulator, results: Results, metric: str) -> None:
    """Our two clients' first text after the emulator flushed it (the emulator streams)."""
    clock = FirstTextClock()
    emulator.on_flush = clock
    for client in ("chatgptes-sync", "chatgptes-async"):

        def measure(client: str = client) -> float:
            clock.reset()
            arrived = run(client, "first_chunk", emulator)["first_chunk_at"]
            assert clock.flushed_at is not None, "the emulator sent no answer text"
            return float(arrived - clock.flushed_at)

        results.add(Row(metric, NAMES[client], "ms", repeat(REPEATS, measure)))
    emulator.on_flush = None


def first_chunk(emulator: Emulator, results: Results) -> None:
    emulator.stream = True
    first_chunk_rows(emulator, results, "first chunk after the emulator flushed it")
    for seed in ("seed-0.5.2", "seed-0.4.8"):
        results.add(
            Row(
                "first chunk after the emulator flushed it",
                NAMES[seed],
                "",
                [math.nan],
                note="cannot read an event stream (expects JSON)",
            )
        )
    emulator.stream = False


def memory(emulator: Emulator, results: Results) -> None:
    sse = big_sse_body()
    whole = "x" * BIG_CHARS

    def responder(request: ChatRequest) -> Reply | str:
        if not request.message.endswith("big"):
            return "small"
        return Reply.raw(200, sse, "text/event-stream") if emulator.stream else whole

    emulator.responder = responder
    for client, streams in (
        ("chatgptes-sync", True),
        ("chatgptes-async", True),
        ("chatgptes-own", True),
        ("chatgptes-async", False),
        ("seed-0.5.2", False),
        ("seed-0.4.8", False),
    ):
        emulator.stream = streams
        runs = [run(client, "memory", emulator) for _ in range(3)]
        assert all(r["chars"] >= BIG_CHARS * 0.99 for r in runs)
        mode = "event stream" if streams else "JSON reply"
        name = f"{NAMES[client]} [{mode}]"
        row = results.add(
            Row("peak RSS growth, 10 MB answer", name, "MB", [r["rss_growth"] for r in runs])
        )
        row.ratio = f"{row.median / BIG_CHARS:.1f}× answer size"
        traced = results.add(
            Row(
                "peak Python heap (tracemalloc), 10 MB answer",
                name,
                "MB",
                [r["traced_peak"] for r in runs],
            )
        )
        traced.ratio = f"{traced.median / BIG_CHARS:.1f}× answer size"
    emulator.responder = None
    emulator.stream = False


PROTOCOL_GROUPS = {
    "aipkit": ("AIPKit", 2, "the two raw requests"),
    "mwai": ("AI Engine", 1, "the raw REST POST"),
}
"""Per newer protocol: its row label, requests per call, and what its floor does."""


def protocol_group(plugin: str, results: Results) -> None:
    """The same figures on a site of another plugin, against that protocol's raw floor."""
    label, requests, floor_does = PROTOCOL_GROUPS[plugin]
    floor_sync, floor_async = f"floor-{plugin}-sync", f"floor-{plugin}-async"
    with Emulator(plugin=plugin) as emulator:
        for client in ("chatgptes-sync", "chatgptes-async", floor_sync):

            def measure(client: str = client) -> float:
                counts = []
                for n in (2, 12):
                    emulator.clear()
                    run(client, "calls", emulator, n=n)
                    counts.append(len(emulator.requests))
                return (counts[1] - counts[0]) / 10

            row = results.add(
                Row(
                    f"{label}: HTTP requests per call (steady state)",
                    NAMES[client],
                    "",
                    [measure()],
                )
            )
            row.ratio = f"floor {requests}"
        for seed in ("seed-0.5.2", "seed-0.4.8"):
            results.add(
                Row(
                    f"{label}: HTTP requests per call (steady state)",
                    NAMES[seed],
                    "",
                    [math.nan],
                    note=f"speaks only the legacy protocol: cannot talk to an {label} site",
                )
            )
        metric = f"{label}: sequential latency per call at 0 ms"
        rows: dict[str, Row] = {}
        for client in ("chatgptes-sync", "chatgptes-async", floor_sync, floor_async):
            values = [run(client, "sequential", emulator, n=40)["per_call"] for _ in range(REPEATS)]
            rows[client] = results.add(Row(metric, NAMES[client], "ms", values))
        for ours, floor in (("chatgptes-sync", floor_sync), ("chatgptes-async", floor_async)):
            overhead = rows[ours].median - rows[floor].median
            rows[ours].ratio = f"{rows[ours].median / rows[floor].median:.2f}× floor"
            rows[ours].note = f"overhead {overhead * 1000:+.2f} ms/call vs {floor_does}"
        emulator.latency = LATENCY
        ideal = requests * LATENCY  # every request waits for the emulator's latency
        for client in ("chatgptes-async", floor_async):
            runs = [
                run(client, "concurrent", emulator, n=CONCURRENT, concurrency=CONCURRENT)
                for _ in range(REPEATS)
            ]
            name = f"{NAMES[client]} [max_concurrency=64]"
            wall = results.add(
                Row(
                    f"{label}: {CONCURRENT} concurrent calls at 200 ms per request: wall time",
                    name,
                    "s",
                    [r["wall"] for r in runs],
                )
            )
            wall.ratio = f"{wall.median / ideal:.2f}× ideal ({ideal:.1f} s)"
            results.add(
                Row(
                    f"{label}: longest event-loop stall during those calls",
                    name,
                    "ms",
                    [r["max_stall"] for r in runs],
                )
            )
        emulator.latency = 0.0
        first_chunk_rows(emulator, results, f"{label}: first chunk after the emulator flushed it")


def import_time(results: Results) -> None:
    # Both figures from one fresh process, so the difference is not two processes' noise.
    code = (
        "import time; t0 = time.perf_counter(); "
        "from langchain_core.language_models import BaseChatModel; t1 = time.perf_counter(); "
        "import langchain_chatgptes; langchain_chatgptes.ChatChatGptEs(); "
        "t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
    )
    core, extra = [], []
    for _ in range(max(REPEATS, 7)):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        first, second = map(float, done.stdout.split())
        core.append(first)
        extra.append(second)
    results.add(Row("import langchain-core BaseChatModel", "langchain-core alone", "ms", core))
    row = results.add(
        Row("import langchain_chatgptes + first construction, over that", "chatgptes", "ms", extra)
    )
    row.ratio = "target ≤ 50 ms"


def write(results: Results, started: datetime.datetime) -> None:
    machine = (
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{started:%Y-%m-%d}"
    )
    header = ["figure", "client", "median", "spread (min – max)", "ratio", "note"]
    lines = [
        f"Measured by `make bench` on {machine}; {REPEATS} repeats unless noted, each in fresh "
        "processes, all against one local emulator.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += [
        "| " + " | ".join(c if c != "nan" else "n/a" for c in row.cells()) + " |"
        for row in results.rows
    ]
    table = "\n".join(lines).replace("nan", "n/a") + "\n"
    (PUBLISHED / "benchmarks.md").write_text(table)  # docs/performance.md includes it
    (OUT / "results.json").write_text(
        json.dumps(
            {"machine": machine, "rows": [row.__dict__ for row in results.rows]},
            indent=1,
            default=str,
        )
    )
    chart(results, machine)


def chart(results: Results, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("sequential latency per call at 0 ms", "ms per call, emulator at 0 ms", 1000),
        ("sequential latency per call at 50 ms", "ms per call, emulator at 50 ms", 1000),
        (
            f"{CONCURRENT} concurrent calls at 200 ms: wall time",
            "s for 64 calls at 200 ms (log)",
            1,
        ),
        ("longest event-loop stall during those calls", "longest loop stall, ms (log)", 1000),
    ]
    figure, axes = plt.subplots(2, 2, figsize=(13, 8))
    for axis, (metric, title, scale) in zip(axes.flat, panels, strict=True):
        rows = [row for row in results.rows if row.metric == metric]
        labels = [row.client.replace(" [", "\n[") for row in rows]
        axis.barh(labels, [row.median * scale for row in rows], color="#4C72B0")
        axis.set_title(title, fontsize=10)
        axis.tick_params(axis="y", labelsize=7)
        if "log" in title:
            axis.set_xscale("log")
        axis.invert_yaxis()
    figure.suptitle(
        f"langchain-chatgptes vs g4f ChatGptEs vs raw curl_cffi — {machine}", fontsize=9
    )
    figure.tight_layout()
    figure.savefig(PUBLISHED / "benchmarks.png", dpi=110)


FAILOVER_CALLS = 20
FAILOVER_TIMEOUT = 2.0


def _timed_calls(call: Callable[[int], object]) -> float:
    """Seconds for :data:`FAILOVER_CALLS` sequential calls."""
    started = time.perf_counter()
    for n in range(FAILOVER_CALLS):
        call(n)
    return time.perf_counter() - started


def failover(results: Results) -> None:
    """20 sequential calls when the first of two sites hangs (timeout 2 s), three ways."""
    from langchain_chatgptes import ChatChatGptEs, SiteCache

    metric = f"{FAILOVER_CALLS} sequential calls, first of two sites hangs (timeout 2 s)"
    hanging = SilentSite(hold=True)
    try:
        with Emulator() as healthy:

            def model(*urls: str) -> ChatChatGptEs:
                base: Any = list(urls) if len(urls) > 1 else urls[0]
                return ChatChatGptEs(
                    base_url=base, timeout=FAILOVER_TIMEOUT, max_retries=0, site_cache=SiteCache()
                )

            alone = model(healthy.base_url)
            alone.invoke("warm")
            latency = _timed_calls(lambda n: alone.invoke(f"call {n}")) / FAILOVER_CALLS
            target = (FAILOVER_TIMEOUT + FAILOVER_CALLS * latency) * 1.1
            ours = [_failover_run(model(hanging.url, healthy.base_url)) for _ in range(3)]
            row = results.add(Row(metric, "chatgptes [base_url=[hanging, healthy]]", "s", ours))
            row.ratio = f"target ≤ {target:.2f} s (2 s + 20 × {latency * 1000:.1f} ms + 10 %)"
            row.note = "met" if row.median <= target else "missed"
            fallbacks = model(hanging.url).with_fallbacks([model(healthy.base_url)])
            row = results.add(
                Row(
                    metric,
                    "LangChain with_fallbacks over the same two sites",
                    "s",
                    [_timed_calls(lambda n: fallbacks.invoke(f"{n}"))],
                    note="no memory: pays the timeout on every call",
                )
            )
            row.ratio = f"{row.median / statistics.median(ours):.1f}× ours"
            pattern = [model(hanging.url), model(healthy.base_url)]
            row = results.add(
                Row(
                    metric,
                    "g4f RetryProvider's pattern (shuffled each call, no memory)",
                    "s",
                    [_timed_calls(lambda n: _retry_provider(pattern, f"{n}"))],
                    note="the pattern, with this package's single-site models",
                )
            )
            row.ratio = f"{row.median / statistics.median(ours):.1f}× ours"
    finally:
        hanging.close()


def _failover_run(model: Any) -> float:
    """Seconds for the calls on one fresh model (a fresh site cache: nothing known yet)."""
    return _timed_calls(lambda n: model.invoke(f"call {n}"))


def _retry_provider(models: list[Any], prompt: str) -> object:
    """g4f's RetryProvider: the providers shuffled, each tried in turn, nothing remembered."""
    order = random.sample(models, len(models))
    for index, model in enumerate(order):
        try:
            return model.invoke(prompt)
        except Exception:
            if index == len(order) - 1:
                raise
    raise AssertionError("unreachable")


def main() -> None:
    started = datetime.datetime.now(datetime.UTC)
    results = Results()
    with Emulator() as emulator:
        requests_per_call(emulator, results)
        sequential(emulator, results)
        concurrent(emulator, results)
        first_chunk(emulator, results)
        memory(emulator, results)
    for plugin in PROTOCOL_GROUPS:
        protocol_group(plugin, results)
    failover(results)
    import_time(results)
    write(results, started)
    print(f"\nwrote {OUT / 'results.json'} and {PUBLISHED}/benchmarks.md, .png")


if __name__ == "__main__":
    main()
