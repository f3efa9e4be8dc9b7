"""The layers read bottom-up: base -> pure core -> services -> tools -> cli, never back up.

Read from the source with `ast` (tests/import_graph.py), so a lazy import inside a function
counts as much as one at the top: none may hide a cycle or an arrow against the layers.
"""

from __future__ import annotations

import subprocess
import sys
from enum import IntEnum
from pathlib import Path

import pytest

from tests.import_graph import cycles, imports, module_edges, modules

ROOT = Path(__file__).resolve().parents[1]

#: The Faust/Kafka/Postgres side of streams/; every other streams module is pure judging core.
STREAM_SERVICES = frozenset({"app", "worker", "sink", "actions", "deadletters", "plan_store",
                             "config_shares", "recovery_guard", "gaps"})


class Layer(IntEnum):
    BASE = 0
    CORE = 1
    SERVICES = 2
    TOOLS = 3
    CLI = 4


def layer_of(module: str) -> Layer:
    parts = module.split(".")
    match parts[1:2]:
        case ["base"]:
            return Layer.BASE
        case ["streams"]:
            return Layer.SERVICES if parts[2:3] and parts[2] in STREAM_SERVICES else Layer.CORE
        case ["router"] | ["migrations"]:
            return Layer.SERVICES
        case ["tools"]:
            return Layer.TOOLS
        case ["cli"]:
            return Layer.CLI
        case _:
            return Layer.BASE  # the package's own __init__ (version only)


def test_every_module_is_in_the_one_trafficlight_namespace() -> None:
    assert all(name.split(".")[0] == "trafficlight" for name in modules(ROOT))


def test_no_import_goes_against_the_layers() -> None:
    against = sorted(
        f"{a} ({layer_of(a).name.lower()}) imports {b} ({layer_of(b).name.lower()})"
        for a, b in module_edges(ROOT) if layer_of(b) > layer_of(a))
    assert against == []


def test_the_pure_core_imports_no_service_and_no_io_library() -> None:
    io_libraries = {"faust", "mode", "aiokafka", "asyncpg", "aiohttp", "click"}
    found = sorted(f"{i.importer}:{i.line} imports {i.imported}" for i in imports(ROOT)
                   if layer_of(i.importer) is Layer.CORE
                   and i.importer.startswith("trafficlight.streams")
                   and i.imported.split(".")[0] in io_libraries)
    assert found == []


def test_there_is_no_import_cycle() -> None:
    assert cycles(module_edges(ROOT)) == []


@pytest.mark.parametrize("top", ["router", "streams", "migrations"])
def test_nothing_imports_a_top_level_design_folder(top: str) -> None:
    sources = [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("bench").rglob("*.py")]
    found = sorted(f"{i.importer}:{i.line}" for i in imports(ROOT)
                   if i.imported == top or i.imported.startswith(f"{top}."))
    for path in sources:
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith((f"import {top}", f"from {top} ", f"from {top}.")):
                found.append(f"{path.relative_to(ROOT)}:{line_no}")
    assert found == []


def test_the_installed_package_is_the_only_import_name(tmp_path: Path) -> None:
    """From outside the clone only `trafficlight` imports; `router` is no package of ours."""
    script = ("import importlib.util as u, trafficlight.router, trafficlight.streams, "
              "trafficlight.migrations\n"
              "print(u.find_spec('router'), u.find_spec('streams'), u.find_spec('migrations'))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None", "None"]
    refused = subprocess.run([sys.executable, "-c", "import router"], cwd=tmp_path,
                             capture_output=True, text=True, check=False,
                             env={"PATH": "/usr/bin:/bin"})
    assert refused.returncode != 0
    assert "No module named 'router'" in refused.stderr
