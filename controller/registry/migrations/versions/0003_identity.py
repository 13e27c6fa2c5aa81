"""Device identity: enrollment tokens and the certificates the fleet CA issued.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "enrollment_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("used_at", nullable=True),
    )
    op.create_index("ix_enrollment_tokens_name", "enrollment_tokens", ["name"])
    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(48), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        _ts("issued_at"),
        _ts("not_after"),
        _ts("revoked_at", nullable=True),
    )
    op.create_index("ix_certificates_name", "certificates", ["name"])


def downgrade() -> None:
    op.drop_table("certificates")
    op.drop_table("enrollment_tokens")
