"""The package's shape: its packages in pipeline order, each importing only those before it (imports
inside functions count); no import cycle between sandbox modules; and the harness never imports
the server (its process's own RSS is in every result, and uvicorn/starlette have no business
there)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import sandbox

PACKAGE = Path(sandbox.__file__).parent
HARNESS = ("sandbox.measure", "sandbox.analysis", "sandbox.load", "sandbox.cli.main")
ORDER = (
    "errors",
    "units",  # KIB, MIB, GIB and the MiB formatters
    "system",  # processes, the lifeline, process identity, loopback, atomic files
    "agent",  # runs inside the measured server: standard library only
    "allocators",
    "load",  # Locust plans, bodies, load models, batch statistics
    "config",
    "server",  # the stair-stepper
    "results",
    "measure",
    "analysis",
    "experiment",
    "advise",
    "inspector",
    "cli",
)
"""The packages (and the modules `errors` and `units`) in pipeline order: each may import only
those before it."""
TOP = ("sandbox", "sandbox.__main__")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str], *, lazy: bool = True) -> set[str]:
    """The sandbox modules `path` imports, as module names: anywhere (functions too), or with
    `lazy=False` only those it imports when it is itself imported (the module's top level)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    nodes = ast.walk(tree) if lazy else _top_level(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from sandbox.x import y`: y may be a module of its own
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != "sandbox":
                found.add(name)
    return found


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """The module's own statements, including those under `if` and `try` (not in functions)."""
    out: list[ast.stmt] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If | ast.Try):
            todo.extend([*node.body, *node.orelse])
    return out


def graph(*, lazy: bool = True) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: imports_of(path, known, lazy=lazy) - {name} for name, path in paths.items()}


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle (a list of modules, first = last), or [] when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def package_of(module: str) -> str:
    """`sandbox.results.model` -> `results`; `sandbox.units` -> `units`."""
    return module.split(".")[1]


def test_every_package_has_its_place_in_the_order() -> None:
    packages = {package_of(m) for m in graph() if m not in TOP}
    assert packages == set(ORDER)


def backwards(edges: dict[str, set[str]]) -> list[str]:
    """The imports from a package to one after it in ORDER, as `module -> module`."""
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(
        f"{module} -> {dep}"
        for module, deps in edges.items()
        if module not in TOP
        for dep in deps
        if rank[package_of(dep)] > rank[package_of(module)]
    )


def test_no_package_imports_one_after_it() -> None:
    """Counting imports inside functions: a lazy import is still a dependency."""
    edges = graph()
    assert "sandbox.results.model" in edges["sandbox.measure.record"]  # the graph was really built
    assert backwards(edges) == []


def test_the_order_check_sees_a_backward_import() -> None:
    edges = {"sandbox.config.settings": {"sandbox.cli.flags", "sandbox.errors"}}
    assert backwards(edges) == ["sandbox.config.settings -> sandbox.cli.flags"]


def test_no_import_cycle_between_sandbox_modules() -> None:
    """Counting imports inside functions too."""
    edges = graph()
    assert "sandbox.measure.runner" in edges  # the graph was really built
    assert cycle(edges) == []


def test_no_harness_module_imports_the_server() -> None:
    offenders = {
        name: sorted(m for m in deps if m.startswith("sandbox.server."))
        for name, deps in graph().items()
        if name.startswith(HARNESS)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_harness_process_loads_no_server_module_nor_uvicorn_or_starlette() -> None:
    code = (
        "import json, sys\n"
        "import sandbox.cli.main, sandbox.measure.runner, sandbox.experiment.definition\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('uvicorn', 'starlette', 'locust', 'gevent') or m.startswith('sandbox.server.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
