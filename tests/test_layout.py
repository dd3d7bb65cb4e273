"""The package's shape: no import circles between its modules, and modules of a readable size."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "atsboost"


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name):
    relative = Path(*name.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").is_file() or (PACKAGE.parent / relative).is_dir()


def imports_at_load(path):
    """The atsboost modules a module imports when it loads (not inside functions or TYPE_CHECKING)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("atsboost")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("atsboost"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if is_module(candidate) else node.module)
    return found


def test_no_import_circles():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if "versions" not in p.parts}
    graph = {}
    for name, path in modules.items():
        # A package's own __init__ runs first anyway; an edge to an enclosing package is not a circle.
        graph[name] = {m for m in imports_at_load(path) if not name.startswith(m + ".") and m != name}
    circles = []

    def visit(name, trail):
        if name in trail:
            circles.append(" -> ".join([*trail[trail.index(name) :], name]))
            return
        for target in sorted(graph.get(name, ())):
            visit(target, [*trail, name])

    for name in sorted(graph):
        visit(name, [])
    assert not circles, circles[0]


def test_modules_stay_readable():
    sizes = {
        module_name(p): len(p.read_text().splitlines())
        for p in PACKAGE.rglob("*.py")
        if "versions" not in p.parts
    }
    assert {name: lines for name, lines in sizes.items() if lines > 300} == {}
