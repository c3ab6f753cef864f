"""The notebooks run top to bottom against the local emulator of each plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import shared_emulator

NOTEBOOKS = sorted((Path(__file__).parents[2] / "docs" / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("plugin", ["aipkit", "mwai", "wpaicg"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(
    path: Path, plugin: Literal["aipkit", "mwai", "wpaicg"], monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = shared_emulator(True, plugin)
    monkeypatch.setenv("CHATGPTES_BASE_URL", emulator.base_url)  # the kernel inherits it
    notebook = nbformat.read(path, as_version=4)
    before = len(emulator.chat_requests())
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert len(emulator.chat_requests()) > before  # the notebook really talked to the site
