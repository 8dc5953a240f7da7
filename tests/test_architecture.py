"""The shape of the package (docs/architecture.md): imports point down the layers, and
no module imports itself back, not even through an import inside a function.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import``
of a ``resilience`` module, wherever it stands (top level, inside a function, under
``TYPE_CHECKING``). Importing a package runs its ``__init__``, so ``from .x import y``
counts as an edge to ``x`` (and to ``x.y`` when that is a module).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "resilience"

#: Layer of each top-level part of the package: a module may import its own layer and
#: those below it. The root ``resilience/__init__.py`` (the public face) and
#: ``__main__`` stand above everything and are left out.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_core": 0,
    "_policies": 1,
    "stores": 2,
    "http": 3,
    "config": 4,
    "cli": 5,
}
#: Parts that stand to the side: they may import ``_core``, ``_policies`` and ``errors``
#: (and themselves); only ``config`` and ``cli`` may import them.
SIDE = {"metrics": 1, "testing": 1}
#: What may import a side part.
SIDE_USERS = {"config", "cli"}
#: Imports allowed against the rules above, each with its reason. Keep it empty.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> Iterator[str]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                yield target


GRAPH = {name: sorted(set(imports_of(name))) for name in MODULES}


def part(name: str) -> str:
    rest = name.split(".")[1:]
    return rest[0] if rest else ""


def test_the_graph_is_read() -> None:
    # A guard for the reader above: known edges of every kind are found.
    assert "resilience._core.clock" in GRAPH["resilience._policies.policy"]
    assert "resilience._policies.policy" in GRAPH["resilience._policies.retry"]
    assert "resilience.stores.redis._store" in GRAPH["resilience.stores.redis"]
    assert len(MODULES) > 60


def test_every_part_has_a_layer() -> None:
    parts = {part(name) for name in MODULES} - {"", "__main__"}
    assert parts <= set(LAYERS) | set(SIDE), parts - set(LAYERS) - set(SIDE)


def test_the_top_level_holds_only_the_face_and_folders() -> None:
    files = {p.name for p in PACKAGE.iterdir() if p.is_file()}
    assert files == {"__init__.py", "__main__.py", "errors.py", "py.typed"}


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None


def test_no_import_cycle() -> None:
    # Package __init__ files re-export their modules: an edge from a module to its own
    # package's __init__ would be a cycle by construction, so none may exist either.
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle or [])


def violations() -> Iterator[str]:
    for name, targets in GRAPH.items():
        source = part(name)
        if source in ("", "__main__"):
            continue  # the public face imports everything it re-exports
        for target in targets:
            goal = part(target)
            if goal == source or (name, target) in EXCEPTIONS:
                continue
            if goal == "":
                yield f"{name} imports the package root (import the module itself)"
            elif goal in SIDE:
                if source not in SIDE_USERS:
                    yield f"{name} imports {target}: only config and cli use {goal}"
            elif source in SIDE:
                if LAYERS[goal] > SIDE[source]:
                    yield f"{name} imports {target}: {source} stands beside the layers"
            elif LAYERS[goal] > LAYERS[source]:
                yield f"{name} (layer {LAYERS[source]}) imports {target} (layer {LAYERS[goal]})"


def test_imports_point_down_the_layers() -> None:
    found = sorted(violations())
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if part(n) == "_core"))
def test_cores_import_only_cores_and_errors(name: str) -> None:
    assert all(part(t) in ("_core", "errors") for t in GRAPH[name]), GRAPH[name]
