"""The project's import graph, read from the source with `ast` (nothing is imported).

Used by tests/test_layers.py, and runnable on any checkout to print package-level edges:

    python -m tests.import_graph [ROOT]    # ROOT: a checkout, default the current directory

Source folders map to module names as pyproject's ``[tool.setuptools.package-dir]`` says
(``router/`` -> ``trafficlight.router``); without a mapping a folder is its own package.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Source folders: the installed package's and the design's top-level ones.
SOURCE_DIRS = ("trafficlight", "router", "streams", "migrations")


@dataclass(frozen=True, slots=True)
class Import:
    """``importer`` (a module) imports ``imported`` (a module or a name in one) at ``line``."""

    importer: str
    imported: str
    line: int
    #: Inside a function or class body rather than at module level.
    nested: bool


def package_dirs(root: Path) -> dict[str, str]:
    """Folder -> the module name it installs as."""
    mapping = {name: name for name in SOURCE_DIRS}
    pyproject = root / "pyproject.toml"
    if pyproject.exists():
        table = tomllib.loads(pyproject.read_text())
        dirs = table.get("tool", {}).get("setuptools", {}).get("package-dir", {})
        for module, folder in dirs.items():
            mapping[folder] = module
    return mapping


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the source folders."""
    out: dict[str, Path] = {}
    for folder, package in package_dirs(root).items():
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            if ".venv" in path.parts:
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def imports(root: Path) -> Iterator[Import]:
    """Every import statement of the source folders (module level and nested)."""
    for module, path in modules(root).items():
        tree = ast.parse(path.read_text(), str(path))
        nested_lines = {
            n.lineno for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, alias.name, node.lineno, node.lineno in nested_lines)
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, path.name == "__init__.py", node)
                for alias in node.names:
                    yield Import(module, f"{target}.{alias.name}", node.lineno,
                                 node.lineno in nested_lines)


def own_module(name: str, known: dict[str, Path]) -> str | None:
    """The project module ``name`` is, or is a name inside; None for outside libraries."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def module_edges(root: Path) -> set[tuple[str, str]]:
    """(importer, imported) between the project's own modules, self-imports left out."""
    known = modules(root)
    edges = set()
    for imp in imports(root):
        target = own_module(imp.imported, known)
        if target is not None and target != imp.importer:
            edges.add((imp.importer, target))
    return edges


def package_of(module: str, known: dict[str, Path]) -> str:
    path = known[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0] or module


def package_edges(root: Path) -> Counter[tuple[str, str]]:
    """(importing package, imported package) -> how many module-to-module imports."""
    known = modules(root)
    counts: Counter[tuple[str, str]] = Counter()
    for importer, imported in module_edges(root):
        a, b = package_of(importer, known), package_of(imported, known)
        if a != b:
            counts[(a, b)] += 1
    return counts


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def main(argv: list[str]) -> None:
    root = Path(argv[0]) if argv else Path(".")
    edges = package_edges(root)
    print(f"package-level imports ({sum(edges.values())} module imports across packages):")
    for (a, b), n in sorted(edges.items()):
        back = "  <-> (both ways)" if (b, a) in edges else ""
        print(f"  {a:<30} -> {b:<30} {n:>3}{back}")
    found = cycles(module_edges(root))
    print(f"module import cycles: {len(found)}")
    for group in found:
        print("  " + " <-> ".join(group))


if __name__ == "__main__":
    main(sys.argv[1:])
