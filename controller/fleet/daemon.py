"""The controller daemon: the agents' service, the admin service, and the reconcile loop.

It owns the controller's database (registry + fleet tables) and is the only
component that talks to agents. Deployments are desired state: the admin
call records what each device should serve and returns (or streams progress
while it watches); the reconcile loop pushes what is missing, every
``interval`` seconds and whenever something changes, so a device that was
offline converges when it comes back without anyone repeating the command.

Pushes fan out on a thread pool of ``fanout`` workers; each RPC has a
deadline, so one slow or dead device never holds up the rest.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from jetfleet.common.errors import JetfleetError
from jetfleet.common.failpoints import failpoint
from jetfleet.common.fleet import ModelSpec
from jetfleet.controller.fleet.agent_client import AgentCallError, AgentClient
from jetfleet.controller.fleet.reconcile import Attempt, Decision, decide
from jetfleet.controller.fleet.security import Enrollments, FleetPKI, Gate
from jetfleet.controller.fleet.service import ControllerServicer, EnrollmentServicer
from jetfleet.controller.fleet.specs import registered
from jetfleet.controller.fleet.store import DeviceRecord, FleetStore, Liveness, liveness
from jetfleet.controller.registry.store import Registry
from jetfleet.proto import convert
from jetfleet.proto.rpc import add_health, bind, make_server
from jetfleet.proto.v1 import admin_pb2 as adm
from jetfleet.proto.v1 import admin_pb2_grpc, controller_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerSettings:
    listen: str = "0.0.0.0:50050"  # agents on the LAN dial in; the admin API shares the port
    enroll_listen: str = "0.0.0.0:50049"  # server-only TLS, one RPC: devices without a certificate yet
    fanout: int = 32  # concurrent pushes: enough to saturate a workstation NIC, bounded threads
    interval_s: float = 1.0  # reconcile tick; changes also wake the loop at once
    heartbeat_interval_s: float = 10.0
    stale_after_s: float = 30.0
    offline_after_s: float = 90.0
    agent_timeout_s: float = 1800.0  # one deploy RPC (a TensorRT build on a Nano takes minutes)


class EventBus:
    """Fan-out of deployment events to admin streams that watch them."""

    def __init__(self) -> None:
        self._subs: list[queue.Queue[adm.FleetDeployEvent]] = []
        self._lock = threading.Lock()

    def publish(self, event: adm.FleetDeployEvent) -> None:
        with self._lock:
            for q in self._subs:
                q.put(event)

    def subscribe(self) -> queue.Queue[adm.FleetDeployEvent]:
        q: queue.Queue[adm.FleetDeployEvent] = queue.Queue()
        with self._lock:
            self._subs.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[adm.FleetDeployEvent]) -> None:
        with self._lock:
            self._subs.remove(q)


class Controller:
    """``pki`` None means ``--insecure``: plaintext everywhere, no enrollment, unsigned manifests."""

    def __init__(self, registry: Registry, settings: ControllerSettings, pki: FleetPKI | None = None) -> None:
        self.registry = registry
        self.settings = settings
        self.pki = pki
        self.store = FleetStore(registry.engine)
        self.enrollments = Enrollments(registry.engine) if pki is not None else None
        self.gate = Gate(self.enrollments)
        self.credentials = pki.controller_credentials() if pki is not None else None
        self.signer = pki.signer() if pki is not None else None
        self.enroll_server: grpc.Server | None = None
        self.enroll_address = ""
        self.events = EventBus()
        self.pool = ThreadPoolExecutor(max_workers=settings.fanout, thread_name_prefix="push")
        self._in_flight: set[tuple[str, str]] = set()
        self._attempts: dict[tuple[str, str], Attempt] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reconcile", daemon=True)
        self.server: grpc.Server | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> int:
        from jetfleet.controller.fleet.admin import AdminServicer

        self.server = make_server(workers=64)
        controller_pb2_grpc.add_ControllerServiceServicer_to_server(
            ControllerServicer(self.store, self.settings.heartbeat_interval_s, on_change=self.wake, gate=self.gate),
            self.server,
        )
        admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(self), self.server)
        add_health(self.server, ["jetfleet.v1.ControllerService", "jetfleet.v1.AdminService"])
        self.port = bind(self.server, self.settings.listen, self.credentials)
        if self.port == 0:
            raise JetfleetError(f"cannot listen on {self.settings.listen}", "is another controller running?")
        if self.pki is not None and self.enrollments is not None:
            self._start_enrollment(self.pki, self.enrollments)
        self.server.start()
        self._thread.start()
        return self.port

    def _start_enrollment(self, pki: FleetPKI, enrollments: Enrollments) -> None:
        """The enrollment port: TLS with the controller's certificate, no client certificate asked."""
        self.enroll_server = make_server(workers=4)
        controller_pb2_grpc.add_EnrollmentServiceServicer_to_server(
            EnrollmentServicer(pki, enrollments), self.enroll_server
        )
        assert self.credentials is not None
        port = bind(self.enroll_server, self.settings.enroll_listen, self.credentials, require_client_cert=False)
        if port == 0:
            raise JetfleetError(f"cannot listen on {self.settings.enroll_listen}", "pass another --enroll-listen")
        host = self.settings.enroll_listen.rsplit(":", 1)[0]
        self.enroll_address = f"{socket.gethostname() if host in ('0.0.0.0', '[::]', '') else host}:{port}"
        self.enroll_server.start()
        log.info("enrollment on port %d", port)

    def client(self, device: DeviceRecord) -> AgentClient:
        """A client for ``device``: mutual TLS against its name, manifests signed for its class."""
        return AgentClient(
            device.address,
            device.name,
            credentials=self.credentials,
            signer=self.signer,
            device_class=device.device.device_class,
        )

    def stop(self, grace: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self.enroll_server is not None:
            self.enroll_server.stop(0)
        if self.server is not None:
            self.server.stop(grace).wait()
        self._thread.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    # -- the reconcile loop ----------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception:  # a bad tick must not end reconciliation
                log.exception("reconcile failed")
            if self._wake.wait(self.settings.interval_s):
                self._wake.clear()

    def liveness_of(self, last_seen: float, now: float) -> Liveness:
        return liveness(last_seen, now, self.settings.stale_after_s, self.settings.offline_after_s)

    def plan(self, now: float | None = None) -> list:
        """The current decisions (what ``jetfleet status`` shows and the loop acts on)."""
        now = time.time() if now is None else now
        devices = {d.name: d for d in self.store.devices()}
        live = {n: self.liveness_of(d.last_seen, now) for n, d in devices.items()}
        with self._lock:
            in_flight, attempts = set(self._in_flight), dict(self._attempts)
        return decide(self.store.desired(), devices, live, in_flight, attempts, now)

    def reconcile_once(self) -> None:
        devices = {d.name: d for d in self.store.devices()}
        for action in self.plan():
            if action.decision != Decision.DEPLOY:
                continue
            key = (action.device, action.spec.model)
            with self._lock:
                if key in self._in_flight:
                    continue
                self._in_flight.add(key)
            self.pool.submit(self._push, devices[action.device], action.spec)

    def _push(self, target: DeviceRecord, spec: ModelSpec) -> None:
        """Upload what the device lacks and deploy; record how it ended (I/O side of the loop).

        Going below the version the device serves is what the operator asked
        for (desired state), so the manifest says so: a signed rollback.
        """
        device = target.name
        serving = target.serves(spec.model)
        downgrade = serving is not None and spec.version < serving.spec.version
        rollout = next((d.rollout_id for d in self.store.desired(device) if d.spec.model == spec.model), "")

        def event(phase: str, message: str = "", **kw: object) -> None:
            self.events.publish(
                adm.FleetDeployEvent(rollout_id=rollout, device=device, phase=phase, message=message, **kw)
            )

        code, reason = "INTERNAL", ""
        try:
            files = {sha: self.registry.blob_path(sha) for sha in _shas(spec)}
            with self.client(target) as client:
                event("uploading", f"sending {spec.onnx.short}")
                outcome = client.push(
                    spec,
                    files,
                    rollback=downgrade,
                    progress=lambda step, msg, frac: event("step", msg, step=int(step), fraction=frac),
                    timeout=self.settings.agent_timeout_s,
                )
            failpoint("controller.push.deployed")  # the device switched; the controller has not recorded it
            self.store.add_deployment(outcome.record, time.time())
            code, reason = outcome.code.name, outcome.record.reason
            phase = "active" if outcome.ok else "failed"
            event(phase, reason or "active", record=convert.record_to_pb(outcome.record))
        except AgentCallError as exc:
            code, reason = exc.code.name, exc.details
            event("failed", str(exc))
        except Exception as exc:
            log.exception("push of %s to %s failed", spec.ref, device)
            reason = f"{type(exc).__name__}: {exc}"
            event("failed", reason)
        finally:
            self._finish(device, spec, code, reason)

    def _finish(self, device: str, spec: ModelSpec, code: str, reason: str) -> None:
        key = (device, spec.model)
        with self._lock:
            self._in_flight.discard(key)
            last = self._attempts.get(key)
            failures = 0 if code == "OK" else (last.failures + 1 if last and last.spec == spec else 1)
            self._attempts[key] = Attempt(spec, code, reason, time.time(), failures)
        self.wake()

    # -- operations on devices (not desired-state) ------------------------------------
    def rollback(self, device: DeviceRecord, model: str, rollout: str) -> adm.FleetDeployEvent:
        """Roll one device back, then make its desired state the version it now serves."""
        key = (device.name, model)
        with self._lock:
            if key in self._in_flight:
                return adm.FleetDeployEvent(
                    rollout_id=rollout, device=device.name, phase="failed", message="a deployment is in flight"
                )
            self._in_flight.add(key)  # the loop must not push the old desired version meanwhile
        try:
            with self.client(device) as client:
                outcome = client.rollback(
                    model, deployment_id=f"{rollout}-{device.name}", timeout=self.settings.agent_timeout_s
                )
            self.store.add_deployment(outcome.record, time.time())
            known = registered(self.registry, outcome.record.spec) if outcome.ok else None
            if known is not None:  # the registry's copy: what the device says it went back to is only a claim
                self.store.set_desired(device.name, known.spec, rollout, time.time())
                with self._lock:
                    self._attempts.pop(key, None)
            phase = "active" if known is not None else "failed"
            msg = f"back to {outcome.record.spec.ref}" if known is not None else outcome.details
            if outcome.ok and known is None:
                msg = f"{device.name} went back to {outcome.record.spec.ref}, which the registry does not hold"
            return adm.FleetDeployEvent(
                rollout_id=rollout,
                device=device.name,
                phase=phase,
                message=msg,
                record=convert.record_to_pb(outcome.record),
            )
        except AgentCallError as exc:
            return adm.FleetDeployEvent(rollout_id=rollout, device=device.name, phase="failed", message=exc.details)
        finally:
            with self._lock:
                self._in_flight.discard(key)

    def run_job(self, device: DeviceRecord, request: adm.FleetJobRequest, job_id: str) -> adm.FleetJobEvent:
        """One device's job on the test set of the version it serves; the result is stored."""
        slot = device.serves(request.model)
        if slot is None:
            return adm.FleetJobEvent(
                job_id=job_id,
                device=device.name,
                phase="failed",
                message=f"{device.name} does not serve {request.model}",
            )
        if slot.spec.test_set is None:
            return adm.FleetJobEvent(
                job_id=job_id, device=device.name, phase="failed", message=f"{slot.spec.ref} has no test set"
            )
        known = registered(self.registry, slot.spec)
        if known is None or known.spec.test_set is None:
            return adm.FleetJobEvent(
                job_id=job_id,
                device=device.name,
                phase="failed",
                message=f"{device.name} reports serving {slot.spec.ref}, which the registry does not hold as such",
            )
        test_set = known.spec.test_set
        try:
            with self.client(device) as client:
                client.upload(  # signed for upload only: a job's manifest must never be usable to deploy
                    known.files[test_set.sha256],
                    test_set,
                    manifest=client.sign(known.spec, job_id, purpose="upload"),
                )
                result = client.run_job(
                    model=request.model,
                    test_set=test_set,
                    batch_size=request.batch_size or 32,
                    warmup=request.warmup,
                    iterations=request.iterations,
                    return_predictions=request.return_predictions,
                    limit=request.limit,
                    job_id=job_id,
                )
        except AgentCallError as exc:
            return adm.FleetJobEvent(job_id=job_id, device=device.name, phase="failed", message=exc.details)
        self.store.add_job(result, time.time())
        return adm.FleetJobEvent(
            job_id=job_id, device=device.name, phase="done", result=convert.job_result_to_pb(result)
        )

    def engine_hint(self, device: DeviceRecord, spec: ModelSpec) -> bool:
        """Whether the device serves this artifact in this precision (its engine is cached there)."""
        return any(s.spec.onnx == spec.onnx and s.spec.precision == spec.precision for s in device.active)

    def attempt(self, device: str, model: str) -> Attempt | None:
        with self._lock:
            return self._attempts.get((device, model))

    def watch(self, rollout_id: str, devices: list[str], timeout_s: float) -> Iterator[adm.FleetDeployEvent]:
        """Events of ``rollout_id`` until each device is active, failed, blocked or offline.

        Watching is only watching: a device still offline at the end keeps
        its desired state and converges later; the stream just stops
        waiting for it.
        """
        q = self.events.subscribe()
        pending = set(devices)
        deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
        try:
            self.wake()
            while pending:
                for ev in self._settled(rollout_id, pending):
                    pending.discard(ev.device)
                    yield ev
                if not pending:
                    return
                if deadline is not None and time.monotonic() > deadline:
                    for name in sorted(pending):
                        yield adm.FleetDeployEvent(rollout_id=rollout_id, device=name, phase="timeout")
                    return
                yield from self._events_for(rollout_id, pending, q)
        finally:
            self.events.unsubscribe(q)

    def _settled(self, rollout_id: str, pending: set[str]) -> list[adm.FleetDeployEvent]:
        """Final events for devices with nothing more to wait for: converged, blocked or offline."""
        phases = {
            Decision.CONVERGED: "active",
            Decision.BLOCKED: "blocked",
            Decision.WAIT_OFFLINE: "offline",
            Decision.UNKNOWN_DEVICE: "offline",
        }
        out = []
        for action in self.plan():
            phase = phases.get(action.decision)
            if action.device in pending and phase is not None:
                message = action.reason or "serving"
                if phase == "offline":
                    message += ": it will converge by itself when it comes back"
                out.append(
                    adm.FleetDeployEvent(rollout_id=rollout_id, device=action.device, phase=phase, message=message)
                )
        return out

    @staticmethod
    def _events_for(
        rollout_id: str, pending: set[str], q: queue.Queue[adm.FleetDeployEvent]
    ) -> Iterator[adm.FleetDeployEvent]:
        """Progress events for the pending devices over the next half second; outcomes end their wait."""
        end = time.monotonic() + 0.5
        while (left := end - time.monotonic()) > 0:
            try:
                ev = q.get(timeout=left)
            except queue.Empty:
                return
            if ev.rollout_id != rollout_id or ev.device not in pending:
                continue
            if ev.phase in ("active", "failed"):
                pending.discard(ev.device)
            yield ev


def _shas(spec: ModelSpec) -> list[str]:
    return [r.sha256 for r in (spec.onnx, spec.test_set) if r is not None]
