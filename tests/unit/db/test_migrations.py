"""The Alembic migrations and the models describe the same schema, on SQLite and
on PostgreSQL, and upgrading twice is harmless."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.db import migrate
from app.schema import metadata


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
        assert diff == []
        assert {"accounts", "senders", "carriers", "routes", "messages", "message_events"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(database_url):
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)
