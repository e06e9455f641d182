"""docs/architecture.md names only files and modules that exist.

Every backquoted path (``vecext/...``, ``tests/...``, ``docs/...``, ``pyproject.toml``)
must exist in the tree, and every backquoted dotted name under ``vecext.`` must be a
module, a name defined at the top of one, or an entry-point group of ``pyproject.toml``. Placeholders (``<kind>``) are skipped.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "architecture.md"

_CODE = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"^(vecext|tests|docs|bench|\.ci)/[\w./-]*$|^pyproject\.toml$")
_DOTTED = re.compile(r"^vecext(\.\w+)+$")


def _mentions() -> tuple[list[str], list[str]]:
    paths, dotted = [], []
    for text in _CODE.findall(DOC.read_text()):
        text = text.strip()
        if "<" in text:
            continue
        if _PATH.match(text):
            paths.append(text)
        elif _DOTTED.match(text):
            dotted.append(text)
    return sorted(set(paths)), sorted(set(dotted))


def _module_file(parts: list[str]) -> Path | None:
    base = REPO.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _top_level_names(file: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(file.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def test_the_page_mentions_files_and_modules() -> None:
    paths, dotted = _mentions()
    # the check is only worth something while the page names what it describes
    assert len(paths) >= 30 and len(dotted) >= 8, (len(paths), dotted)


@pytest.mark.parametrize("path", _mentions()[0])
def test_every_path_exists(path: str) -> None:
    assert (REPO / path).exists(), f"docs/architecture.md names {path}, which does not exist"


@pytest.mark.parametrize("name", _mentions()[1])
def test_every_module_exists(name: str) -> None:
    parts = name.split(".")
    if _module_file(parts) is not None:
        return
    if f'"{name}"' in (REPO / "pyproject.toml").read_text():  # an entry-point group
        return
    file = _module_file(parts[:-1])
    assert file is not None, f"docs/architecture.md names {name}: no such module"
    assert parts[-1] in _top_level_names(file), f"{name}: {file} defines no {parts[-1]}"
