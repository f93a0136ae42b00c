"""The runtime dependencies in ``pyproject.toml`` are exactly what the code imports.

``pip install .`` with no extras must be enough for every command (README: "Dependencies,
and why each is there"), so every third-party module imported anywhere under ``app/``,
``workers/`` or ``celeryconfig.py`` (at the top of a module or inside a function) must
come from a distribution in ``[project] dependencies``; and a dependency that nothing
imports (or locates with ``importlib.util.find_spec``, as the embedded Redis does) has no
business there.
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


def declared_runtime_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalized(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group()) for req in project["dependencies"]}


def _sources() -> list[Path]:
    return [*sorted((ROOT / "app").rglob("*.py")), *sorted((ROOT / "workers").rglob("*.py")), ROOT / "celeryconfig.py"]


def used_third_party_modules() -> dict[str, set[str]]:
    """Top-level module name -> the files that import it (or ``find_spec`` it)."""
    used: dict[str, set[str]] = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "find_spec" and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN_MODULES:
                    used.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return used


def test_every_imported_module_comes_from_a_declared_runtime_dependency():
    declared = declared_runtime_dependencies()
    providers = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, files in used_third_party_modules().items():
        distributions = {_normalized(d) for d in providers.get(module, [])}
        if not distributions & declared:
            undeclared[module] = (sorted(distributions) or ["not installed"], sorted(files))
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"


def test_every_declared_runtime_dependency_is_used():
    providers = importlib.metadata.packages_distributions()
    used = {_normalized(d) for module in used_third_party_modules() for d in providers.get(module, [])}
    assert declared_runtime_dependencies() - used == set()
