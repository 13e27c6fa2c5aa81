"""The admin service the CLI calls: thin handlers over the controller and its store."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.fleet.rollout import WaveResult, check_gate, plan_waves
from jetfleet.controller.fleet.security import TOKEN_TTL_S
from jetfleet.controller.fleet.select import select_devices
from jetfleet.controller.fleet.specs import deployable
from jetfleet.controller.fleet.store import DeviceRecord
from jetfleet.proto import convert
from jetfleet.proto.v1 import admin_pb2 as adm
from jetfleet.proto.v1 import admin_pb2_grpc

if TYPE_CHECKING:
    from jetfleet.controller.fleet.daemon import Controller

T = TypeVar("T")


def _abort(context: grpc.ServicerContext, exc: JetfleetError) -> None:
    """One status for every user error: NOT_FOUND for "no such ...", INVALID_ARGUMENT otherwise."""
    code = grpc.StatusCode.NOT_FOUND if "no " in exc.message[:12] else grpc.StatusCode.INVALID_ARGUMENT
    context.abort(code, str(exc))


def _handled(method: Callable[..., T]) -> Callable[..., T]:
    """Only operators may call; user errors (unknown model, selector matching nothing) become
    INVALID_ARGUMENT/NOT_FOUND with the message."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        self.controller.gate.admin(context)
        try:
            return method(self, request, context)
        except JetfleetError as exc:
            _abort(context, exc)
            raise

    return wrapper


FINAL = ("active", "failed", "blocked", "offline", "timeout")


def _wave_name(n: int, total: int, wave: list[str], canary: int) -> str:
    kind = "canary" if n == 1 and canary else "wave"
    return f"{kind} {n}/{total}: {', '.join(wave)}"


def _smoke_accuracy(ev: adm.FleetDeployEvent | None, device: DeviceRecord | None, model: str) -> float | None:
    """From the deployment record, or (already converged devices) the slot it serves."""
    if ev is not None and ev.HasField("record") and ev.record.HasField("smoke_accuracy"):
        return ev.record.smoke_accuracy
    slot = device.serves(model) if device else None
    return slot.smoke_accuracy if slot else None


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.store = controller.store

    def view(self, dev: DeviceRecord, now: float) -> adm.DeviceView:
        msg = adm.DeviceView(
            name=dev.name,
            address=dev.address,
            device=convert.device_to_pb(dev.device),
            tags=dev.tags,
            backends=dev.backends,
            active=[convert.slot_to_pb(s) for s in dev.active],
            liveness=str(self.controller.liveness_of(dev.last_seen, now)),
            last_seen=dev.last_seen,
            heartbeats=dev.heartbeats,
            registered_at=dev.registered_at,
        )
        if dev.telemetry is not None:
            msg.telemetry.CopyFrom(convert.telemetry_to_pb(dev.telemetry))
        return msg

    @_handled
    def ListDevices(self, request: adm.ListDevicesRequest, context: grpc.ServicerContext) -> adm.DeviceList:
        devices = self.store.devices()
        if request.selector not in ("", "all"):
            devices = select_devices(request.selector, devices)
        now = time.time()
        return adm.DeviceList(devices=[self.view(d, now) for d in devices])

    @_handled
    def TagDevice(self, request: adm.TagDeviceRequest, context: grpc.ServicerContext) -> adm.DeviceView:
        return self.view(self.store.set_tags(request.name, dict(request.add), tuple(request.remove)), time.time())

    @_handled
    def CreateEnrollment(self, request: adm.CreateEnrollmentRequest, context: grpc.ServicerContext) -> adm.Enrollment:
        enrollments, pki_ = self.controller.enrollments, self.controller.pki
        if enrollments is None or pki_ is None:
            raise JetfleetError("this controller runs with --insecure: there is nothing to enroll into")
        token = enrollments.create(request.name, request.ttl_s or TOKEN_TTL_S)
        return adm.Enrollment(
            name=token.name,
            token=token.token,
            expires_at=token.expires_at,
            enroll_address=self.controller.enroll_address,
            ca_sha256=pki_.ca_sha256,
        )

    @_handled
    def RevokeDevice(self, request: adm.RevokeDeviceRequest, context: grpc.ServicerContext) -> adm.RevokeDeviceResponse:
        if self.controller.enrollments is None:
            raise JetfleetError("this controller runs with --insecure: it has no certificates to revoke")
        revoked = self.controller.enrollments.revoke(request.name)
        known = any(d.name == request.name for d in self.store.devices())
        if not revoked and not known:
            raise JetfleetError(f"no device named {request.name!r} and no certificate issued to it")
        if known:  # nothing more is pushed to it; it may enroll again with a new token
            self.store.remove_device(request.name)
        return adm.RevokeDeviceResponse(revoked=revoked)

    @_handled
    def RemoveDevice(self, request: adm.RemoveDeviceRequest, context: grpc.ServicerContext) -> adm.RemoveDeviceResponse:
        self.store.remove_device(request.name)
        return adm.RemoveDeviceResponse()

    def Deploy(self, request: adm.FleetDeployRequest, context: grpc.ServicerContext) -> Iterator[adm.FleetDeployEvent]:
        self.controller.gate.admin(context)
        try:
            targets = select_devices(request.selector, self.store.devices())
            dep = deployable(self.controller.registry, request.model, request.precision or "fp32")
            waves = plan_waves([d.name for d in targets], request.canary, request.wave_size)
        except JetfleetError as exc:
            _abort(context, exc)
        rollout = request.rollout_id or uuid.uuid4().hex[:12]
        for dev in targets:
            yield self._planned(rollout, dev, dep.spec)
        staged = request.canary > 0 or request.wave_size > 0
        if request.plan:
            for n, wave in enumerate(waves, 1):
                yield adm.FleetDeployEvent(
                    rollout_id=rollout, phase="wave", message=_wave_name(n, len(waves), wave, request.canary)
                )
            yield adm.FleetDeployEvent(rollout_id=rollout, phase="done", message="plan only: nothing changed")
            return
        previous = {d.name: d.serves(dep.spec.model) for d in targets}
        for n, wave in enumerate(waves, 1):
            if staged:
                yield adm.FleetDeployEvent(
                    rollout_id=rollout, phase="wave", message=_wave_name(n, len(waves), wave, request.canary)
                )
            now = time.time()
            for name in wave:
                self.store.set_desired(name, dep.spec, rollout, now)
            self.controller.wake()
            if not (request.wait or staged):
                continue
            results = {}
            for ev in self.controller.watch(rollout, wave, request.timeout_s):
                yield ev
                if ev.phase in FINAL:
                    results[ev.device] = ev
            if not staged:
                continue
            problems = self._gate(wave, results, request)
            yield adm.FleetDeployEvent(rollout_id=rollout, phase="gate", message="; ".join(problems) or "passed")
            if problems:
                touched = [name for w in waves[:n] for name in w]
                yield from self._halt(rollout, touched, previous, dep.spec)
                return
        yield adm.FleetDeployEvent(rollout_id=rollout, phase="done")

    def _planned(self, rollout: str, dev: DeviceRecord, spec: Any) -> adm.FleetDeployEvent:
        slot = dev.serves(spec.model)
        cached = self.controller.engine_hint(dev, spec)
        if slot is not None and slot.spec == spec:
            what = "already serves it"
        else:
            what = "engine cached: activate" if cached else "must build the engine"
        return adm.FleetDeployEvent(
            rollout_id=rollout,
            device=dev.name,
            phase="planned",
            spec=convert.spec_to_pb(spec),
            engine_cached=cached,
            message=f"{spec.ref} on {dev.name} ({self.controller.liveness_of(dev.last_seen, time.time())}): {what}",
        )

    def _gate(
        self, wave: list[str], results: dict[str, adm.FleetDeployEvent], request: adm.FleetDeployRequest
    ) -> list[str]:
        min_acc = request.min_accuracy if request.HasField("min_accuracy") else None
        max_p99 = request.max_p99_ms if request.HasField("max_p99_ms") else None
        devices = {d.name: d for d in self.store.devices()}
        rows = []
        for name in wave:
            ev = results.get(name)
            phase, message = (ev.phase, ev.message) if ev else ("timeout", "no outcome")
            smoke = _smoke_accuracy(ev, devices.get(name), request.model)
            p99 = self._p99(devices[name], request.model) if phase == "active" and max_p99 is not None else None
            rows.append(WaveResult(name, phase, message, smoke, p99))
        return check_gate(rows, min_acc, max_p99)

    def _p99(self, device: DeviceRecord, model: str) -> float | None:
        """Batch-1 p99 latency from a short benchmark job on the device (the gate's measurement)."""
        job = adm.FleetJobRequest(model=model, batch_size=1, warmup=5, iterations=100)
        ev = self.controller.run_job(device, job, "gate-" + uuid.uuid4().hex[:10])
        return ev.result.latency.p99_ms if ev.phase == "done" else None

    def _halt(
        self, rollout: str, touched: list[str], previous: dict[str, Any], spec: Any
    ) -> Iterator[adm.FleetDeployEvent]:
        """Put every touched device back on what it served before the rollout."""
        yield adm.FleetDeployEvent(rollout_id=rollout, phase="halted", message=f"rolling back {', '.join(touched)}")
        devices = {d.name: d for d in self.store.devices()}
        for name in touched:
            before, now_serving = previous.get(name), devices[name].serves(spec.model)
            if before is not None and now_serving is not None and now_serving.spec == spec:
                ev = self.controller.rollback(devices[name], spec.model, rollout)
                phase = "rolled-back" if ev.phase == "active" else "failed"
                yield adm.FleetDeployEvent(rollout_id=rollout, device=name, phase=phase, message=ev.message)
            elif before is not None:
                self.store.set_desired(name, before.spec, rollout, time.time())
                yield adm.FleetDeployEvent(
                    rollout_id=rollout, device=name, phase="rolled-back", message=f"kept {before.spec.ref}"
                )
            else:
                self.store.clear_desired(name, spec.model)
                msg = "nothing to go back to: desired state cleared"
                yield adm.FleetDeployEvent(rollout_id=rollout, device=name, phase="rolled-back", message=msg)
        self.controller.wake()
        yield adm.FleetDeployEvent(rollout_id=rollout, phase="done", message="halted")

    def Rollback(
        self, request: adm.FleetRollbackRequest, context: grpc.ServicerContext
    ) -> Iterator[adm.FleetDeployEvent]:
        self.controller.gate.admin(context)
        try:
            targets = select_devices(request.selector, self.store.devices())
        except JetfleetError as exc:
            _abort(context, exc)
        rollout = "rb-" + uuid.uuid4().hex[:10]
        futures = [self.controller.pool.submit(self.controller.rollback, d, request.model, rollout) for d in targets]
        for future in as_completed(futures):
            yield future.result()
        yield adm.FleetDeployEvent(rollout_id=rollout, phase="done")

    def RunJobs(self, request: adm.FleetJobRequest, context: grpc.ServicerContext) -> Iterator[adm.FleetJobEvent]:
        self.controller.gate.admin(context)
        try:
            targets = select_devices(request.selector, self.store.devices())
        except JetfleetError as exc:
            _abort(context, exc)
        job_id = request.job_id or "job-" + uuid.uuid4().hex[:10]
        for d in targets:
            yield adm.FleetJobEvent(job_id=job_id, device=d.name, phase="started")
        futures = [self.controller.pool.submit(self.controller.run_job, d, request, job_id) for d in targets]
        for future in as_completed(futures):
            yield future.result()

    @_handled
    def ListJobs(self, request: adm.ListJobsRequest, context: grpc.ServicerContext) -> adm.JobList:
        results = self.store.jobs(request.job_id or None, limit=request.limit or 50)
        return adm.JobList(results=[convert.job_result_to_pb(r) for r in results])

    @_handled
    def Status(self, request: adm.FleetStatusRequest, context: grpc.ServicerContext) -> adm.FleetStatus:
        now = time.time()
        desired = {(d.device, d.spec.model): d for d in self.store.desired()}
        return adm.FleetStatus(
            devices=[self.view(d, now) for d in self.store.devices()],
            desired=[
                adm.DesiredView(
                    device=a.device,
                    spec=convert.spec_to_pb(a.spec),
                    rollout_id=desired[(a.device, a.spec.model)].rollout_id,
                    decision=str(a.decision),
                    reason=a.reason,
                )
                for a in self.controller.plan(now)
            ],
            recent=[convert.record_to_pb(r) for r in self.store.deployments(limit=20)],
        )
