"""Structural rules of the package, checked without a GPU or network.

- `import mmedge` (and the CLI entry module) stays light: no heavy library is imported;
- the module import graph of `mmedge` has no cycles (module-level imports, read with `ast`);
- no module is over MAX_LINES lines;
- the test tree mirrors the package tree;
- every `Registry` holds only lazy `"package.module:attribute"` entries that resolve.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "mmedge"
TESTS = REPO / "tests"

MAX_LINES = 400
HEAVY = ("torch", "onnxruntime", "onnx", "tensorrt", "cuda", "pycuda", "transformers", "sklearn", "matplotlib")
# tests/<dir> that need no mmedge/<dir> counterpart (besides folders holding no Python file).
UNMIRRORED_OK = {"reliability", "__pycache__"}


# ---------------------------------------------------------------------------------------------
# helpers


def _module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package (a package is its __init__)."""
    out: dict[str, Path] = {}
    for path in sorted(PKG.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _module_files()


def _run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a fresh interpreter of this venv in the repository root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONSTARTUP", None)
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(stmts: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports executed when the module is imported: not in functions, not under TYPE_CHECKING."""
    for node in stmts:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.ClassDef):
            yield from _module_level_imports(node.body)  # a class body runs at import time
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try) or (sys.version_info >= (3, 11) and isinstance(node, ast.TryStar)):
            yield from _module_level_imports(node.body)
            for handler in node.handlers:
                yield from _module_level_imports(handler.body)
            yield from _module_level_imports(node.orelse)
            yield from _module_level_imports(node.finalbody)
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
            yield from _module_level_imports(node.body)
            yield from _module_level_imports(getattr(node, "orelse", []))


def _resolve_relative(module: str, node: ast.ImportFrom) -> str:
    """The absolute module named by a (possibly relative) `from … import`."""
    if not node.level:
        return node.module or ""
    is_pkg = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _nearest_module(name: str) -> str | None:
    """`name` if it is a package module, else its nearest enclosing package module."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """mmedge.* → mmedge.* edges of module-level imports."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _module_level_imports(tree.body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve_relative(module, node)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in MODULES else base)  # `from pkg import submodule`
            for target in targets:
                if target == "mmedge" or target.startswith("mmedge."):
                    resolved = _nearest_module(target)
                    if resolved and resolved != module:
                        graph[module].add(resolved)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's SCCs of size > 1 (self-edges are not recorded by import_graph)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _example_cycle(graph: dict[str, set[str]], comp: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component (BFS back to its first node)."""
    members = set(comp)
    start = comp[0]
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    return comp


# ---------------------------------------------------------------------------------------------
# a. light imports and a working --help


@pytest.mark.parametrize("module", ["mmedge", "mmedge.cli.main"])
def test_import_is_light(module: str) -> None:
    # What the interpreter loaded before mmedge is not mmedge's doing (cuda-python 12.x installs a .pth
    # file that imports `cuda` at start-up in every process of the venv).
    code = (
        f"import json, sys; before = set(sys.modules); import {module}; heavy = {HEAVY!r}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy and m not in before)))"
    )
    proc = _run_python("-c", code)
    assert proc.returncode == 0, f"`import {module}` failed:\n{proc.stderr}"
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    tops = sorted({m.split(".")[0] for m in loaded})
    assert not loaded, (
        f"`import {module}` imported heavy libraries {tops} ({len(loaded)} modules); import them lazily inside "
        "the functions that use them. Find the culprit with: python -X importtime -c 'import " + module + "'"
    )


def test_cli_help_exits_zero() -> None:
    proc = _run_python("-c", "from mmedge.cli.main import app; app()", "--help")
    assert proc.returncode == 0, f"`mmedge --help` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "Usage" in proc.stdout, proc.stdout


# ---------------------------------------------------------------------------------------------
# b. no import cycles


def test_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "mmedge" in graph and "mmedge.cli.main" in graph
    assert "mmedge.errors" in graph["mmedge"], "the ast walk missed `from mmedge.errors import …` in mmedge/__init__"
    assert "mmedge.runtime.pipeline" not in graph["mmedge"], "an import under TYPE_CHECKING/in a function was counted"


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert _example_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = strongly_connected(graph)
    lines = [
        f"- {len(comp)} modules: {', '.join(comp)}\n    e.g. {' -> '.join(_example_cycle(graph, comp))}"
        for comp in cycles
    ]
    assert not cycles, (
        "module-level import cycles in mmedge (move an import into the function that needs it, or move the shared "
        "definition to a lower module):\n" + "\n".join(lines)
    )


# ---------------------------------------------------------------------------------------------
# c. module size


def test_no_module_over_max_lines() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    over = sorted((n, name) for name, n in sizes.items() if n > MAX_LINES)
    assert not over, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(
        f"- {MODULES[name].relative_to(REPO)}: {n}" for n, name in reversed(over)
    )


# ---------------------------------------------------------------------------------------------
# d. the test tree mirrors the package


def _has_python(folder: Path) -> bool:
    return any(p.suffix == ".py" and "__pycache__" not in p.parts for p in folder.rglob("*.py"))


def test_tests_mirror_package() -> None:
    orphans = []
    for folder in sorted(p for p in TESTS.rglob("*") if p.is_dir()):
        rel = folder.relative_to(TESTS)
        if rel.parts[0] in UNMIRRORED_OK or "__pycache__" in rel.parts or not _has_python(folder):
            continue  # the fault battery, caches, and fixture folders holding no Python file
        pkg = PKG.joinpath(*rel.parts)
        if not (pkg / "__init__.py").is_file():
            orphans.append(f"tests/{rel.as_posix()}/ has no package mmedge/{rel.as_posix()}/")
    assert not orphans, "the test tree must mirror mmedge/ (move the tests):\n" + "\n".join(orphans)


# ---------------------------------------------------------------------------------------------
# e. one registry style


def _registry_sites() -> list[tuple[str, str | None, int]]:
    """(module, module-level name or None, line) of every `Registry(...)` call in the package."""
    sites: list[tuple[str, str | None, int]] = []
    for module, path in MODULES.items():
        if module == "mmedge.registry":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        assigned: dict[int, str] = {}
        for node in tree.body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            target = (node.targets[0] if isinstance(node, ast.Assign) else node.target) if value is not None else None
            if isinstance(value, ast.Call) and isinstance(target, ast.Name):
                assigned[id(value)] = target.id
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name == "Registry":
                    sites.append((module, assigned.get(id(node)), node.lineno))
    return sites


REGISTRY_SITES = _registry_sites()
_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def test_registries_found() -> None:
    assert REGISTRY_SITES, "no `Registry(` call found in mmedge (the ast scan is broken, or the tables were removed)"


def test_registries_are_module_constants() -> None:
    loose = [f"{m}:{line}" for m, name, line in REGISTRY_SITES if name is None]
    assert not loose, "Registry(...) must be assigned to a module-level name so it can be listed:\n" + "\n".join(loose)


@pytest.mark.parametrize("module,attr", [(m, n) for m, n, _ in REGISTRY_SITES if n is not None], ids=lambda v: str(v))
def test_registry_entries_resolve(module: str, attr: str) -> None:
    from mmedge.registry import Registry

    registry = getattr(importlib.import_module(module), attr)
    assert isinstance(registry, Registry), f"{module}.{attr} is {type(registry).__name__}, not a Registry"
    assert registry.names(), f"{module}.{attr} is empty"
    # Every entry must import here: registered modules import heavy or optional packages (torch,
    # tensorrt, …) inside functions, and `make test` installs every CPU package, so a failure is a bug.
    problems = []
    for name, target in sorted(registry._entries.items()):
        where = f"{module}.{attr}['{name}'] = {target!r}"
        if not isinstance(target, str) or not _TARGET.match(target):
            problems.append(f"{where}: not a lazy 'package.module:attribute' string")
            continue
        module_name, attribute = target.split(":", 1)
        try:
            obj = importlib.import_module(module_name)
        except ImportError as exc:
            problems.append(f"{where}: import failed: {exc!r}")
            continue
        for part in attribute.split("."):
            if not hasattr(obj, part):
                problems.append(f"{where}: {module_name} has no attribute {attribute}")
                break
            obj = getattr(obj, part)
    assert not problems, "registry entries that do not resolve:\n" + "\n".join(problems)
