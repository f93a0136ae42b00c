"""Shared CLI plumbing: settings, the unit of work, and error reporting.

An operator's mistake (a gateway that is not running, Redis or the database out of
reach, a schema not created, a service refusing a value) ends a command with one line
on stderr and exit status 1, never a traceback: :class:`OperatorErrorsGroup`, the root
group's class, turns the exceptions listed in :data:`OPERATOR_ERRORS` into that line.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.db import migrate
from app.db.session import session_scope
from app.embedded_redis import EmbeddedRedisError
from app.runfile import HomeInUse
from app.services.errors import ServiceError
from app.settings import Settings, SettingsError, get_settings
from app.supervisor import PortBusy

console = Console()


class SchemaError(RuntimeError):
    """The database has no schema, or not this version's, and smsagg may not change it."""


def _redis_unreachable(exc: Exception) -> str:
    return f"Redis is not answering: {exc}"


def _database_unusable(exc: sqlalchemy.exc.OperationalError) -> str:
    return f"the database could not be used: {exc.orig}"


# Exception type -> the one line an operator reads.
OPERATOR_ERRORS: dict[type[BaseException], Callable[[Any], str]] = {
    SettingsError: str,
    ServiceError: str,
    SchemaError: str,
    HomeInUse: str,
    PortBusy: str,
    EmbeddedRedisError: str,
    redis.exceptions.ConnectionError: _redis_unreachable,
    redis.exceptions.TimeoutError: _redis_unreachable,
    kombu.exceptions.OperationalError: _redis_unreachable,
    sqlalchemy.exc.OperationalError: _database_unusable,
}


def one_line(exc: BaseException) -> str:
    """The line for an exception of one of the :data:`OPERATOR_ERRORS` types."""
    describe = next(describe for kind, describe in OPERATOR_ERRORS.items() if isinstance(exc, kind))
    return " ".join(describe(exc).split())


class OperatorErrorsGroup(click.Group):
    """A click group whose commands end an operator's error with one line (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except tuple(OPERATOR_ERRORS) as exc:
            raise click.ClickException(one_line(exc)) from exc


@functools.cache
def _say_once(note: str) -> None:
    click.echo(f"smsagg: {note}", err=True)


def settings() -> Settings:
    """The process's settings; a stale run file found on the way is reported once."""
    config = get_settings()
    if config.gateway_note:
        _say_once(config.gateway_note)
    return config


def _masked(database_url: str) -> str:
    return make_url(database_url).render_as_string(hide_password=True)


def _sqlite_under(home: Path, database_url: str) -> bool:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return False
    return Path(url.database).resolve().is_relative_to(home.resolve())


@functools.cache
def _ensure_schema(database_url: str, embedded: bool) -> None:
    """An ``embedded`` database (SQLite under SMSAGG_HOME) is brought up to date, and
    says so; any other is the operator's to upgrade."""
    state = migrate.schema_state(database_url)
    if state is migrate.SchemaState.CURRENT:
        return
    where = _masked(database_url)
    if state is migrate.SchemaState.UNKNOWN:
        raise SchemaError(f"the database {where} {state.value}: upgrade smsagg")
    if not embedded:
        raise SchemaError(f"the database {where} {state.value}: run 'smsagg db upgrade'")
    migrate.upgrade(database_url)
    _say_once(f"the database {where} {state.value}: brought it up to date")


def database_url() -> str:
    """The database URL, once its schema is this version's."""
    config = settings()
    _ensure_schema(config.database_url, _sqlite_under(config.home, config.database_url))
    return config.database_url


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A committed session (rolled back on any error) on an up-to-date schema."""
    with session_scope(database_url()) as session:
        yield session


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
