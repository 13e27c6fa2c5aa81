"""The fleet's durable state in the controller's database: devices, desired models, reports.

One class over SQLAlchemy, so SQLite (embedded default) and PostgreSQL
(production) behave the same; the contract tests run on both. Reports are
idempotent by (agent, id): a retried report is stored once, and a later
report of the same deployment (its final state) replaces the earlier one.
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.common.device import DeviceInfo, TelemetrySample
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import DeploymentRecord, JobResult, ModelSlot, ModelSpec
from jetfleet.controller.fleet.schema import DesiredModel, Device, FleetDeployment, JobResultRow
from jetfleet.proto import convert
from jetfleet.proto.v1 import common_pb2 as pb

STALE_AFTER_S = 30.0  # three missed heartbeats at the default 10 s interval
OFFLINE_AFTER_S = 90.0  # nine: long enough to ride out a Wi-Fi roam or an agent restart


class Liveness(enum.StrEnum):
    ONLINE = "online"
    STALE = "stale"
    OFFLINE = "offline"


def liveness(
    last_seen: float, now: float, stale_after: float = STALE_AFTER_S, offline_after: float = OFFLINE_AFTER_S
) -> Liveness:
    """Online, stale or offline from the time since the last heartbeat."""
    age = now - last_seen
    if age >= offline_after:
        return Liveness.OFFLINE
    return Liveness.STALE if age >= stale_after else Liveness.ONLINE


@dataclass(frozen=True)
class DeviceRecord:
    """A registered agent as the controller knows it."""

    name: str
    address: str
    device: DeviceInfo
    tags: dict[str, str]
    backends: tuple[str, ...]
    active: tuple[ModelSlot, ...] = ()
    registered_at: float = 0.0
    last_seen: float = 0.0
    heartbeats: int = 0
    telemetry: TelemetrySample | None = None

    def liveness(
        self, now: float, stale_after: float = STALE_AFTER_S, offline_after: float = OFFLINE_AFTER_S
    ) -> Liveness:
        return liveness(self.last_seen, now, stale_after, offline_after)

    def serves(self, model: str) -> ModelSlot | None:
        return next((s for s in self.active if s.spec.model == model), None)


@dataclass(frozen=True)
class Desired:
    device: str
    spec: ModelSpec
    rollout_id: str
    updated_at: float = field(default=0.0)


def _to_json(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def _from_json(data: dict[str, Any], cls: type) -> Any:
    return json_format.ParseDict(data, cls())


def _ts(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class FleetStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time and resolves contention with sleeping retries (up to 100 ms each):
        # dozens of push threads and agent reports would mostly sleep. Queue them on a lock instead.
        self._serialize = threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._serialize, self._sessions.begin() as session:
            yield session

    # -- devices ----------------------------------------------------------------
    def register(self, rec: DeviceRecord, now: float) -> None:
        """Insert or update a device from its registration (tags set on the controller are kept)."""
        with self._tx() as s:
            row = s.scalar(select(Device).where(Device.name == rec.name))
            if row is None:
                row = Device(name=rec.name, registered_at=_dt(now), heartbeats=0, telemetry={}, operator_tags={})
                s.add(row)
            row.address = rec.address
            row.device = rec.device.to_dict()
            row.tags = dict(rec.tags)
            row.backends = list(rec.backends)
            row.active = [_to_json(convert.slot_to_pb(a)) for a in rec.active]
            row.last_seen = _dt(now)

    def heartbeat(self, name: str, telemetry: TelemetrySample, active: tuple[ModelSlot, ...], now: float) -> bool:
        """Record a heartbeat; False when ``name`` is unknown (the agent must register again)."""
        with self._tx() as s:
            row = s.scalar(select(Device).where(Device.name == name))
            if row is None:
                return False
            row.telemetry = _to_json(convert.telemetry_to_pb(telemetry))
            row.active = [_to_json(convert.slot_to_pb(a)) for a in active]
            row.last_seen = _dt(now)
            row.heartbeats += 1
            return True

    def devices(self) -> list[DeviceRecord]:
        with self._tx() as s:
            return [self._device(row) for row in s.scalars(select(Device).order_by(Device.name))]

    def device(self, name: str) -> DeviceRecord:
        with self._tx() as s:
            row = s.scalar(select(Device).where(Device.name == name))
            if row is None:
                raise JetfleetError(f"no device named {name!r}", "list them with `jetfleet devices list`")
            return self._device(row)

    def set_tags(self, name: str, add: dict[str, str], remove: tuple[str, ...] = ()) -> DeviceRecord:
        """Operator tags: kept across re-registrations, and they win over the agent's own tags."""
        with self._tx() as s:
            row = s.scalar(select(Device).where(Device.name == name))
            if row is None:
                raise JetfleetError(f"no device named {name!r}")
            from_agent = [k for k in remove if k in (row.tags or {}) and k not in (row.operator_tags or {})]
            if from_agent:
                raise JetfleetError(
                    f"tag {', '.join(from_agent)} of {name} comes from the agent's own config",
                    "change it there (--tag or [tags] in agent.toml)",
                )
            tags = {k: v for k, v in (row.operator_tags or {}).items() if k not in remove}
            row.operator_tags = {**tags, **add}
            return self._device(row)

    def remove_device(self, name: str) -> None:
        with self._tx() as s:
            if s.execute(delete(Device).where(Device.name == name)).rowcount == 0:  # type: ignore[attr-defined]
                raise JetfleetError(f"no device named {name!r}")

    @staticmethod
    def _device(row: Device) -> DeviceRecord:
        return DeviceRecord(
            name=row.name,
            address=row.address,
            device=DeviceInfo(**row.device),
            tags={**(row.tags or {}), **(row.operator_tags or {})},
            backends=tuple(row.backends or ()),
            active=tuple(convert.slot_from_pb(_from_json(a, pb.ModelSlot)) for a in row.active or ()),
            registered_at=_ts(row.registered_at),
            last_seen=_ts(row.last_seen),
            heartbeats=row.heartbeats,
            telemetry=convert.telemetry_from_pb(_from_json(row.telemetry, pb.TelemetrySample))
            if row.telemetry
            else None,
        )

    # -- desired state ------------------------------------------------------------
    def set_desired(self, device: str, spec: ModelSpec, rollout_id: str, now: float) -> None:
        with self._tx() as s:
            dev = s.scalar(select(Device).where(Device.name == device))
            if dev is None:
                raise JetfleetError(f"no device named {device!r}")
            row = s.scalar(
                select(DesiredModel).where(DesiredModel.device_id == dev.id, DesiredModel.model == spec.model)
            )
            if row is None:
                row = DesiredModel(device_id=dev.id, model=spec.model)
                s.add(row)
            row.spec = _to_json(convert.spec_to_pb(spec))
            row.rollout_id = rollout_id
            row.updated_at = _dt(now)

    def desired(self, device: str | None = None) -> list[Desired]:
        with self._tx() as s:
            query = select(Device.name, DesiredModel).join(Device, Device.id == DesiredModel.device_id)
            if device is not None:
                query = query.where(Device.name == device)
            return [
                Desired(
                    name, convert.spec_from_pb(_from_json(row.spec, pb.ModelSpec)), row.rollout_id, _ts(row.updated_at)
                )
                for name, row in s.execute(query.order_by(Device.name, DesiredModel.model))
            ]

    def clear_desired(self, device: str, model: str) -> None:
        with self._tx() as s:
            dev = s.scalar(select(Device).where(Device.name == device))
            if dev is not None:
                s.execute(delete(DesiredModel).where(DesiredModel.device_id == dev.id, DesiredModel.model == model))

    # -- reports ------------------------------------------------------------------
    def add_deployment(self, rec: DeploymentRecord, now: float) -> bool:
        """Store a reported deployment; False when this exact report was stored before."""
        data = _to_json(convert.record_to_pb(rec))
        with self._tx() as s:
            row = s.scalar(
                select(FleetDeployment).where(
                    FleetDeployment.agent == rec.agent, FleetDeployment.deployment_id == rec.deployment_id
                )
            )
            if row is not None and row.record == data:
                return False
            if row is None:
                row = FleetDeployment(agent=rec.agent, deployment_id=rec.deployment_id, created_at=_dt(now))
                s.add(row)
            row.model, row.state, row.record, row.updated_at = rec.spec.model, rec.state.name, data, _dt(now)
            return True

    def deployments(self, agent: str | None = None, limit: int = 100) -> list[DeploymentRecord]:
        with self._tx() as s:
            query = select(FleetDeployment).order_by(FleetDeployment.id.desc()).limit(limit)
            if agent is not None:
                query = query.where(FleetDeployment.agent == agent)
            return [convert.record_from_pb(_from_json(r.record, pb.DeploymentRecord)) for r in s.scalars(query)]

    def add_job(self, result: JobResult, now: float) -> bool:
        """Store a job result once; False for a duplicate (a retried report)."""
        row = JobResultRow(
            agent=result.agent,
            job_id=result.job_id,
            model=result.model.spec.model,
            result=_to_json(convert.job_result_to_pb(result)),
            created_at=_dt(now),
        )
        try:
            with self._tx() as s:
                s.add(row)
        except IntegrityError:
            return False
        return True

    def jobs(self, job_id: str | None = None, limit: int = 100) -> list[JobResult]:
        with self._tx() as s:
            query = select(JobResultRow).order_by(JobResultRow.id.desc()).limit(limit)
            if job_id is not None:
                query = query.where(JobResultRow.job_id == job_id)
            return [convert.job_result_from_pb(_from_json(r.result, pb.JobResult)) for r in s.scalars(query)]
