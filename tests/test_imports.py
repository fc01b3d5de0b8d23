"""The house's import graph: imports flow one way, with no circle (docs/index.md, "Layout").

``cli -> convert -> {sklearn, model} -> _engine -> _kernels -> _config``. The graph is read from
the source with the ast module, every import counted: at module level and inside functions
(a lazy import is still an arrow). ``from fastmlp.x import name`` is an arrow to the module
``fastmlp.x.name`` when there is one, else to ``fastmlp.x``; the package ``__init__`` Python
runs before any of its modules is not counted as an arrow of each module.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

#: The core: the network and what it is built on. None of it may reach a face above it.
CORE = ("fastmlp.model", "fastmlp._engine", "fastmlp._kernels", "fastmlp._validation",
        "fastmlp._params", "fastmlp._config")
#: The faces and rooms above the core.
ABOVE_CORE = ("fastmlp.sklearn", "fastmlp.cli", "fastmlp.convert")


def _module_name(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted((SRC / "fastmlp").rglob("*.py"))}


def _within(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _resolve(name, modules):
    """The module ``name`` names, or the nearest package of it that is one of ``modules``."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules=None):
    """``{module: {imported fastmlp module: line}}`` over every import statement of each."""
    modules = _modules() if modules is None else modules
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from .x import y
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                if not _within(target, ("fastmlp",)):
                    continue
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    edges.setdefault(resolved, node.lineno)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """Return one circle of imports as a list ``[a, b, ..., a]``, or None."""
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt, path)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = visit(node, [])
            if found:
                return found
    return None


def reachable(graph, start):
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


GRAPH = import_graph()


def test_the_walk_sees_module_and_function_level_imports():
    # so that the checks below cannot pass on an empty graph
    assert "fastmlp._engine" in GRAPH["fastmlp.model"]  # module level
    assert "fastmlp.cli.train" in GRAPH["fastmlp.cli"]  # from fastmlp.cli import train
    assert "fastmlp.convert" in GRAPH["fastmlp"]  # inside a function
    assert "fastmlp.sklearn._distributed" in GRAPH["fastmlp.sklearn._base"]
    assert "fastmlp.tables" in GRAPH["fastmlp._preprocessing"]  # lazy, in a method


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) is None


def test_no_circle_of_imports():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "a circle of imports: " + " -> ".join(
        f"{a} (line {GRAPH[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)) + \
        f" -> {cycle[-1]}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if _within(m, CORE)))
def test_the_core_reaches_no_face(module):
    direct = [m for m in GRAPH[module] if _within(m, ABOVE_CORE)]
    assert not direct, f"{module} imports {direct} (lines {[GRAPH[module][m] for m in direct]})"
    assert not [m for m in reachable(GRAPH, module) if _within(m, ABOVE_CORE)], module


def test_the_kernels_import_only_kernels_and_config():
    for module, edges in GRAPH.items():
        if _within(module, ("fastmlp._kernels",)):
            assert set(edges) <= {m for m in GRAPH if _within(
                m, ("fastmlp._kernels", "fastmlp._config"))}, (module, edges)


def test_only_the_top_imports_the_rooms_above_the_faces():
    for module, edges in GRAPH.items():
        if not _within(module, ("fastmlp.cli", "fastmlp.__main__")):
            assert not [m for m in edges if _within(m, ("fastmlp.cli",))], module
        if not _within(module, ("fastmlp.cli", "fastmlp.__main__", "fastmlp.convert")) \
                and module != "fastmlp":
            assert "fastmlp.convert" not in edges, module
    # the estimators do not reach the command, nor the Model the estimators
    assert not [m for m in reachable(GRAPH, "fastmlp.sklearn") if _within(m, ("fastmlp.cli",))]
    assert not [m for m in reachable(GRAPH, "fastmlp.precompile")
                if _within(m, ("fastmlp.cli",))]


def test_the_command_modules_stay_small():
    for module, path in _modules().items():
        if _within(module, ("fastmlp.cli",)):
            n = len(path.read_text().splitlines())
            assert n <= 400, f"{path.name}: {n} lines; one room per command, each under 400"
