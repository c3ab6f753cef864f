"""Release metadata agrees with itself: pyproject.toml, LICENSE, CHANGELOG.md, README links.

Only files are read, nothing is built: ``make dist`` builds the sdist and the wheel and checks
what they carry (``scripts/check_dist.py``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT: dict[str, Any] = PYPROJECT["project"]
BUILD: dict[str, Any] = PYPROJECT["tool"]["hatch"]["build"]["targets"]
CHANGELOG = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _releases() -> list[tuple[str, str]]:
    """The changelog's ``## [version] - date`` headings, newest first."""
    return re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (.+)$", CHANGELOG, flags=re.MULTILINE)


def test_version_is_the_changelogs_newest() -> None:
    releases = _releases()
    assert releases, "CHANGELOG.md has no '## [x.y.z] - date' heading"
    assert releases[0][0] == PROJECT["version"]


def test_changelog_versions_descend_with_dates() -> None:
    releases = _releases()
    versions = [_version(version) for version, _ in releases]
    assert versions == sorted(versions, reverse=True)
    assert len(set(versions)) == len(versions)
    for position, (version, date) in enumerate(releases):
        # Only the newest may still say Unreleased; give it its date when releasing.
        allowed = r"\d{4}-\d{2}-\d{2}|Unreleased" if position == 0 else r"\d{4}-\d{2}-\d{2}"
        assert re.fullmatch(allowed, date), f"{version}: {date!r} is not a release date"


def test_license_is_mit() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The langchain-chatgptes authors" in text
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "License :: OSI Approved :: MIT License" in PROJECT["classifiers"]
    # license = "MIT" with license-files is PEP 639 metadata, which hatchling has from 1.27.
    (requirement,) = PYPROJECT["build-system"]["requires"]
    match = re.fullmatch(r"hatchling>=(\d+\.\d+)", requirement)
    assert match and _version(match[1]) >= (1, 27)


def test_python_classifiers_follow_requires_python() -> None:
    assert PROJECT["requires-python"] == ">=3.11"
    prefix = "Programming Language :: Python :: 3."
    minors = [int(c.removeprefix(prefix)) for c in PROJECT["classifiers"] if c.startswith(prefix)]
    assert minors
    assert min(minors) == 11


def test_no_invented_addresses() -> None:
    """The project has no public repository or home page yet: no metadata may name one."""
    assert "urls" not in PROJECT
    for name in ("README.md", "CHANGELOG.md", "pyproject.toml"):
        text = (ROOT / name).read_text(encoding="utf-8")
        for host in ("github.com", "githubusercontent.com"):
            assert host not in text, f"{name} links to a repository that does not exist yet"


def test_sdist_leaves_out_benchmark_results_and_local_files() -> None:
    sdist = BUILD["sdist"]
    for rule in ("/benchmarks/results.*", "/.bench", "/.benchmarks", "/.venv*", ".hypothesis"):
        assert rule in sdist["exclude"], rule
    for cache in ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert cache in sdist["exclude"], cache
    # Benchmark code may ship, never the whole folder (its results live there).
    assert "/benchmarks" not in sdist["include"]
    assert "/benchmarks/*.py" in sdist["include"]
    for needed in ("/langchain_chatgptes", "/tests", "/LICENSE", "/CHANGELOG.md", "/README.md"):
        assert needed in sdist["include"], needed
    for path in sdist["include"]:
        if "*" not in path:
            assert (ROOT / path.lstrip("/")).exists(), f"the sdist includes a missing {path}"


def test_wheel_ships_the_typed_package_only() -> None:
    assert BUILD["wheel"]["packages"] == ["langchain_chatgptes"]
    assert (ROOT / "langchain_chatgptes" / "py.typed").is_file()
    assert "Typing :: Typed" in PROJECT["classifiers"]


def test_readme_links_work_on_the_package_index() -> None:
    """PyPI shows README.md without the repository: a relative link or image would break."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    prose = re.sub(r"^```.*?^```", "", readme, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    targets = re.findall(r"\]\(([^)\s]+)", prose) + re.findall(r"src=\"([^\"]+)\"", prose)
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#", "mailto:"))]
    assert not relative, f"PyPI cannot follow these; name the file instead: {relative}"
