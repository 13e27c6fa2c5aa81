"""The controller's gRPC service for agents: thin handlers over the fleet store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from jetfleet.common import pki
from jetfleet.common.errors import JetfleetError
from jetfleet.controller.fleet.security import Enrollments, FleetPKI, Gate
from jetfleet.controller.fleet.store import DeviceRecord, FleetStore
from jetfleet.proto import convert
from jetfleet.proto.v1 import controller_pb2 as cpb
from jetfleet.proto.v1 import controller_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")
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
        gate: Gate | None = None,
    ) -> None:
        self.store = store
        self.gate = gate or Gate(None)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.on_change = on_change  # wakes the reconcile loop: an agent registers when it starts or its link returns

    def Register(self, request: cpb.RegisterRequest, context: grpc.ServicerContext) -> cpb.RegisterResponse:
        if not request.name or not request.address:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name and address are required")
        self.gate.device(context, request.name)
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
        self.gate.device(context, request.name)
        try:
            telemetry = convert.telemetry_from_pb(request.telemetry)
            active = tuple(convert.slot_from_pb(s) for s in request.active)
        except JetfleetError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        known = self.store.heartbeat(request.name, telemetry, active, time.time())
        return cpb.HeartbeatResponse(reregister=not known)

    def ReportDeployment(self, request: cpb.DeploymentReport, context: grpc.ServicerContext) -> cpb.Ack:
        self.gate.device(context, request.record.agent)
        record = _decoded(context, convert.record_from_pb, request.record)
        return cpb.Ack(duplicate=not self.store.add_deployment(record, time.time()))

    def ReportJobResult(self, request: cpb.JobResultReport, context: grpc.ServicerContext) -> cpb.Ack:
        self.gate.device(context, request.result.agent)
        result = _decoded(context, convert.job_result_from_pb, request.result)
        return cpb.Ack(duplicate=not self.store.add_job(result, time.time()))


def _decoded(context: grpc.ServicerContext, decode: Callable[[Any], T], msg: Any) -> T:
    """A malformed report is INVALID_ARGUMENT (the agent drops it), not UNKNOWN (retried for ever)."""
    try:
        return decode(msg)
    except JetfleetError as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise  # unreachable: abort raises


class EnrollmentServicer(controller_pb2_grpc.EnrollmentServiceServicer):
    """Trades a single-use token and a CSR for a device certificate (served with server-only TLS)."""

    def __init__(self, pki_: FleetPKI, enrollments: Enrollments) -> None:
        self.pki = pki_
        self.enrollments = enrollments

    def Enroll(self, request: cpb.EnrollRequest, context: grpc.ServicerContext) -> cpb.EnrollResponse:
        try:  # the request is checked before the token is spent: a malformed CSR must not burn it
            pki.csr_public_key(request.csr_pem, pki.Identity("device", request.name))
        except (JetfleetError, ValueError, TypeError) as exc:  # cryptography raises these for odd algorithms
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            self.enrollments.consume(request.name, request.token)
        except JetfleetError as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        try:
            cert = self.pki.issue_device(request.name, request.csr_pem)
            self.enrollments.record_certificate(cert)
        except Exception as exc:  # the token is spent: say so plainly rather than UNKNOWN
            log.exception("enrolling %s failed after its token was accepted", request.name)
            context.abort(
                grpc.StatusCode.INTERNAL,
                f"the controller could not issue a certificate for {request.name} ({type(exc).__name__}); "
                "its token is spent: make a new one",
            )
        return cpb.EnrollResponse(
            certificate_pem=cert, ca_pem=self.pki.ca_pem, manifest_public_key_pem=self.pki.signing_public_pem()
        )

    def Clock(self, request: cpb.ClockRequest, context: grpc.ServicerContext) -> cpb.ClockResponse:
        """The controller's wall clock: a device checks its skew before manifests start expiring on it."""
        return cpb.ClockResponse(unix_ms=int(time.time() * 1000))
