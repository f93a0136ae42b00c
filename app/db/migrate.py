"""Schema migrations, run programmatically (``smsagg db upgrade``, ``smsagg up``).

Feature areas may keep their own migration branch off the main line (Alembic
``branch_labels``), so upgrades go to ``heads``: every branch's newest revision.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "app.db:migrations")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(database_url), revision)
