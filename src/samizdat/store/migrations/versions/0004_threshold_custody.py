"""threshold custody: DC key envelopes, sealed IP log, phone numbers in threshold envelopes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:40:00

``phone_sealed`` becomes ``phone_shown`` (nullable): the DC-key copy of a number is kept only
while its owner lets others see it. ``phone_envelope`` is nullable for rows written before
this revision; the server fills it in on its first unsealed start (see store/identity.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dc_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("retired_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_table(
        "ip_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ip_log", schema=None) as batch_op:
        batch_op.create_index("ix_ip_log_at", ["at"], unique=False)
        batch_op.create_index("ix_ip_log_user", ["user_id", "at"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_envelope", sa.LargeBinary(), nullable=True))
        batch_op.alter_column(
            "phone_sealed",
            new_column_name="phone_shown",
            existing_type=sa.LargeBinary(),
            nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column(
            "phone_shown",
            new_column_name="phone_sealed",
            existing_type=sa.LargeBinary(),
            nullable=False,
        )
        batch_op.drop_column("phone_envelope")
    with op.batch_alter_table("ip_log", schema=None) as batch_op:
        batch_op.drop_index("ix_ip_log_user")
        batch_op.drop_index("ix_ip_log_at")
    op.drop_table("ip_log")
    op.drop_table("dc_keys")
