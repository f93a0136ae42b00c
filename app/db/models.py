"""SQLAlchemy 2.x models: accounts, senders, carriers, routes, the message log.

The schema itself is owned by Alembic (``app/db/migrations``); these classes must
match it, which ``tests/unit/db/test_migrations.py`` checks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, utcnow


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    default_priority: Mapped[str] = mapped_column(String(20), default="BULK")
    max_message_length: Mapped[int] = mapped_column(Integer)
    rate: Mapped[float | None] = mapped_column(Float, nullable=True)  # messages/s; None = unlimited
    burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dr_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    mo_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    callback_secret: Mapped[str] = mapped_column(String(128))
    message_id_optional: Mapped[bool] = mapped_column(Boolean, default=False)
    allowed_ips: Mapped[list[str]] = mapped_column(JSON, default=list)
    # DR/MO callback retries (seed 000, "MO and DR Retry Strategy": every 10 minutes, 25 times).
    callback_retry_interval: Mapped[int] = mapped_column(Integer, default=600)
    callback_max_retries: Mapped[int] = mapped_column(Integer, default=25)
    # Which states DR callbacks report (app.domain.states.DrMask): "all" or "final".
    dr_mask: Mapped[str] = mapped_column(String(8), default="all", server_default="all")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    senders: Mapped[list["Sender"]] = relationship(back_populates="account")


class Sender(Base):
    """A source address provisioned on the gateway, owned by at most one account."""

    __tablename__ = "senders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True, index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    account: Mapped[Account | None] = relationship(back_populates="senders")


class Carrier(Base):
    """An upstream carrier: the numeric Carrier ID of the seed's Reach list, a
    connector (``smpp`` or ``http``) with its settings, and its throughput limit."""

    __tablename__ = "carriers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    connector: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    throughput: Mapped[float | None] = mapped_column(Float, nullable=True)  # messages/s
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Route(Base):
    """An E.164 prefix served by a carrier; the longest prefix wins, and traffic is
    spread over that prefix's carriers by ``weight`` (smooth weighted round robin,
    walking them in ``position`` order); failover takes the next one by the same rule."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("prefix", "carrier_id", name="uq_routes_prefix_carrier"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    carrier_id: Mapped[int] = mapped_column(ForeignKey("carriers.id"))
    weight: Mapped[int] = mapped_column(Integer, default=1)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Message(Base):
    """One MT message. ``id`` is smsagg's own; ``client_message_id`` the client's
    ``message_id``, unique per account (the durable half of idempotency)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("account_id", "client_message_id", name="uq_messages_account_client_id"),
        Index("ix_messages_state_updated", "state", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    client_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    phone_number: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(20))
    receipt: Mapped[bool] = mapped_column(Boolean, default=False)
    app_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    conversation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    requested_carrier_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    carrier_id: Mapped[int | None] = mapped_column(ForeignKey("carriers.id"), nullable=True)
    mms_content_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # How the text goes out: None = decided by the text; bulk ``type`` asks for one.
    encoding: Mapped[str | None] = mapped_column(String(16), nullable=True)
    flash: Mapped[bool] = mapped_column(Boolean, default=False)
    # Extra per-API delivery options (bulk batch id, WAP push, price), as given.
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    segments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submit_attempts: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[int] = mapped_column(Integer)
    result_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    events: Mapped[list["MessageEvent"]] = relationship(
        back_populates="message", order_by="MessageEvent.id", cascade="all, delete-orphan"
    )
    parts: Mapped[list["MessagePart"]] = relationship(
        back_populates="message", order_by="MessagePart.position", cascade="all, delete-orphan"
    )
    submits: Mapped[list["SegmentSubmit"]] = relationship(
        back_populates="message", order_by="SegmentSubmit.seq", cascade="all, delete-orphan"
    )


class MessagePart(Base):
    """An MMS part kept with its message (after SMIL wrapping, in sending order)."""

    __tablename__ = "message_parts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)

    message: Mapped[Message] = relationship(back_populates="parts")


class SegmentSubmit(Base):
    """One segment (submit_sm) of a message at a carrier: the SMSC's message id once it
    acknowledged it (so a redelivered task never submits it again), and the state its
    delivery receipts report."""

    __tablename__ = "segment_submits"
    __table_args__ = (
        UniqueConstraint("message_id", "seq", name="uq_segment_submits_message_seq"),
        Index("ix_segment_submits_carrier_smsc_id", "carrier_id", "smsc_message_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    carrier_id: Mapped[int] = mapped_column(ForeignKey("carriers.id"))
    smsc_message_id: Mapped[str | None] = mapped_column(String(65), nullable=True)
    state: Mapped[int] = mapped_column(Integer)
    command_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    message: Mapped[Message] = relationship(back_populates="submits")


class Callback(Base):
    """One DR or MO POST owed to a client (the outbox): written in the same transaction
    as the state change it reports, sent by the callbacks queue, retried until
    delivered or dead-lettered, and replayable."""

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_status_next", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    message_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    mo_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(8))  # "dr" | "mo"
    url: Mapped[str] = mapped_column(String(2048))
    fields: Mapped[list] = mapped_column(JSON)  # [[name, value], ...] in sending order
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer)
    retry_interval: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(512), nullable=True)

    attempt_log: Mapped[list["CallbackAttempt"]] = relationship(
        back_populates="callback", order_by="CallbackAttempt.id", cascade="all, delete-orphan"
    )


class CallbackAttempt(Base):
    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    callback_id: Mapped[str] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(String(512), nullable=True)

    callback: Mapped[Callback] = relationship(back_populates="attempt_log")


class UnmatchedReceipt(Base):
    """A delivery receipt whose SMSC id matched no segment yet: held (it may have
    overtaken its submit_sm_resp), re-matched, and kept visible if it never matches."""

    __tablename__ = "unmatched_receipts"
    __table_args__ = (Index("ix_unmatched_receipts_status", "status", "received_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    carrier_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    smsc_message_id: Mapped[str] = mapped_column(String(65))
    fields: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | matched | unmatched
    matched_message_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class MoMessage(Base):
    """A mobile-originated message, whole (concatenated parts joined). ``account_id``
    is None when no account owns the destination: kept and visible, not dropped."""

    __tablename__ = "mo_messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True, index=True)
    carrier_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    phone_number: Mapped[str] = mapped_column(String(32))
    shortcode: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list] = mapped_column(JSON, default=list)  # [[content_type, base64], ...]
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MoPart(Base):
    """One part of a concatenated MO, held until every part has arrived."""

    __tablename__ = "mo_parts"
    __table_args__ = (
        UniqueConstraint("carrier_id", "phone_number", "shortcode", "ref", "seq", name="uq_mo_parts_part"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    carrier_id: Mapped[int] = mapped_column(Integer)
    phone_number: Mapped[str] = mapped_column(String(32))
    shortcode: Mapped[str] = mapped_column(String(32))
    ref: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    fields: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MessageEvent(Base):
    """One step of a message's life: accepted, routed, submitted, a DR, a failure."""

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)

    message: Mapped[Message] = relationship(back_populates="events")

