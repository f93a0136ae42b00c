"""Tables of the bulk SMS API, credit and compliance (migration branch ``bulk``, 0200).

They never add columns to the core tables; each refers to ``accounts`` / ``carriers``
by id. Amounts are integers of 1/10,000 credit (:data:`app.bulk.settings.CREDIT_SCALE`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow

_BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class BulkAccountPolicy(Base):
    """Per-account switches: prepaid credit, templates only."""

    __tablename__ = "bulk_account_policies"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    prepaid: Mapped[bool] = mapped_column(Boolean, default=False)
    templates_only: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class CreditEntry(Base):
    """The credit ledger: top-ups, debits, refunds, cancellations. The live balance is
    in Redis; the ledger follows it (drained from Redis's journal) and rebuilds it."""

    __tablename__ = "bulk_credit_ledger"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(80), unique=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Price(Base):
    """A price per segment: for a destination prefix, a carrier, or both (one route)."""

    __tablename__ = "bulk_prices"
    __table_args__ = (UniqueConstraint("prefix", "carrier_id", name="uq_bulk_prices_prefix_carrier"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str | None] = mapped_column(String(16), nullable=True)
    carrier_id: Mapped[int | None] = mapped_column(ForeignKey("carriers.id", ondelete="CASCADE"), nullable=True)
    price: Mapped[int] = mapped_column(BigInteger)


class DndNumber(Base):
    """The operator's do-not-disturb registry (1732 for every account)."""

    __tablename__ = "bulk_dnd"

    phone_number: Mapped[str] = mapped_column(String(16), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OptOut(Base):
    """A destination that opted out of one account (1042), by MO keyword or operator."""

    __tablename__ = "bulk_optouts"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(16), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SpamRule(Base):
    """Text that refuses a message (1028): a case-insensitive phrase or a regular expression."""

    __tablename__ = "bulk_spam_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pattern: Mapped[str] = mapped_column(String(512), unique=True)
    is_regex: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Template(Base):
    """A registered message template of an account; ``{#var#}`` stands for 1 to 30 characters."""

    __tablename__ = "bulk_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeniedNetwork(Base):
    """A client IP or network refused on every API (16 here, 2 on the Genesys API)."""

    __tablename__ = "bulk_ip_denylist"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Batch(Base):
    """A multi-destination or scheduled request: the durable record of a campaign.

    ``status``: ``scheduled`` (waiting for its time), ``released`` (handed to the
    queues), ``cancelled``. Message ids of a batch are ``id`` + an 8-hex-digit index, so
    its messages are found by id range. ``destinations`` holds ``[number, message_id,
    price]`` for each accepted destination.
    """

    __tablename__ = "bulk_batches"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    total: Mapped[int] = mapped_column(Integer)
    cost: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict] = mapped_column(JSON)
    destinations: Mapped[list] = mapped_column(JSON)
