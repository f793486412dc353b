"""Imports go one way (docs/architecture.md): every import of our own code, at any depth
of a module, must follow the component rules below, and only the worker imports Faust.
A new back edge fails here, naming the module and what it imported; so does an import
loop, even one within a component, naming the modules on it."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = ("schemas", "sinks", "streams")
FOUNDATION = (
    "streams.cli_values",
    "streams.config",
    "streams.errors",
    "streams.logs",
    "streams.metrics",
    "streams.output",
    "streams.ports",
    "streams.destination_factory",
)

# What each component may import besides itself; the order is the layering, lowest first.
ALLOWED: dict[str, frozenset[str]] = {
    "schemas": frozenset(),
    "sinks": frozenset({"schemas"}),
    "foundation": frozenset({"sinks", "schemas"}),
    "core": frozenset({"foundation", "sinks", "schemas"}),
    "netsuite": frozenset({"foundation", "sinks", "schemas"}),
    "kafka": frozenset({"core", "foundation", "sinks", "schemas"}),
    "producer": frozenset({"kafka", "core", "foundation", "sinks", "schemas"}),
    "worker": frozenset({"kafka", "core", "foundation", "sinks", "schemas"}),
    "ops": frozenset({"kafka", "core", "netsuite", "foundation", "sinks", "schemas"}),
    "devstack": frozenset(
        {"producer", "kafka", "core", "netsuite", "foundation", "sinks", "schemas"}
    ),
    "cli": frozenset(
        {"devstack", "ops", "worker", "producer", "kafka", "core", "netsuite", "foundation"}
    ),
}
FAUST = ("faust", "mode")


def component(module: str) -> str:
    if module.startswith(FOUNDATION) or module == "streams":
        return "foundation"
    top, _, rest = module.partition(".")
    if top in ("schemas", "sinks"):
        return top
    return rest.split(".")[0]


def modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> Iterator[tuple[str, Path]]:
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports, top-level or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from streams import metrics` imports the module streams.metrics.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def ours(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] in PACKAGES and module != "streams"


def known(module: str, root: Path = ROOT) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def ancestors(module: str) -> list[str]:
    """The packages that importing `module` runs first: `a` and `a.b` for `a.b.c`."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def dependencies(name: str, path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every module whose code an import in `name` may run, at any depth of it (under
    `if TYPE_CHECKING:` too): the module imported and the packages above it, whose
    `__init__` runs first. A module's own packages have started before it runs, so they
    count only where it takes names from them (`from a.b import name` in `a.b.c`): a
    package may re-export its submodules, which import one another."""
    own = set(ancestors(name))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def loads(module: str, takes_names: bool) -> Iterator[str]:
        yield from (parent for parent in ancestors(module) if parent not in own)
        if module not in own or takes_names:
            yield module

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from loads(alias.name, takes_names=True)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            named = [f"{base}.{alias.name}" for alias in node.names]
            submodules = [module for module in named if known(module, root)]
            yield from loads(base, takes_names=len(submodules) < len(named))
            yield from submodules


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    found = dict(modules(root, packages))
    return {
        name: {dep for dep in dependencies(name, path, root) if dep in found and dep != name}
        for name, path in found.items()
    }


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for step in graph[todo.pop()] - seen:
            seen.add(step)
            todo.append(step)
    return seen


def loop_through(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """A shortest way from `start` back to itself inside one strongly connected set."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while start not in came_from:
        following = []
        for here in frontier:
            for step in sorted(graph[here] & within):
                if step not in came_from:
                    came_from[step] = here
                    following.append(step)
        frontier = following
    way = [start]
    while len(way) == 1 or way[-1] != start:
        way.append(came_from[way[-1]])
    return way[::-1]


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each strongly connected set of more than one module, as one loop through it."""
    reach = {module: reachable(graph, module) for module in graph}
    found: list[str] = []
    placed: set[str] = set()
    for module in sorted(graph):
        if module in placed or module not in reach[module]:
            continue
        tied = {other for other in reach[module] if module in reach[other]}
        placed |= tied
        loop = " -> ".join(loop_through(graph, module, tied))
        found.append(f"{loop} (tied: {', '.join(sorted(tied))})")
    return found


def test_every_component_has_a_rule() -> None:
    assert {component(name) for name, _ in modules()} == set(ALLOWED)


def test_imports_go_one_way() -> None:
    back_edges = []
    for name, path in modules():
        source = component(name)
        for target in imports(path):
            if not ours(target) or not known(target):
                continue  # a name imported from a module, or someone else's package
            dest = component(target)
            if dest != source and dest not in ALLOWED[source]:
                back_edges.append(f"{name} ({source}) imports {target} ({dest})")
    assert back_edges == []


def test_only_the_worker_imports_faust() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in modules()
        if component(name) != "worker"
        for target in imports(path)
        if target.split(".")[0] in FAUST
    ]
    assert found == []


def test_the_rules_are_layered() -> None:
    # Each component may import only components listed before it: no cycle is possible.
    order = list(ALLOWED)
    for position, (name, allowed) in enumerate(ALLOWED.items()):
        assert allowed <= set(order[:position]), name


def test_no_import_loop() -> None:
    assert cycles(import_graph()) == []


def test_importing_the_worker_loads_no_tool() -> None:
    probe = (
        "import sys, streams.worker.run; "
        "print(sorted(m for m in sys.modules if m.startswith("
        "('streams.ops', 'streams.cli', 'streams.devstack', 'streams.producer', "
        "'streams.netsuite'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_the_checker_sees_a_back_edge(tmp_path: Path) -> None:
    # The rules bite: the ops tools importing the dev stack would be reported.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from streams.devstack import stack\n", encoding="utf-8")
    found = list(imports(sample))
    assert "streams.devstack.stack" in found
    assert component("streams.devstack.stack") not in ALLOWED["ops"]


def plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_sees_a_loop(tmp_path: Path) -> None:
    # A view taking a name from its package, whose __init__ imports the app, which
    # imports the view: the loop is found, although the import is inside a function.
    plant(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.app import build\nRUN = build\n",
            "pkg/app.py": "from pkg import web\nbuild = web\n",
            "pkg/web.py": "def page():\n    from pkg import RUN\n",
        },
    )
    assert cycles(import_graph(tmp_path, ("pkg",))) == [
        "pkg -> pkg.app -> pkg.web -> pkg (tied: pkg, pkg.app, pkg.web)"
    ]


def test_the_checker_counts_package_inits_and_type_checking(tmp_path: Path) -> None:
    # Importing other.leaf runs other/__init__.py, which imports other.deep, which
    # imports the app back for its types only: still a loop.
    plant(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/app.py": "import other.leaf\n",
            "other/__init__.py": "from other.deep import Deep\n",
            "other/leaf.py": "",
            "other/deep.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.app import App\n"
            ),
        },
    )
    assert cycles(import_graph(tmp_path, ("pkg", "other"))) == [
        "other -> other.deep -> pkg.app -> other (tied: other, other.deep, pkg.app)"
    ]


def test_a_package_may_reexport_submodules_that_import_each_other(tmp_path: Path) -> None:
    # Both submodules import a sibling, relatively or not: the package has started
    # already when they run, and they take no name from its __init__.
    plant(
        tmp_path,
        {
            "ok/__init__.py": "from ok.a import A\nfrom ok.b import B\n",
            "ok/a.py": "from ok.b import B\nA = B\n",
            "ok/b.py": "from . import c\nB = c\n",
            "ok/c.py": "",
        },
    )
    graph = import_graph(tmp_path, ("ok",))
    assert graph["ok.b"] == {"ok.c"}
    assert cycles(graph) == []
