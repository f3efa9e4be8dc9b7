"""The installed distribution is one import package, `trafficlight`, holding every code folder."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Repository folders that install under another name (pyproject's package-dir).
MAPPED = {"router": "trafficlight.router", "streams": "trafficlight.streams",
          "migrations": "trafficlight.migrations"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_name(folder: Path) -> str:
    parts = folder.relative_to(ROOT).parts
    head = MAPPED.get(parts[0], parts[0])
    return ".".join((head, *parts[1:]))


def test_every_code_folder_is_listed_as_an_installed_package() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {_package_name(init.parent)
             for top in ("trafficlight", *MAPPED) for init in (ROOT / top).rglob("__init__.py")}
    assert found == listed


def test_the_design_folders_install_inside_the_trafficlight_namespace() -> None:
    assert _pyproject()["tool"]["setuptools"]["package-dir"] == {
        name: folder for folder, name in MAPPED.items()}


def test_outside_the_clone_only_the_trafficlight_namespace_imports(tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u, trafficlight.router.decision, trafficlight.streams.judge, "
        "trafficlight.migrations\n"
        "print([n for n in ('router', 'streams', 'migrations') if u.find_spec(n)])"
    )
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                           text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert found.stdout.strip() == "[]"
