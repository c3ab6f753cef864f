"""``make demo`` (examples/demo.py) runs offline and talks to each emulated plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_the_demo_runs_on_each_plugin() -> None:
    done = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120, check=True
    )
    out = done.stdout
    assert "detected: aipkit bot 123" in out
    assert "detected: wpaicg bot 0" in out
    assert "detected: mwai bot default" in out
    assert "1 page GET (nonce cached), then 1 session POST and 2 chat POSTs" in out
    assert "1 page GET (nonce cached), then 2 cache POSTs and 2 stream GETs" in out
    assert "1 page GET (nonce cached), then 2 chat POSTs" in out
    assert out.count("LOCAL EMULATOR") == 3
