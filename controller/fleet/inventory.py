"""What the controller knows about its agents, from what they told it.

This is the in-memory inventory behind :class:`~jetfleet.controller.fleet.
service.ControllerServicer`: registrations, the latest heartbeat of each
agent, and the deployment records and job results they reported, each stored
once by id (a retried report changes nothing). The controller daemon adds
persistence around the same interface.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from jetfleet.common.device import DeviceInfo, TelemetrySample
from jetfleet.common.fleet import DeploymentRecord, JobResult, ModelSlot


@dataclass(frozen=True)
class DeviceRecord:
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


@dataclass
class Inventory:
    devices: dict[str, DeviceRecord] = field(default_factory=dict)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)  # key: agent/deployment id
    jobs: dict[str, JobResult] = field(default_factory=dict)  # key: agent/job id
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def register(self, rec: DeviceRecord) -> None:
        now = time.time()
        with self._lock:
            self.devices[rec.name] = replace(rec, registered_at=now, last_seen=now)

    def heartbeat(self, name: str, telemetry: TelemetrySample, active: tuple[ModelSlot, ...]) -> bool:
        """Record a heartbeat; False when ``name`` is unknown (the agent must register again)."""
        with self._lock:
            rec = self.devices.get(name)
            if rec is None:
                return False
            self.devices[name] = replace(
                rec, telemetry=telemetry, active=active, last_seen=time.time(), heartbeats=rec.heartbeats + 1
            )
            return True

    def add_deployment(self, record: DeploymentRecord) -> bool:
        """Store a reported deployment; False when this exact report was stored before."""
        key = f"{record.agent}/{record.deployment_id}"
        with self._lock:
            if self.deployments.get(key) == record:
                return False
            self.deployments[key] = record  # a later report of the same id carries its final state
            return True

    def add_job(self, result: JobResult) -> bool:
        """Store a job result once; False for a duplicate."""
        key = f"{result.agent}/{result.job_id}"
        with self._lock:
            if key in self.jobs:
                return False
            self.jobs[key] = result
            return True
