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
from jetfleet.controller.fleet.select import select_devices
from jetfleet.controller.fleet.specs import deployable
from jetfleet.controller.fleet.store import DeviceRecord
from jetfleet.proto import convert
from jetfleet.proto.v1 import admin_pb2 as adm
from jetfleet.proto.v1 import admin_pb2_grpc

if TYPE_CHECKING:
    from jetfleet.controller.fleet.daemon import Controller

T = TypeVar("T")


def _handled(method: Callable[..., T]) -> Callable[..., T]:
    """User errors (unknown model, selector matching nothing) become INVALID_ARGUMENT/NOT_FOUND with the message."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return method(self, request, context)
        except JetfleetError as exc:
            code = grpc.StatusCode.NOT_FOUND if "no " in exc.message[:12] else grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, str(exc))
            raise

    return wrapper


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
    def RemoveDevice(self, request: adm.RemoveDeviceRequest, context: grpc.ServicerContext) -> adm.RemoveDeviceResponse:
        self.store.remove_device(request.name)
        return adm.RemoveDeviceResponse()

    def Deploy(self, request: adm.FleetDeployRequest, context: grpc.ServicerContext) -> Iterator[adm.FleetDeployEvent]:
        try:
            targets = select_devices(request.selector, self.store.devices())
            dep = deployable(self.controller.registry, request.model, request.precision or "fp32")
        except JetfleetError as exc:
            code = grpc.StatusCode.NOT_FOUND if "no " in exc.message[:12] else grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, str(exc))
        rollout = request.rollout_id or uuid.uuid4().hex[:12]
        now = time.time()
        for dev in targets:
            self.store.set_desired(dev.name, dep.spec, rollout, now)
            key = self.controller.engine_hint(dev, dep.spec)
            yield adm.FleetDeployEvent(
                rollout_id=rollout,
                device=dev.name,
                phase="planned",
                spec=convert.spec_to_pb(dep.spec),
                engine_cached=key,
                message=f"{dep.spec.ref} on {dev.name}",
            )
        self.controller.wake()
        if request.wait:
            yield from self.controller.watch(rollout, [d.name for d in targets], request.timeout_s)
        yield adm.FleetDeployEvent(rollout_id=rollout, phase="done")

    def Rollback(
        self, request: adm.FleetRollbackRequest, context: grpc.ServicerContext
    ) -> Iterator[adm.FleetDeployEvent]:
        try:
            targets = select_devices(request.selector, self.store.devices())
        except JetfleetError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        rollout = "rb-" + uuid.uuid4().hex[:10]
        futures = [self.controller.pool.submit(self.controller.rollback, d, request.model, rollout) for d in targets]
        for future in as_completed(futures):
            yield future.result()
        yield adm.FleetDeployEvent(rollout_id=rollout, phase="done")

    def RunJobs(self, request: adm.FleetJobRequest, context: grpc.ServicerContext) -> Iterator[adm.FleetJobEvent]:
        try:
            targets = select_devices(request.selector, self.store.devices())
        except JetfleetError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
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
