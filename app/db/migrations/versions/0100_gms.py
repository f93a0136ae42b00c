"""gms: mobile services apps, agents, resource groups, access numbers

Revision ID: 0100
Revises: 0001
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0001"
branch_labels = ("gms",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gms_apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "gms_agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("nickname", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "gms_resource_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("booking_timeout", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "gms_access_numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["gms_resource_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("group_id", "number", name="uq_gms_access_numbers_group_number"),
    )
    with op.batch_alter_table("gms_access_numbers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gms_access_numbers_group_id"), ["group_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gms_access_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gms_access_numbers_group_id"))
    op.drop_table("gms_access_numbers")
    op.drop_table("gms_resource_groups")
    op.drop_table("gms_agents")
    op.drop_table("gms_apps")
