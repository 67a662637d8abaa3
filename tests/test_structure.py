"""The package's structure: no import cycle between its files, one name per class.

Both read the source with :mod:`ast` (nothing is imported or run), so they see every import,
at module level and inside functions (including ``TYPE_CHECKING`` blocks), and every class,
nested ones too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import networkx as nx

PACKAGE = "spineseg_core"
ROOT = Path(__file__).resolve().parent.parent

KNOWN_CYCLES: list[frozenset[str]] = []
"""Cycles tolerated for now, each as the set of its files."""

KNOWN_SHARED_CLASS_NAMES: dict[str, frozenset[str]] = {}
"""Class names that two files still share, with those files."""


def package_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package under ``root``."""
    files = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _imported_modules(tree: ast.Module, module: str, is_package: bool,
                      modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``tree`` imports: ``import X`` and ``from X import y``
    name ``X``, or ``X.y`` where that is a module (the packages above are left out)."""
    here = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                names.add(sub if sub in modules else base)
    return names & modules


def import_graph(root: Path = ROOT) -> nx.DiGraph:
    """Files of the package (paths relative to ``root``) with an edge from each file to every
    package file it imports (the module named, not the packages above it)."""
    files = package_files(root)
    graph = nx.DiGraph()
    for module, path in files.items():
        src = path.relative_to(root).as_posix()
        graph.add_node(src)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in _imported_modules(tree, module, path.name == "__init__.py", set(files)):
            if files[name] != path:
                graph.add_edge(src, files[name].relative_to(root).as_posix())
    return graph


def import_cycles(root: Path = ROOT) -> list[frozenset[str]]:
    """The groups of files that import each other, directly or through others."""
    return [frozenset(c) for c in nx.strongly_connected_components(import_graph(root))
            if len(c) > 1]


def shared_class_names(root: Path = ROOT) -> dict[str, set[str]]:
    """Class names defined in more than one place, with the files that define them."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in package_files(root).values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(path.relative_to(root).as_posix())
    return {name: set(files) for name, files in where.items() if len(files) > 1}


def test_import_graph_sees_module_and_function_level_imports(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from spineseg_core.sub.a import f\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from spineseg_core.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from . import c\nimport os\n")
    (pkg / "sub" / "c.py").write_text("from .a import f\n")
    (pkg / "d.py").write_text("import spineseg_core.sub.c\nfrom spineseg_core.sub import f\n")
    graph = import_graph(tmp_path)
    assert set(graph.edges) == {
        ("spineseg_core/sub/__init__.py", "spineseg_core/sub/a.py"),
        ("spineseg_core/sub/a.py", "spineseg_core/sub/b.py"),
        ("spineseg_core/sub/b.py", "spineseg_core/sub/c.py"),
        ("spineseg_core/sub/c.py", "spineseg_core/sub/a.py"),
        ("spineseg_core/d.py", "spineseg_core/sub/c.py"),
        ("spineseg_core/d.py", "spineseg_core/sub/__init__.py")}
    assert import_cycles(tmp_path) == [frozenset({
        "spineseg_core/sub/a.py", "spineseg_core/sub/b.py", "spineseg_core/sub/c.py"})]


def test_no_import_cycle_between_files() -> None:
    cycles = import_cycles()
    unknown = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert not unknown, f"files that import each other: {unknown}"


def test_known_cycles_still_exist() -> None:
    """An entry of :data:`KNOWN_CYCLES` that is gone must leave the list."""
    cycles = import_cycles()
    assert [sorted(c) for c in KNOWN_CYCLES if c not in cycles] == []


def test_no_two_classes_share_a_name() -> None:
    shared = shared_class_names()
    unknown = {name: sorted(files) for name, files in shared.items()
               if files != KNOWN_SHARED_CLASS_NAMES.get(name)}
    assert not unknown, f"class names defined more than once: {unknown}"
    assert sorted(KNOWN_SHARED_CLASS_NAMES) == sorted(shared)
