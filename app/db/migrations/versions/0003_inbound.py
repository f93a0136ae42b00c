"""inbound: callbacks outbox and attempts, unmatched receipts, MO messages and parts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_retry_interval", sa.Integer(), nullable=False, server_default="600"))
        batch_op.add_column(sa.Column("callback_max_retries", sa.Integer(), nullable=False, server_default="25"))
    op.create_table(
        "callbacks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("mo_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("retry_interval", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.create_index("ix_callbacks_status_next", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_callbacks_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_callbacks_message_id"), ["message_id"], unique=False)
    op.create_table(
        "callback_attempts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("callback_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(["callback_id"], ["callbacks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("callback_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callback_attempts_callback_id"), ["callback_id"], unique=False)
    op.create_table(
        "unmatched_receipts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("carrier_id", sa.Integer(), nullable=True),
        sa.Column("smsc_message_id", sa.String(length=65), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("matched_message_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("unmatched_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_unmatched_receipts_status", ["status", "received_at"], unique=False)
    op.create_table(
        "mo_messages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("carrier_id", sa.Integer(), nullable=True),
        sa.Column("phone_number", sa.String(length=32), nullable=False),
        sa.Column("shortcode", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mo_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mo_messages_account_id"), ["account_id"], unique=False)
    op.create_table(
        "mo_parts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("carrier_id", sa.Integer(), nullable=False),
        sa.Column("phone_number", sa.String(length=32), nullable=False),
        sa.Column("shortcode", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("carrier_id", "phone_number", "shortcode", "ref", "seq", name="uq_mo_parts_part"),
    )


def downgrade() -> None:
    for table in ("mo_parts", "mo_messages", "unmatched_receipts", "callback_attempts", "callbacks"):
        op.drop_table(table)
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("callback_max_retries")
        batch_op.drop_column("callback_retry_interval")
