"""The direction of the dependencies, read from the source with ``ast`` (nothing is
imported): the pure domain imports nothing of the project; the core never imports a
feature slice (the slices depend on the core, and a composition root wires a slice's
pieces into the core); workers never import Flask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("app", "workers", "celeryconfig")
CORE = ("app/domain", "app/services", "app/adapters", "app/db", "app/connectors", "app/smpp", "workers")
SLICES = ("app.bulk", "app.gms")
COMPOSITION_ROOTS = {
    "app/db/migrations/env.py",  # Alembic reads the whole schema (app.schema)
    "workers/celery_app.py",  # registers every area's tasks
    "workers/services.py",  # builds a worker's services, injecting the slices' hooks
    "workers/bulk_tasks.py",  # the bulk area's Celery tasks: its thin entry points
}


def _sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_domain_imports_nothing_of_the_project():
    offending = {_relative(path): sorted(m for m in _imports(path) if _within(m, PROJECT) and not
                                         _within(m, ("app.domain",)))
                 for path in _sources("app/domain")}
    assert {path: modules for path, modules in offending.items() if modules} == {}


def test_the_core_never_imports_a_feature_slice():
    offending = {_relative(path): sorted(m for m in _imports(path) if _within(m, SLICES))
                 for path in _sources(*CORE) if _relative(path) not in COMPOSITION_ROOTS}
    assert {path: modules for path, modules in offending.items() if modules} == {}


def test_workers_never_import_flask():
    offending = {_relative(path): sorted(m for m in _imports(path) if _within(m, ("flask", "werkzeug", "app.web")))
                 for path in _sources("workers")}
    assert {path: modules for path, modules in offending.items() if modules} == {}


@pytest.mark.parametrize("root", sorted(COMPOSITION_ROOTS))
def test_every_named_composition_root_exists(root):
    assert (ROOT / root).is_file()
