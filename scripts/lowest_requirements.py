"""Print the package's runtime dependencies pinned to the lowest versions pyproject allows.

``make test-deps`` installs these in a fresh environment, so the floor of every range is
tested, not only the newest release (``pip install 'x>=1.2'`` takes the newest).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lowest(requirement: str) -> str:
    """``name>=1.2,<2`` -> ``name==1.2`` (a requirement without a floor is kept as it is)."""
    match = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", requirement)
    if match is None:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    name, spec = match.groups()
    floor = re.search(r">=\s*([0-9][^,;\s]*)", spec)
    return f"{name}=={floor.group(1)}" if floor else requirement


def main() -> None:
    """Print one pinned requirement per line."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sys.stdout.write("".join(f"{lowest(r)}\n" for r in project["dependencies"]))


if __name__ == "__main__":
    main()
