"""The controller's gRPC service for agents: thin handlers over the fleet store."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from jetfleet.common.errors import JetfleetError
from jetfleet.controller.fleet.store import DeviceRecord, FleetStore
from jetfleet.proto import convert
from jetfleet.proto.v1 import controller_pb2 as cpb
from jetfleet.proto.v1 import controller_pb2_grpc

HEARTBEAT_INTERVAL_S = 10.0  # liveness within seconds, negligible load for thousands of agents


def _tags(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise JetfleetError(f"tag {item!r} is not key=value")
        out[key] = value
    return out


class ControllerServicer(controller_pb2_grpc.ControllerServiceServicer):
    def __init__(
        self,
        store: FleetStore,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.heartbeat_interval_s = heartbeat_interval_s
        self.on_change = on_change  # wakes the reconcile loop: an agent registers when it starts or its link returns

    def Register(self, request: cpb.RegisterRequest, context: grpc.ServicerContext) -> cpb.RegisterResponse:
        if not request.name or not request.address:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name and address are required")
        try:
            rec = DeviceRecord(
                name=request.name,
                address=request.address,
                device=convert.device_from_pb(request.device),
                tags=_tags(list(request.tags)),
                backends=tuple(request.backends),
                active=tuple(convert.slot_from_pb(s) for s in request.active),
            )
        except JetfleetError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self.store.register(rec, time.time())
        self.on_change()
        return cpb.RegisterResponse(heartbeat_interval_s=self.heartbeat_interval_s)

    def Heartbeat(self, request: cpb.HeartbeatRequest, context: grpc.ServicerContext) -> cpb.HeartbeatResponse:
        known = self.store.heartbeat(
            request.name,
            convert.telemetry_from_pb(request.telemetry),
            tuple(convert.slot_from_pb(s) for s in request.active),
            time.time(),
        )
        return cpb.HeartbeatResponse(reregister=not known)

    def ReportDeployment(self, request: cpb.DeploymentReport, context: grpc.ServicerContext) -> cpb.Ack:
        return cpb.Ack(duplicate=not self.store.add_deployment(convert.record_from_pb(request.record), time.time()))

    def ReportJobResult(self, request: cpb.JobResultReport, context: grpc.ServicerContext) -> cpb.Ack:
        return cpb.Ack(duplicate=not self.store.add_job(convert.job_result_from_pb(request.result), time.time()))
