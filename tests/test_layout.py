"""The package's shape: imports flow one way down the pipeline, and no module or function grows
past the size a reader can hold. These fail when a change breaks the layout, not later."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import molvae

PKG = Path(molvae.__file__).parent
BASE = {"io", "resources", "version"}
# what each part may import (besides itself and the package root's __version__)
ALLOWED = {
    "io": set(),
    "resources": set(),
    "version": set(),
    "chem": BASE,
    "data": BASE | {"chem"},
    "grammar": BASE | {"chem", "data"},  # token ids and strings, not the network
    "model": BASE | {"chem", "data", "grammar"},
    "train": BASE | {"chem", "data", "grammar", "model"},
    "evaluation": BASE | {"chem"},  # decoupled from the model by callables
    "bo": BASE | {"chem"},  # talks to the model through decode/encode callables
    "runs": BASE | {"chem", "data", "grammar", "model", "train", "evaluation", "bo"},
    "cli": BASE | {"chem", "data", "grammar", "model", "train", "evaluation", "bo", "runs"},
}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if p != PKG / "__init__.py")


def _part(path: Path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


def _imported_parts(tree: ast.AST) -> set[str]:
    """The molvae parts a module imports, at any depth (function-level imports count too)."""
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "molvae":  # from molvae import chem
                names = [f"molvae.{a.name}" for a in node.names if a.name != "__version__"]
        else:
            continue
        parts |= {n.split(".")[1] for n in names if n.startswith("molvae.")}
    return parts


def test_every_part_is_in_the_table() -> None:
    assert {_part(p) for p in _modules()} == set(ALLOWED)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_flow_down_the_pipeline(path: Path) -> None:
    part = _part(path)
    wrong = _imported_parts(ast.parse(path.read_text())) - ALLOWED[part] - {part}
    assert not wrong, f"{path.relative_to(PKG)} ({part}) imports {sorted(wrong)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES
    long = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_public_names_load_from_the_package_root() -> None:
    for name in molvae.__all__:
        assert getattr(molvae, name) is not None, name
    assert molvae.LatentCodec.__module__ == "molvae.model.codec"
    with pytest.raises(AttributeError):
        molvae.no_such_name  # noqa: B018


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _file_imports(name: str) -> tuple[set[str], list[str]]:
    """The molvae modules module ``name`` imports (any depth, ``TYPE_CHECKING`` and function-level
    imports too: each is a dependency a reader follows) and the ``_private`` names it takes
    from another module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    private: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in MODULES}
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        module = ".".join([*base, node.module] if node.module else base)
        for alias in node.names:
            if f"{module}.{alias.name}" in MODULES:  # from molvae.bo import loop
                out.add(f"{module}.{alias.name}")
            elif module in MODULES:
                out.add(module)
                dunder = alias.name.startswith("__") and alias.name.endswith("__")
                if alias.name.startswith("_") and not dunder:
                    private.append(f"{module}.{alias.name}")
    out.discard(name)
    return out, private


def test_no_two_files_import_each_other_directly_or_in_a_loop() -> None:
    graph = {name: _file_imports(name)[0] for name in MODULES}

    def reaches(start: str, goal: str) -> list[str] | None:
        seen, stack = {start}, [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == goal:
                    return [*path, nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    loops = [cycle for name in graph if (cycle := reaches(name, name))]
    assert not loops, f"import loops: {[' -> '.join(c) for c in loops[:5]]}"


def test_no_private_name_is_imported_from_another_file() -> None:
    taken = {name: private for name in MODULES if (private := _file_imports(name)[1])}
    assert not taken, f"_private names imported across files: {taken}"
