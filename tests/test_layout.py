"""The package's wings import one way only: runtime <- clients <- integration <- demo, bench.

The entry points (cli, wsgi, __main__) sit on top: `python run.py --demo` starts the demo.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sfdcflex"
WINGS = ("runtime", "clients", "demo", "bench")
ENTRY_POINTS = ("cli", "wsgi", "__main__")


def wing_of(module: str) -> str:
    """The wing a dotted module under sfdcflex belongs to; the integration is everything else."""
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in ENTRY_POINTS:
        return "entry"
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else "integration"


@lru_cache(maxsize=None)  # four tests walk the same files: parse each once
def imported_modules(path: Path) -> frozenset[str]:
    """Every sfdcflex module `path` imports, relative imports resolved, at any depth of the file."""
    package = ["sfdcflex", *path.relative_to(PACKAGE).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # `from . import x`: x is a module of that package
                found.update(f"{module}.{alias.name}" for alias in node.names)
            else:
                found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return frozenset(name for name in found if name == "sfdcflex" or name.startswith("sfdcflex."))


def imports_by_wing() -> dict[str, set[str]]:
    wings: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("sfdcflex", *path.relative_to(PACKAGE).with_suffix("").parts))
        wings.setdefault(wing_of(module), set()).update(
            f"{module} -> {target}" for target in imported_modules(path))
    return wings


ALLOWED = {
    "runtime": {"runtime"},
    "clients": {"clients", "runtime"},
    "integration": {"integration", "clients", "runtime"},
    "demo": {"demo", "integration", "clients", "runtime"},
    "bench": {"bench", "demo", "integration", "clients", "runtime", "entry"},
    "entry": {"entry", "demo", "integration", "clients", "runtime"},
}


def upward_imports(wings: dict[str, set[str]]) -> list[str]:
    return sorted(edge for wing, edges in wings.items() for edge in edges
                  if wing_of(edge.split(" -> ")[1]) not in ALLOWED[wing])


def test_each_wing_imports_only_the_wings_below_it():
    wings = imports_by_wing()
    assert set(wings) == set(ALLOWED)
    assert upward_imports(wings) == []


def test_the_clients_import_nothing_from_the_runtime():
    # They raise their own errors (clients/errors.py); the integration decides the HTTP answer.
    edges = imports_by_wing()["clients"]
    assert [edge for edge in edges if " -> sfdcflex.runtime" in edge] == []


def test_the_runtime_hands_a_function_author_only_response():
    import sfdcflex.runtime
    assert sfdcflex.runtime.__all__ == ["Response"]
    from sfdcflex.runtime import Response
    from sfdcflex.runtime.response import Response as Defined
    assert Response is Defined


def test_the_walk_resolves_relative_imports_and_flags_upward_ones():
    # Guards the guard: relative imports resolve to full names, and an upward edge is reported.
    assert {"sfdcflex.runtime.errors", "sfdcflex.runtime.signature"} <= imported_modules(
        PACKAGE / "runtime" / "app.py")
    assert "sfdcflex.clients.transport" in imported_modules(PACKAGE / "config.py")
    planted = {"runtime": {"sfdcflex.runtime.app -> sfdcflex.keeper"},
               "clients": {"sfdcflex.clients.iam -> sfdcflex.runtime.errors"},
               "integration": {"sfdcflex.lookup -> sfdcflex.demo.standins"}}
    assert upward_imports(planted) == ["sfdcflex.lookup -> sfdcflex.demo.standins",
                                       "sfdcflex.runtime.app -> sfdcflex.keeper"]


def module_name(path: Path) -> str:
    """The dotted name of a file under sfdcflex (a package by its own name, not `__init__`)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("sfdcflex", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def import_graph() -> dict[str, set[str]]:
    """Each sfdcflex module and the sfdcflex modules it imports anywhere in its file:
    TYPE_CHECKING blocks and function-level imports included."""
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {module: {target for target in imported_modules(path) if target in files and target != module}
            for module, path in files.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per back edge a depth-first walk finds, each as [a, b, ..., a]; [] when none."""
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path = [start], {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                done.add(path[-1])
                on_path.discard(path.pop())
                stack.pop()
            elif following in on_path:
                cycles.append(path[path.index(following):] + [following])
            elif following not in done:
                path.append(following)
                on_path.add(following)
                stack.append(iter(sorted(graph.get(following, ()))))
    return cycles


def test_no_module_imports_one_that_imports_it_back():
    # Even under TYPE_CHECKING or inside a function: such a pair is one part split in two files.
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_cycle_check_finds_a_planted_cycle_and_shows_it():
    # Guards the guard: the graph holds TYPE_CHECKING and function-level imports, and a cycle
    # is found however long it is, and shown in order.
    graph = import_graph()
    assert "sfdcflex.runtime.http.connection" in graph["sfdcflex.runtime.http.server"]
    assert "sfdcflex.bench.hostile" in graph["sfdcflex.bench.main"]
    assert "sfdcflex.runtime" in graph and "sfdcflex.runtime.__init__" not in graph
    graph["sfdcflex.runtime.http.body"] = graph["sfdcflex.runtime.http.body"] | {
        "sfdcflex.runtime.http.server"}
    cycles = import_cycles(graph)
    assert cycles and all(cycle[0] == cycle[-1] for cycle in cycles)
    assert any({"sfdcflex.runtime.http.body", "sfdcflex.runtime.http.server"} <= set(cycle)
               for cycle in cycles)
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []
