"""delivery: segment submits, the encoding asked for each message

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("encoding", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("flash", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("submit_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "segment_submits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("carrier_id", sa.Integer(), nullable=False),
        sa.Column("smsc_message_id", sa.String(length=65), nullable=True),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("command_status", sa.Integer(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["carrier_id"], ["carriers.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "seq", name="uq_segment_submits_message_seq"),
    )
    with op.batch_alter_table("segment_submits", schema=None) as batch_op:
        batch_op.create_index("ix_segment_submits_carrier_smsc_id", ["carrier_id", "smsc_message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("segment_submits", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_submits_carrier_smsc_id")
    op.drop_table("segment_submits")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        for column in ("submit_attempts", "options", "flash", "encoding"):
            batch_op.drop_column(column)
