"""Fleet tables: devices, desired models, deployment records, job results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("device", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("operator_tags", sa.JSON, nullable=False),
        sa.Column("backends", sa.JSON, nullable=False),
        sa.Column("active", sa.JSON, nullable=False),
        sa.Column("telemetry", sa.JSON, nullable=False),
        _ts("registered_at"),
        _ts("last_seen"),
        sa.Column("heartbeats", sa.Integer, nullable=False),
    )
    op.create_table(
        "desired_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("rollout_id", sa.String(64), nullable=False),
        _ts("updated_at"),
        sa.UniqueConstraint("device_id", "model", name="uq_desired_device_model"),
    )
    op.create_index("ix_desired_models_device_id", "desired_models", ["device_id"])
    op.create_table(
        "fleet_deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("agent", "deployment_id", name="uq_deployment_agent_id"),
    )
    op.create_index("ix_fleet_deployments_agent", "fleet_deployments", ["agent"])
    op.create_table(
        "job_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent", sa.String(63), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("agent", "job_id", name="uq_job_agent_id"),
    )
    op.create_index("ix_job_results_agent", "job_results", ["agent"])
    op.create_index("ix_job_results_job_id", "job_results", ["job_id"])


def downgrade() -> None:
    for table in ("job_results", "fleet_deployments", "desired_models", "devices"):
        op.drop_table(table)
