"""The package's shape: layers that point one way, no import circles, modules of a readable size."""

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


def every_import(path):
    """The atsboost modules a module imports anywhere: at load, inside functions, under TYPE_CHECKING."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("atsboost")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import: resolved against the module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            if base.startswith("atsboost"):
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if is_module(candidate) else base)
    return found


# From the bottom up; a module may import its own layer and those below it, never one above.
LAYERS = [
    {"atsboost.errors"},
    {"atsboost", "atsboost.config"},  # the package's __init__ re-exports the errors and the settings
    {"atsboost.metrics"},
    {"atsboost.runtime"},
    {"atsboost.migrations"},
    {"atsboost.health"},
    {"atsboost.app", "atsboost.db", "atsboost.aio", "atsboost.integrations"},
    {"atsboost.cli", "atsboost.logs", "atsboost.__main__", "atsboost.testing"},
]
# Peers on one layer that must not know each other: the application is a component beside the facades.
APART = [("atsboost.app", "atsboost.db"), ("atsboost.app", "atsboost.aio")]


def layer_of(module):
    """The layer's index and the unit (its folder or top-level module) a module belongs to."""
    parts = module.split(".")
    for unit in (".".join(parts[:2]), parts[0]):
        for index, layer in enumerate(LAYERS):
            if unit in layer:
                return index, unit
    raise AssertionError(f"{module} is on no layer: add it to LAYERS")


def test_layers_point_one_way():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        here, unit = layer_of(module_name(path))
        for target in every_import(path):
            there, other = layer_of(target)
            if there > here or (unit, other) in APART or (other, unit) in APART:
                upward.append(f"{module_name(path)} imports {target}")
    assert sorted(upward) == []


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
    assert {name: lines for name, lines in sizes.items() if lines > 400} == {}


def test_functions_stay_short():
    """About ten lines is the norm; none runs past fifty, its signature and docstring included."""
    lengths = {}
    for path in PACKAGE.rglob("*.py"):
        if "versions" not in path.parts:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    end = node.end_lineno or node.lineno
                    lengths[f"{module_name(path)}.{node.name}"] = end - node.lineno + 1
    assert {name: n for name, n in lengths.items() if n > 50} == {}
    assert sorted(lengths.values())[len(lengths) // 2] <= 10
