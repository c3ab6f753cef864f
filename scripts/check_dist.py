"""Check what `make dist` built, then run the installed wheel's command line.

``python scripts/check_dist.py contents DIST``
    The sdist and the wheel in DIST: the sdist carries what a source release needs and no
    benchmark results, local environments or caches; the wheel carries only the package
    (``py.typed`` included) and its metadata (version, license); both match pyproject.toml.

``python scripts/check_dist.py readme DIST``
    The wheel's long description (README.md) as the package index renders it (readme_renderer
    with its ``md`` extra, which ``twine check`` does not use for Markdown): it renders, every
    link and image is absolute, and every in-page link finds its heading.

``python scripts/check_dist.py smoke VENV``
    From a fresh directory outside the checkout (so the checkout's source cannot be imported
    instead of the wheel), with the virtual environment VENV where the wheel was installed
    with its ``emulator`` extra: ``import langchain_chatgptes`` comes from VENV, and
    ``chatgptes --emulator "Hello"`` and ``python -m langchain_chatgptes doctor --emulator``
    (on both emulated plugins) exit with 0 and say that the local emulator answered.

Exits with 1 and names every problem found; only ``readme`` needs more than the standard
library (``readme-renderer[md]``, installed by ``make dist`` beside build and twine).
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "langchain_chatgptes"

# Path parts that must never ship in the sdist: local environments, caches, build output.
FORBIDDEN_PARTS = {
    ".bench",
    ".benchmarks",
    ".git",
    ".hypothesis",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    "build",
    "dist",
}
SDIST_REQUIRED = [
    "PKG-INFO",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "Makefile",
    "scripts/check_dist.py",
    f"{PACKAGE}/__init__.py",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/emulator/__init__.py",
    "tests/unit_tests/conftest.py",
    "tests/integration_tests/conftest.py",
    "examples/demo.py",
    "docs/notebooks/quickstart.ipynb",
    "docs/notebooks/agents.ipynb",
    "docs/index.md",
    "docs/assets/benchmarks.md",
    "mkdocs.yml",
    "CONTRIBUTING.md",
    "benchmarks/bench.py",
]


def project() -> dict[str, str]:
    """The name and version pyproject.toml gives."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {"name": data["name"], "version": data["version"]}


def sdist_problems(sdist: Path, top: str) -> list[str]:
    """What is wrong with the sdist's file list (members are read, nothing is unpacked)."""
    with tarfile.open(sdist) as archive:
        names = [member.name for member in archive.getmembers() if member.isfile()]
    problems = []
    inside: set[str] = set()
    for name in names:
        path = PurePosixPath(name)
        if path.parts[0] != top:
            problems.append(f"sdist: {name} is outside {top}/")
            continue
        relative = PurePosixPath(*path.parts[1:])
        inside.add(str(relative))
        parts = relative.parts
        if (
            FORBIDDEN_PARTS.intersection(parts[:-1])
            or any(part.startswith((".venv", ".bench")) for part in parts)
            or relative.name.startswith("results.")
            or relative.suffix in {".pyc", ".pyo"}
        ):
            problems.append(f"sdist: {relative} must not be shipped (benchmark result or local)")
    problems += [f"sdist: {name} is missing" for name in SDIST_REQUIRED if name not in inside]
    return problems


def wheel_problems(wheel: Path, meta: dict[str, str]) -> list[str]:
    """What is wrong with the wheel: only the package and its metadata, both complete."""
    dist_info = f"{PACKAGE}-{meta['version']}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    problems = [
        f"wheel: {name} is neither the package nor its metadata"
        for name in names
        if PurePosixPath(name).parts[0] not in {PACKAGE, dist_info}
        or "__pycache__" in name
        or name.endswith((".pyc", ".pyo"))
    ]
    source = ROOT / PACKAGE
    expected = {
        f"{PACKAGE}/{path.relative_to(source).as_posix()}"
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    shipped = {name for name in names if name.startswith(f"{PACKAGE}/")}
    problems += [f"wheel: {name} is missing" for name in sorted(expected - shipped)]
    problems += [f"wheel: {name} is not in the source tree" for name in sorted(shipped - expected)]
    if f"{dist_info}/licenses/LICENSE" not in names:
        problems.append("wheel: the LICENSE file is not in its metadata")
    checks = {"Version": meta["version"], "License-Expression": "MIT", "Name": meta["name"]}
    for field, value in checks.items():
        if metadata.get(field) != value:
            problems.append(f"wheel: METADATA {field} is {metadata.get(field)!r}, not {value!r}")
    if "chatgptes = langchain_chatgptes.__main__:main" not in entry_points:
        problems.append("wheel: the chatgptes command is not among its entry points")
    return problems


def contents(dist: Path) -> list[str]:
    """Check the one sdist and the one wheel in ``dist``."""
    meta = project()
    stem = f"{PACKAGE}-{meta['version']}"
    sdist, wheel = dist / f"{stem}.tar.gz", dist / f"{stem}-py3-none-any.whl"
    found = sorted(path.name for path in dist.iterdir())
    if sorted([sdist.name, wheel.name]) != found:
        return [f"{dist}: expected {sdist.name} and {wheel.name}, found {found}"]
    problems = sdist_problems(sdist, stem) + wheel_problems(wheel, meta)
    if not problems:
        with tarfile.open(sdist) as archive:
            files = sum(member.isfile() for member in archive.getmembers())
        with zipfile.ZipFile(wheel) as archive:
            entries = len(archive.namelist())
        print(f"sdist {sdist.name}: {files} files, no benchmark results, local envs or caches")
        print(f"wheel {wheel.name}: {entries} entries, the package and its metadata only")
    return problems


def readme(dist: Path) -> list[str]:
    """Render the wheel's long description as the package index does and check its links."""
    meta = project()
    wheel = dist / f"{PACKAGE}-{meta['version']}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"{PACKAGE}-{meta['version']}.dist-info/METADATA").decode()
    message = HeaderParser().parsestr(metadata)
    if message.get("Description-Content-Type") != "text/markdown":
        return [f"the long description is {message.get('Description-Content-Type')!r}"]
    markdown = importlib.import_module("readme_renderer.markdown")
    html = markdown.render(message.get_payload(), variant="GFM")
    if not html:
        return ["the long description does not render (is readme-renderer[md] installed?)"]
    targets = re.findall(r'(?:href|src)="([^"]*)"', html)
    ids = set(re.findall(r'id="([^"]+)"', html))
    problems = [
        f"README: {target} is a relative link, which does not work on the package index"
        for target in targets
        if not target.startswith(("https://", "http://", "mailto:", "#"))
    ]
    problems += [
        f"README: the in-page link {target} finds no heading"
        for target in targets
        if target.startswith("#") and target[1:] not in ids
    ]
    if not problems:
        print(
            f"README as the package index renders it: {len(html)} characters of HTML, "
            f"{len(targets)} links and images, all absolute or to a heading of the page"
        )
    return problems


def run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run a command of the installed wheel, show its output; exit code, stdout, stderr."""
    print(f"$ cd {cwd} && {' '.join(command)}", flush=True)
    done = subprocess.run(  # noqa: S603 (fixed commands from the venv built by make dist)
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    print((done.stderr + done.stdout).rstrip(), flush=True)
    return done.returncode, done.stdout, done.stderr


def smoke(venv: Path) -> list[str]:
    """Run the installed wheel's command line against its bundled emulator, outside the tree."""
    venv = venv.resolve()
    python, script = venv / "bin" / "python", venv / "bin" / "chatgptes"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CHATGPTES_", "PYTHON", "VIRTUAL_ENV"))
    }
    problems = []
    with tempfile.TemporaryDirectory(prefix="chatgptes-dist-") as folder:
        cwd = Path(folder).resolve()
        if cwd.is_relative_to(ROOT):
            return [f"{cwd} is inside the checkout {ROOT}"]
        code, out, _ = run(
            [str(python), "-c", f"import {PACKAGE} as m; print(m.__file__); print(m.__version__)"],
            cwd,
            env,
        )
        lines = out.split()
        version = project()["version"]
        if code or len(lines) < 2 or not Path(lines[0]).is_relative_to(venv):
            problems.append(f"{PACKAGE} is not imported from {venv}")
        elif lines[1] != version:
            problems.append(f"the installed version is {lines[1]}, not {version}")
        commands = [
            [str(script), "--emulator", "Hello"],
            [str(python), "-m", PACKAGE, "doctor", "--emulator"],
            [str(python), "-m", PACKAGE, "doctor", "--emulator", "--plugin", "aipkit"],
            [str(python), "-m", PACKAGE, "doctor", "--emulator", "--plugin", "mwai"],
        ]
        for command in commands:
            code, out, err = run(command, cwd, env)
            shown = " ".join(command[command.index("--emulator") - 1 :])
            if code:
                problems.append(f"{shown}: exited with {code}")
            elif "local chatgpt.es emulator" not in err or "emulator" not in out:
                problems.append(f"{shown}: does not say that the local emulator answered")
            elif "doctor" in command and out.rstrip().splitlines()[-1] != "healthy":
                problems.append(f"{shown}: the doctor's verdict is not 'healthy'")
    return problems


def main(argv: list[str]) -> int:
    """Run one check, print its problems; 0 when there are none."""
    checks = {"contents": contents, "readme": readme, "smoke": smoke}
    if len(argv) != 2 or argv[0] not in checks:
        print(__doc__, file=sys.stderr)
        return 2
    check, target = argv[0], Path(argv[1])
    problems = checks[check](target)
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_dist {check}: OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
