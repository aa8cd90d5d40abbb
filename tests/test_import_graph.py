"""The import graph of the shipped packages has no cycle, and the core never imports the
dashboards or finetune (issue 22).

Every import statement counts: at the top of a module, inside a function or under
``TYPE_CHECKING``, since an import hidden in a function still ties two modules together. A
lazy import kept for start-up speed is fine as long as it is in no cycle. ``from pkg import
name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``. The files are
parsed with ``ast``, never imported, so the whole check takes a fraction of a second.
"""

from __future__ import annotations

import ast
import textwrap
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evalsuite", "finetune", "dashboards")
CORE, OUTSIDE_THE_CORE = "evalsuite", ("dashboards", "finetune")
DYNAMIC_IMPORTS = ("import_module", "__import__")  # edges the graph could not see


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``packages`` under ``root``."""
    modules = {}
    for package in packages:
        for file in sorted((root / package).rglob("*.py")):
            parts = file.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return modules


def _imported_base(module: str, file: Path, node: ast.ImportFrom) -> str:
    """The module a ``from X import ...`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, *([node.module] if node.module else [])])


def imports_of(module: str, file: Path, modules: dict[str, Path]) -> tuple[set[str], list[str]]:
    """The modules of ``modules`` that ``module`` imports anywhere in its file, and the
    dynamic imports it makes (``importlib.import_module``, ``__import__``) as 'file:line'."""
    edges: set[str] = set()
    dynamic = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = _imported_base(module, file, node)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                edges.add(target if target in modules else base)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in DYNAMIC_IMPORTS:
                dynamic.append(f"{file}:{node.lineno}")
    return {edge for edge in edges if edge in modules} - {module}, dynamic


def import_graph(root: Path, packages: tuple[str, ...]) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the modules it imports, over ``packages`` under ``root``; and the dynamic
    imports met ('file:line')."""
    modules = module_files(root, packages)
    graph, dynamic = {}, []
    for name, file in modules.items():
        graph[name], calls = imports_of(name, file, modules)
        dynamic += calls
    return graph, dynamic


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The groups of two or more modules that import each other, directly or not (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = set()
            while not group or module not in group:
                group.add(stack.pop())
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def one_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module: 'a', 'b', ..., 'a'."""
    start = min(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for target in sorted(graph[module] & group):
            if target == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start] if module != start else [start]
            if target not in came_from:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"{sorted(group)} is not a cycle")


def cycles(graph: dict[str, set[str]]) -> dict[frozenset[str], str]:
    """Each group of modules that import each other, with one of its cycles as text (and the
    group's other modules, whose cycles go through the same knot)."""
    found = {}
    for group in strongly_connected(graph):
        cycle = one_cycle(graph, group)
        others = sorted(group - set(cycle))
        found[frozenset(group)] = " -> ".join(cycle) + (
            f" (also in the knot: {', '.join(others)})" if others else ""
        )
    return found


# ---------------------------------------------------------------- the packages


@pytest.fixture(scope="module")
def scanned() -> tuple[dict[str, set[str]], list[str]]:
    graph, dynamic = import_graph(ROOT, PACKAGES)  # no timing asserted: tests time nothing
    assert len(graph) > 100 and "evalsuite.cli" in graph["evalsuite.__main__"]
    return graph, dynamic


@pytest.fixture(scope="module")
def graph(scanned: tuple[dict[str, set[str]], list[str]]) -> dict[str, set[str]]:
    return scanned[0]


def test_the_packages_have_no_import_cycle(graph: dict[str, set[str]]) -> None:
    found = {group: text for group, text in cycles(graph).items()}
    assert not found, "import cycles (imports inside functions count):\n" + "\n".join(
        sorted(found.values())
    )


def test_no_module_imports_by_name_at_run_time(
    scanned: tuple[dict[str, set[str]], list[str]],
) -> None:
    """The graph sees import statements only: a module named in a string would hide an edge."""
    dynamic = scanned[1]
    assert not dynamic, f"importlib.import_module / __import__ at {', '.join(dynamic)}"


def test_the_core_imports_neither_the_dashboards_nor_finetune(
    graph: dict[str, set[str]],
) -> None:
    """evalsuite is the library both build on; `evalsuite leaderboard` runs the dashboards
    as a process."""
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == CORE
        for target in targets
        if target.split(".")[0] in OUTSIDE_THE_CORE
    )
    assert not upward, "\n".join(upward)


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_finds_cycles_hidden_in_functions_and_type_checking(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b  # a module: the edge goes to pkg.b\n",
            "pkg/b.py": """
                def later():
                    from pkg.sub.c import thing
            """,
            "pkg/sub/__init__.py": "VALUE = 1\n",
            "pkg/sub/c.py": """
                from typing import TYPE_CHECKING

                from . import VALUE  # a name: the edge goes to the package pkg.sub
                if TYPE_CHECKING:
                    from .. import a
            """,
            "pkg/leaf.py": "import json\nimport pkg.a\n",
        },
    )
    graph, _ = import_graph(tmp_path, ("pkg",))
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.sub", "pkg.a"},
        "pkg.leaf": {"pkg.a"},
    }
    assert cycles(graph) == {
        frozenset({"pkg.a", "pkg.b", "pkg.sub.c"}): "pkg.a -> pkg.b -> pkg.sub.c -> pkg.a"
    }
    (tmp_path / "pkg" / "b.py").write_text("import pkg.sub\n")  # the hidden import is gone
    assert cycles(import_graph(tmp_path, ("pkg",))[0]) == {}


def test_the_checker_sees_dynamic_imports(tmp_path: Path) -> None:
    dynamic = "import importlib\n\ndef f():\n    return importlib.import_module('pkg.b')\n"
    write_package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": dynamic})
    assert import_graph(tmp_path, ("pkg",)) == (
        {"pkg": set(), "pkg.a": set()},
        [f"{tmp_path / 'pkg' / 'a.py'}:4"],
    )
