"""Persistent GMS records: applications (credentials), agents, resource groups and
their access numbers. Everything short-lived (services, reservations, storage,
chats, CometD clients) lives in Redis with TTLs (:mod:`app.gms.store`).

The schema is owned by the Alembic branch ``gms`` (``0100_gms.py``), checked
against these classes by ``tests/unit/gms/test_models.py``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, utcnow


class GmsApp(Base):
    """A mobile application: HTTP Basic credentials; it sees only its own services/data."""

    __tablename__ = "gms_apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GmsAgent(Base):
    """A contact-center agent who answers chats (agent API and page)."""

    __tablename__ = "gms_agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    nickname: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GmsResourceGroup(Base):
    """A named pool of access numbers with its allocation strategy."""

    __tablename__ = "gms_resource_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    strategy: Mapped[str] = mapped_column(String(16), default="random")
    booking_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)  # seconds
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    numbers: Mapped[list[GmsAccessNumber]] = relationship(
        back_populates="group", order_by="GmsAccessNumber.position", cascade="all, delete-orphan"
    )


class GmsAccessNumber(Base):
    __tablename__ = "gms_access_numbers"
    __table_args__ = (UniqueConstraint("group_id", "number", name="uq_gms_access_numbers_group_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("gms_resource_groups.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)

    group: Mapped[GmsResourceGroup] = relationship(back_populates="numbers")
