"""Schema migrations, run programmatically (``smsagg db upgrade``, ``smsagg up``).

Feature areas may keep their own migration branch off the main line (Alembic
``branch_labels``), so upgrades go to ``heads``: every branch's newest revision, and a
database is up to date when its revisions are exactly those heads
(:func:`schema_state`; the CLI checks it before its first unit of work).
"""

from __future__ import annotations

import enum

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from app.db.session import make_engine


class SchemaState(enum.Enum):
    CURRENT = "up to date"
    MISSING = "has no schema"
    BEHIND = "has an older schema"
    UNKNOWN = "has a schema newer than this smsagg knows"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "app.db:migrations")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(database_url), revision)


def schema_state(database_url: str) -> SchemaState:
    """How the database's Alembic revisions compare with this code's heads."""
    engine = make_engine(database_url, pooled=False)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    script = ScriptDirectory.from_config(alembic_config(database_url))
    if not current:
        return SchemaState.MISSING
    if current == set(script.get_heads()):
        return SchemaState.CURRENT
    try:
        for revision in current:
            script.get_revision(revision)
    except CommandError:
        return SchemaState.UNKNOWN
    return SchemaState.BEHIND
