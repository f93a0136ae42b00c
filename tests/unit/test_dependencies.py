"""The runtime dependencies in ``pyproject.toml`` are exactly what the code imports.

``pip install .`` with no extras must be enough for every command (README: "Dependencies,
and why each is there"), so every third-party module imported under ``app/``,
``workers/`` or ``celeryconfig.py`` must come from a distribution in ``[project]
dependencies``. The one exception: an import inside a function, guarded by an ``except
ImportError`` that says what to install, may come from an extra (``--db postgres`` of a
benchmark needs the ``postgres`` extra's psycopg). And a dependency that nothing imports
(or locates with ``importlib.util.find_spec``, as the embedded Redis does) has no
business in the list, but for those a library picks up by itself when installed
(``IMPLICIT``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN_MODULES = {"app", "workers", "celeryconfig"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_normalized(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group()) for req in requirements}


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = _names(PROJECT["dependencies"])
IMPLICIT = {"hiredis": "redis-py parses Redis replies with it (C) when it is importable"}
EXTRAS = _names([req for extra in PROJECT["optional-dependencies"].values() for req in extra])


def _sources() -> list[Path]:
    return [*sorted((ROOT / "app").rglob("*.py")), *sorted((ROOT / "workers").rglob("*.py")), ROOT / "celeryconfig.py"]


def _guarded(handlers: list[ast.ExceptHandler]) -> bool:
    caught = {getattr(h.type, "id", None) for h in handlers} | {
        getattr(e, "id", None) for h in handlers if isinstance(h.type, ast.Tuple) for e in h.type.elts}
    return bool(caught & {"ImportError", "ModuleNotFoundError"})


def _imports(tree: ast.AST):
    """(top-level module name, whether the import is optional: in a function, under an
    ``except ImportError``), for every import and ``find_spec("name")`` call."""

    def walk(node: ast.AST, in_function: bool, guarded: bool):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], in_function and guarded
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], in_function and guarded
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "find_spec" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value.split(".")[0], False
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            child_guarded = guarded or (isinstance(node, ast.Try) and child in node.body and _guarded(node.handlers))
            yield from walk(child, in_function, child_guarded)

    yield from walk(tree, False, False)


def used_third_party_modules() -> dict[str, dict[str, bool]]:
    """Top-level module name -> {file: whether every import of it there is optional}."""
    used: dict[str, dict[str, bool]] = {}
    for path in _sources():
        for module, optional in _imports(ast.parse(path.read_text(), str(path))):
            if module in sys.stdlib_module_names or module in OWN_MODULES:
                continue
            files = used.setdefault(module, {})
            name = str(path.relative_to(ROOT))
            files[name] = files.get(name, True) and optional
    return used


def test_every_imported_module_comes_from_a_declared_runtime_dependency():
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, files in used_third_party_modules().items():
        distributions = {_normalized(d) for d in providers.get(module, [])}
        allowed = RUNTIME | (EXTRAS if all(files.values()) else set())
        if not distributions & allowed:
            undeclared[module] = (sorted(distributions) or ["not installed"], sorted(files))
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


def test_every_declared_runtime_dependency_is_used():
    providers = importlib.metadata.packages_distributions()
    used = {_normalized(d) for module in used_third_party_modules() for d in providers.get(module, [])}
    assert RUNTIME - used - set(IMPLICIT) == set()
