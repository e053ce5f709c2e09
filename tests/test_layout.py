"""The package's shape: small modules, small classes, no import cycles, no private members used across modules."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "provlib"
MODULES = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
           for p in sorted(PACKAGE.rglob("*.py"))}


def tree(name):
    return ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))


def imported_modules(name) -> set[str]:
    """provlib modules ``name`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("provlib"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("provlib")}
    return {m for m in found if m in MODULES and m != name}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_classes_are_small(name):
    lines = MODULES[name].read_text().count("\n")
    assert lines <= 400, f"{name}: {lines} lines"
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= 250, f"{name}.{node.name}: {size} lines"


def test_no_import_cycles():
    graph = {name: imported_modules(name) - {"provlib"} for name in MODULES}
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_core_never_imports_a_method_package():
    for name in MODULES:
        if name.startswith("provlib.core"):
            upward = {m for m in imported_modules(name) if not m.startswith("provlib.core")}
            assert not upward, f"{name} imports {sorted(upward)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_member_is_used_from_another_module(name):
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("provlib"):
            private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            assert not private, f"{name} imports private {private} from {node.module}"
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "fan_out":
            methods = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            assert not any(m.startswith("_") for m in methods), f"{name}: fan_out of a private method {methods}"
