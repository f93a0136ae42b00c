"""The declarative base every table derives from, the core's and each feature slice's.

A slice's models import this module, never :mod:`app.db.models` for the base, so the
core's models need not know the slices: :mod:`app.schema` gathers the whole schema.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import DeclarativeBase


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass
