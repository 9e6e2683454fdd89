"""The package's shape: no import cycle between its modules (imports inside functions count), no module imports a
private name of another, generic modules import no algorithm, and no module is over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "genpolicy"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(module imported, name taken from it or None, line) for every import in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out += [(full, None, node.lineno)] if full in MODULES else [(base, a.name, node.lineno)]
    return [(m, n, ln) for m, n, ln in out if m == "genpolicy" or m.startswith("genpolicy.")]


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        deps = set()
        for mod, _, _ in _imports(name, path):
            while mod not in MODULES and "." in mod:
                mod = mod.rsplit(".", 1)[0]
            if mod != name:
                deps.add(mod)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of nodes (first == last), or None."""
    state, stack = {}, []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        state[u] = 2
        stack.pop()
        return None

    for u in sorted(graph):
        if u not in state:
            found = visit(u)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules():
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_a_private_name_of_another():
    bad = [f"{name}:{ln} imports {n} from {mod}" for name, path in MODULES.items()
           for mod, n, ln in _imports(name, path) if n and n.startswith("_") and not n.startswith("__")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("generic", ["genpolicy.rl.stacking", "genpolicy.train.loop", "genpolicy.train.run",
                                     "genpolicy.train.stacked", "genpolicy.optim", "genpolicy.rng"])
def test_generic_modules_import_no_algorithm(generic):
    seen, todo = set(), [generic]
    graph = _graph()
    while todo:
        m = todo.pop()
        for d in graph[m]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    algos = {m for m in seen if m.startswith("genpolicy.rl.algos.") and m.rsplit(".", 1)[1] not in
             ("base", "registry", "common")}
    # the algorithms package's __init__ discovers them for the registry; what generic code may reach is the registry
    direct = {d for d in graph[generic] if d in algos}
    assert not direct, f"{generic} imports {sorted(direct)}"


def test_no_module_is_over_400_lines():
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
