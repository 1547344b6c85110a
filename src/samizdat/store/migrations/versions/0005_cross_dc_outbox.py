"""cross-DC outbox: updates for members homed in another DC, and which ones were applied

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 03:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("target_dc", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_ids", sa.Text(), nullable=False),
        sa.Column("actor", sa.BigInteger(), nullable=True),
        sa.Column("max_id", sa.BigInteger(), nullable=True),
        sa.Column("emoji", sa.String(length=16), nullable=True),
        sa.Column("for_everyone", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_target", ["target_dc", "id"], unique=False)
    op.create_table(
        "outbox_applied",
        sa.Column("source_dc", sa.String(length=32), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("source_dc", "outbox_id"),
    )
    with op.batch_alter_table("outbox_applied", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_applied_at", ["applied_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_applied", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_applied_at")
    op.drop_table("outbox_applied")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_target")
    op.drop_table("outbox")
