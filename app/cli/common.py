"""Shared CLI plumbing: settings, the unit of work, and error reporting."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from app.db.session import session_scope
from app.services.errors import ServiceError
from app.settings import Settings, SettingsError, get_settings

console = Console()


def settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A committed session; service errors become clean CLI errors (exit 1)."""
    try:
        with session_scope(settings().database_url) as session:
            yield session
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc


def reports_errors(function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ServiceError, SettingsError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def print_table(title: str, columns: list[str], rows: list[list[Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([dict(zip(columns, row)) for row in rows], default=str))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)
