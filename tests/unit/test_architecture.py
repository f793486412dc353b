"""Imports go one way (docs/architecture.md): every import of our own code, at any depth
of a module, must follow the component rules below, and only the worker imports Faust.
A new back edge fails here, naming the module and what it imported."""

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


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
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


def known(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


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


def test_importing_the_worker_loads_no_tool() -> None:
    probe = (
        "import sys, streams.worker; "
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
