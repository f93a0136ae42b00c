"""The gms migration branch creates exactly the tables the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine

import app.gms.models as gms_models
from app.schema import metadata as schema


def test_gms_migration_matches_the_models(database_url):
    gms_tables = [t for name, t in schema.tables.items() if name.startswith("gms_")]
    assert {t.name for t in gms_tables} == {"gms_apps", "gms_agents", "gms_resource_groups", "gms_access_numbers"}
    metadata = MetaData()
    for table in gms_tables:
        table.to_metadata(metadata)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "include_name": lambda name, type_, _: type_ != "table" or name.startswith("gms_")})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
    assert gms_models.GmsAccessNumber.__table__.c.group_id.foreign_keys
