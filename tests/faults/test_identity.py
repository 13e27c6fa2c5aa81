"""Scenario 9: who may call, over real mutual TLS: enrollment, impersonation, revocation, oversized messages.

A real controller (mutual TLS, its enrollment port, the fleet tables in
SQLite) and real agents enrolled through it with single-use tokens. Calls
without a certificate, with a revoked certificate, with another agent's
identity, with the wrong role and with oversized messages are each refused
with the right gRPC status, and nothing they carried is stored.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from agents import DigitsModel, agent_config

from jetfleet.agent.daemon import Agent
from jetfleet.agent.identity import AgentIdentity, enroll
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import ArtifactRef
from jetfleet.controller.fleet.daemon import Controller, ControllerSettings
from jetfleet.controller.fleet.security import FleetPKI
from jetfleet.controller.registry.store import Registry
from jetfleet.proto import convert
from jetfleet.proto.rpc import CONTROLLER_TLS_NAME, MAX_MESSAGE_BYTES, make_channel
from jetfleet.proto.v1 import admin_pb2 as adm
from jetfleet.proto.v1 import admin_pb2_grpc, agent_pb2, agent_pb2_grpc, controller_pb2, controller_pb2_grpc
from jetfleet.proto.v1 import common_pb2 as cpb


@dataclass
class SecureFleet:
    controller: Controller
    pki: FleetPKI
    tmp: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.controller.port}"

    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        channel = make_channel(self.address, credentials=self.pki.admin_credentials(), server_name=CONTROLLER_TLS_NAME)
        return admin_pb2_grpc.AdminServiceStub(channel)

    def enroll(self, name: str) -> AgentIdentity:
        token = self.admin().CreateEnrollment(adm.CreateEnrollmentRequest(name=name), timeout=10)
        return enroll(self.tmp / name, name, token.enroll_address, token.token, self.pki.ca_pem, token.ca_sha256)

    def as_device(self, identity: AgentIdentity) -> controller_pb2_grpc.ControllerServiceStub:
        channel = make_channel(self.address, credentials=identity.credentials, server_name=CONTROLLER_TLS_NAME)
        return controller_pb2_grpc.ControllerServiceStub(channel)


@pytest.fixture
def fleet(tmp_path: Path, fleet_pki: FleetPKI) -> Iterator[SecureFleet]:
    registry = Registry.open(f"sqlite:///{tmp_path / 'controller.db'}", home=tmp_path)
    settings = ControllerSettings(listen="127.0.0.1:0", enroll_listen="127.0.0.1:0", heartbeat_interval_s=0.2)
    controller = Controller(registry, settings, fleet_pki)
    controller.start()
    yield SecureFleet(controller, fleet_pki, tmp_path)
    controller.stop(grace=0.2)


def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()


def _register(name: str) -> controller_pb2.RegisterRequest:
    return controller_pb2.RegisterRequest(name=name, address="127.0.0.1:1", device=cpb.DeviceInfo(device_class="x"))


def test_enrollment_tokens_are_single_use_expiring_and_bound_to_a_name(fleet: SecureFleet, invariants) -> None:
    identity = fleet.enroll("jetson-01")
    for path in identity.folder.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        invariants.expect(f"{path.name} is owner-only", mode == 0o600, oct(mode))
    invariants.expect("identity folder is owner-only", stat.S_IMODE(identity.folder.stat().st_mode) == 0o700)
    for pem in ("ca.key", "ca.pem", "controller.key", "controller.pem", "admin.key", "manifest-signing.key"):
        mode = stat.S_IMODE((fleet.pki.folder / pem).stat().st_mode)
        invariants.expect(f"{pem} is owner-only", mode == 0o600, oct(mode))

    admin = fleet.admin()
    token = admin.CreateEnrollment(adm.CreateEnrollmentRequest(name="jetson-02"), timeout=10)
    args = (token.enroll_address, token.token, fleet.pki.ca_pem)
    with pytest.raises(JetfleetError, match="refused"):
        enroll(fleet.tmp / "wrong-name", "jetson-03", *args)  # a token made for another name
    enroll(fleet.tmp / "jetson-02", "jetson-02", *args)
    with pytest.raises(JetfleetError, match="refused"):
        enroll(fleet.tmp / "again", "jetson-02", *args)  # used once already
    short = admin.CreateEnrollment(adm.CreateEnrollmentRequest(name="jetson-04", ttl_s=1), timeout=10)
    time.sleep(1.2)
    with pytest.raises(JetfleetError, match="refused"):
        enroll(fleet.tmp / "late", "jetson-04", short.enroll_address, short.token, fleet.pki.ca_pem)
    with pytest.raises(JetfleetError, match="sha256"):
        enroll(fleet.tmp / "x", "jetson-05", token.enroll_address, "t.t", fleet.pki.ca_pem, "00" * 32)
    invariants.expect("refused enrollments wrote no identity", not (fleet.tmp / "again" / "identity").exists())
    invariants.check()


def test_calls_without_a_certificate_or_with_the_wrong_one_are_refused(fleet: SecureFleet, invariants) -> None:
    one, two = fleet.enroll("jetson-01"), fleet.enroll("jetson-02")
    plaintext = controller_pb2_grpc.ControllerServiceStub(make_channel(fleet.address))
    invariants.expect("plaintext: UNAVAILABLE", _code(lambda: plaintext.Register(_register("jetson-01"), timeout=5))
                      == grpc.StatusCode.UNAVAILABLE)  # fmt: skip
    no_cert = controller_pb2_grpc.ControllerServiceStub(
        make_channel(fleet.address, ca_only=fleet.pki.ca_pem, server_name=CONTROLLER_TLS_NAME)
    )
    invariants.expect("TLS without a client certificate: UNAVAILABLE",
                      _code(lambda: no_cert.Register(_register("jetson-01"), timeout=5)) == grpc.StatusCode.UNAVAILABLE)  # fmt: skip

    as_two = fleet.as_device(two)
    code = _code(lambda: as_two.Register(_register("jetson-01"), timeout=5))
    invariants.expect("registering as another device: PERMISSION_DENIED", code == grpc.StatusCode.PERMISSION_DENIED)
    report = controller_pb2.JobResultReport(result=cpb.JobResult(job_id="forged", agent="jetson-01"))
    code = _code(lambda: as_two.ReportJobResult(report, timeout=5))
    invariants.expect("reporting another device's result: PERMISSION_DENIED", code == grpc.StatusCode.PERMISSION_DENIED)
    invariants.expect("nothing stored for the forged calls", fleet.controller.store.devices() == []
                      and fleet.controller.store.jobs() == [])  # fmt: skip
    as_two.Register(_register("jetson-02"), timeout=5)  # speaking for itself works
    invariants.expect(
        "a device may register as itself", [d.name for d in fleet.controller.store.devices()] == ["jetson-02"]
    )

    device_admin = admin_pb2_grpc.AdminServiceStub(
        make_channel(fleet.address, credentials=one.credentials, server_name=CONTROLLER_TLS_NAME)
    )
    code = _code(lambda: device_admin.ListDevices(adm.ListDevicesRequest(), timeout=5))
    invariants.expect("a device calling the admin API: PERMISSION_DENIED", code == grpc.StatusCode.PERMISSION_DENIED)
    invariants.check()


def test_an_agent_accepts_only_the_controller(fleet: SecureFleet, invariants) -> None:
    identity = fleet.enroll("jetson-01")
    agent = Agent(agent_config(fleet.tmp / "jetson-01", "jetson-01"), telemetry_interval_s=0.5)
    port = agent.start()
    try:
        address = f"127.0.0.1:{port}"
        as_admin = agent_pb2_grpc.AgentServiceStub(
            make_channel(address, credentials=fleet.pki.admin_credentials(), server_name="jetson-01")
        )
        code = _code(lambda: as_admin.GetStatus(agent_pb2.StatusRequest(), timeout=5))
        invariants.expect(
            "the operator's certificate may not drive a device", code == grpc.StatusCode.PERMISSION_DENIED
        )
        as_peer = agent_pb2_grpc.AgentServiceStub(
            make_channel(address, credentials=identity.credentials, server_name="jetson-01")
        )
        code = _code(lambda: as_peer.GetStatus(agent_pb2.StatusRequest(), timeout=5))
        invariants.expect("a device may not drive a device", code == grpc.StatusCode.PERMISSION_DENIED)
        wrong_name = agent_pb2_grpc.AgentServiceStub(
            make_channel(address, credentials=fleet.pki.controller_credentials(), server_name="jetson-99")
        )
        code = _code(lambda: wrong_name.GetStatus(agent_pb2.StatusRequest(), timeout=5))
        invariants.expect("dialing it under another name fails the handshake", code == grpc.StatusCode.UNAVAILABLE)
        with fleet.controller.client(_record(agent, address)) as client:
            invariants.expect("the controller may", client.status().name == "jetson-01")
            big = agent_pb2.JobRequest(job_id="big", images=agent_pb2.InlineImages(
                images=[agent_pb2.InlineImage(name="x", data=os.urandom(MAX_MESSAGE_BYTES + 1024))]))  # fmt: skip
            code = _code(lambda: list(client.stub.RunJob(big, timeout=10)))
            invariants.expect("an oversized message: RESOURCE_EXHAUSTED", code == grpc.StatusCode.RESOURCE_EXHAUSTED)
    finally:
        agent.stop(grace=0.2)
    invariants.check()


def _record(agent: Agent, address: str) -> object:
    from jetfleet.controller.fleet.store import DeviceRecord

    return DeviceRecord(name=agent.name, address=address, device=agent.device, tags={}, backends=())


def test_revoking_a_device_stops_its_calls_at_once(fleet: SecureFleet, invariants) -> None:
    identity = fleet.enroll("jetson-01")
    stub = fleet.as_device(identity)
    stub.Register(_register("jetson-01"), timeout=5)
    beat = controller_pb2.HeartbeatRequest(name="jetson-01", sequence=1)
    assert not stub.Heartbeat(beat, timeout=5).reregister
    before = fleet.controller.store.device("jetson-01").heartbeats
    revoked = fleet.admin().RevokeDevice(adm.RevokeDeviceRequest(name="jetson-01"), timeout=5).revoked
    invariants.expect("one certificate revoked", revoked == 1, revoked)
    for call in (lambda: stub.Heartbeat(beat, timeout=5), lambda: stub.Register(_register("jetson-01"), timeout=5)):
        invariants.expect("revoked: UNAUTHENTICATED", _code(call) == grpc.StatusCode.UNAUTHENTICATED)
    invariants.expect("the device left the fleet", fleet.controller.store.devices() == [])
    big = controller_pb2.RegisterRequest(name="jetson-02", address="x:1", tags=["k=" + "v" * (MAX_MESSAGE_BYTES + 1)])
    two = fleet.as_device(fleet.enroll("jetson-02"))
    invariants.expect("an oversized report: RESOURCE_EXHAUSTED",
                      _code(lambda: two.Register(big, timeout=5)) == grpc.StatusCode.RESOURCE_EXHAUSTED)  # fmt: skip
    invariants.expect("nothing stored from the refused calls", fleet.controller.store.devices() == [], before)
    again = fleet.enroll("jetson-01")  # a new token gives a new certificate; the old one stays revoked
    fleet.as_device(again).Register(_register("jetson-01"), timeout=5)
    invariants.expect(
        "re-enrolled device registers", [d.name for d in fleet.controller.store.devices()] == ["jetson-01"]
    )
    invariants.expect("the old certificate is still refused", _code(lambda: stub.Heartbeat(beat, timeout=5))
                      == grpc.StatusCode.UNAUTHENTICATED)  # fmt: skip
    invariants.check()


def test_a_device_cannot_get_its_own_spec_signed_by_reporting_it(
    tmp_path: Path, fleet_pki: FleetPKI, digits_model: DigitsModel, invariants
) -> None:
    """A lying device reports serving an artifact of its choosing; the controller signs only registry specs."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(digits_model.root / "registry.db", home / "registry.db")
    shutil.copytree(digits_model.root / "blobs", home / "blobs")
    registry = Registry.open(f"sqlite:///{home / 'registry.db'}", home=home)
    settings = ControllerSettings(listen="127.0.0.1:0", enroll_listen="127.0.0.1:0")
    controller = Controller(registry, settings, fleet_pki)
    controller.start()
    try:
        fleet = SecureFleet(controller, fleet_pki, tmp_path)
        liar = fleet.as_device(fleet.enroll("jetson-01"))
        forged = replace(digits_model.fp32.spec, version=2**31 - 1, onnx=ArtifactRef("ab" * 32, 1234))
        claim = _register("jetson-01")
        claim.active.add(spec=convert.spec_to_pb(forged), backend="onnxruntime")
        liar.Register(claim, timeout=5)
        events = list(fleet.admin().RunJobs(adm.FleetJobRequest(model="basic_cnn", selector="jetson-01"), timeout=30))
        final = [e for e in events if e.phase != "started"]
        invariants.record("job events", events=[(e.phase, e.message) for e in final])
        invariants.expect(
            "the controller refuses to sign a spec the registry does not hold",
            len(final) == 1 and final[0].phase == "failed" and "registry does not hold" in final[0].message,
            final,
        )
    finally:
        controller.stop(grace=0.2)
    invariants.check()


def test_a_ca_signed_certificate_this_controller_never_enrolled_is_refused(fleet: SecureFleet, invariants) -> None:
    """Device certificates are an allow-list: signed by the CA is not enough (a recreated database, a key
    that signed outside enrollment); only what this controller recorded at enrollment counts."""
    from agents import provision

    stray = provision(fleet.tmp / "stray", "jetson-07", fleet.pki)  # signed by the fleet CA, never enrolled here
    code = _code(lambda: fleet.as_device(stray).Register(_register("jetson-07"), timeout=5))
    invariants.expect("a never-enrolled certificate: UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED, code)
    invariants.expect("nothing registered", fleet.controller.store.devices() == [])
    enrolled = fleet.enroll("jetson-07")  # the same name through a token works
    fleet.as_device(enrolled).Register(_register("jetson-07"), timeout=5)
    invariants.expect(
        "after enrolling it registers", [d.name for d in fleet.controller.store.devices()] == ["jetson-07"]
    )
    invariants.check()
