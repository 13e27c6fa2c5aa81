"""Fleet tables in the controller's database, beside the registry's (same Alembic history).

Records the agents send (deployment records, job results) are stored as the
JSON form of their wire message (``google.protobuf.json_format``) next to the
columns we query by, so what was reported is kept exactly, readable with any
SQL client, and decoded with the one tested converter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jetfleet.controller.registry.schema import Base, utcnow


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    device: Mapped[dict[str, Any]] = mapped_column(default=dict)  # DeviceInfo
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)  # from the agent's config, replaced at registration
    operator_tags: Mapped[dict[str, Any]] = mapped_column(default=dict)  # `jetfleet devices tag`; win over the agent's
    backends: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[list[Any]] = mapped_column(default=list)  # ModelSlot messages (JSON)
    telemetry: Mapped[dict[str, Any]] = mapped_column(default=dict)  # latest TelemetrySample message
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeats: Mapped[int] = mapped_column(Integer, default=0)


class DesiredModel(Base):
    """What the operator wants a device to serve: the reconcile loop's target."""

    __tablename__ = "desired_models"
    __table_args__ = (UniqueConstraint("device_id", "model", name="uq_desired_device_model"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)  # ModelSpec message (JSON)
    rollout_id: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FleetDeployment(Base):
    __tablename__ = "fleet_deployments"
    __table_args__ = (UniqueConstraint("agent", "deployment_id", name="uq_deployment_agent_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent: Mapped[str] = mapped_column(String(63), index=True)
    deployment_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(32))
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)  # DeploymentRecord message (JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobResultRow(Base):
    __tablename__ = "job_results"
    __table_args__ = (UniqueConstraint("agent", "job_id", name="uq_job_agent_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent: Mapped[str] = mapped_column(String(63), index=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(128))
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)  # JobResult message (JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EnrollmentToken(Base):
    """A single-use, expiring token for one device name; only the secret's sha256 is stored."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the public half of "<id>.<secret>"
    name: Mapped[str] = mapped_column(String(63), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IssuedCertificate(Base):
    """Every certificate the fleet CA issued to a device; a revoked one is refused on every call."""

    __tablename__ = "certificates"

    serial: Mapped[str] = mapped_column(String(48), primary_key=True)  # hex: serials are 159-bit
    name: Mapped[str] = mapped_column(String(63), index=True)
    role: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
