"""The agent's link to a real controller service: backoff while it is away, reports once it is back."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from agents import DigitsModel, StartAgent

from jetfleet.agent.daemon import Agent
from jetfleet.agent.reporter import Backoff
from jetfleet.controller.fleet.security import Enrollments, FleetPKI, Gate
from jetfleet.controller.fleet.service import ControllerServicer
from jetfleet.controller.fleet.store import FleetStore
from jetfleet.controller.registry.db import make_engine, migrate
from jetfleet.proto.rpc import bind, make_server
from jetfleet.proto.v1 import controller_pb2_grpc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _controller(port: int, db: Path, fleet: FleetPKI, enrolled: Agent) -> tuple[grpc.Server, FleetStore]:
    """The controller's real agent service, with mutual TLS and its per-call identity checks; ``enrolled``'s
    certificate is recorded as enrollment would record it (the agent was provisioned without the round trip)."""
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    store = FleetStore(engine)
    enrollments = Enrollments(engine)
    assert enrolled.identity is not None
    enrollments.record_certificate(enrolled.identity.credentials.cert_pem)
    server = make_server()
    servicer = ControllerServicer(store, 0.2, gate=Gate(enrollments))
    controller_pb2_grpc.add_ControllerServiceServicer_to_server(servicer, server)
    assert bind(server, f"127.0.0.1:{port}", fleet.controller_credentials()) == port
    server.start()
    return server, store


def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_backoff_is_capped_exponential_with_jitter() -> None:
    b = Backoff(cap=4.0, base=0.5, rng=random.Random(0))
    delays = [b.next() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 4, 4, 4, 4]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    b.reset()
    assert b.next() <= 0.5


def test_agent_registers_when_the_controller_appears_and_reports_exactly_once(
    start_agent: StartAgent, digits_model: DigitsModel, tmp_path: Path, fleet_pki: FleetPKI
) -> None:
    port = _free_port()
    ra = start_agent(controller=f"127.0.0.1:{port}", tags={"board": "orin", "site": "lab"})
    d = digits_model.int8
    # Offline: the agent deploys and classifies anyway, and queues what it would report.
    assert ra.client.push(d.spec, d.files).ok
    offline = ra.client.run_job(test_set=d.spec.test_set, job_id="job-offline")
    assert not ra.agent.reporter.connected and ra.agent.reporter.pending == 2

    def known(store: FleetStore) -> bool:
        return any(dev.name == "jetson-01" for dev in store.devices())

    server, store = _controller(port, tmp_path / "controller.db", fleet_pki, ra.agent)
    try:
        _until(lambda: known(store) and len(store.jobs()) == 1)
        dev = store.device("jetson-01")
        assert dev.address == ra.address and dev.tags == {"board": "orin", "site": "lab"}
        assert dev.device.device_class == ra.agent.device.device_class
        assert [s.spec for s in dev.active] == [d.spec]
        (job,) = store.jobs("job-offline")
        assert job.top1 == offline.top1 and job.latency == offline.latency
        assert [r.state.name for r in store.deployments()] == ["ACTIVE"]
        _until(lambda: store.device("jetson-01").heartbeats >= 3)
        assert store.device("jetson-01").telemetry is not None
    finally:
        server.stop(0).wait()

    # The controller comes back with an empty database: the agent is told to register again and does.
    ra.client.run_job(test_set=d.spec.test_set, job_id="job-during-outage")
    server, store = _controller(port, tmp_path / "fresh.db", fleet_pki, ra.agent)
    try:
        _until(lambda: known(store) and len(store.jobs("job-during-outage")) == 1)
        assert ra.agent.reporter.pending == 0 and ra.agent.reporter.connected
        assert not store.jobs("job-offline")  # delivered before; not sent twice
    finally:
        server.stop(0).wait()


def test_queued_reports_survive_an_agent_restart(
    start_agent: StartAgent, digits_model: DigitsModel, tmp_path: Path, fleet_pki: FleetPKI
) -> None:
    from agents import stop

    port = _free_port()
    ra = start_agent("jetson-01", data_dir=tmp_path / "dev", controller=f"127.0.0.1:{port}")
    d = digits_model.fp32
    assert ra.client.push(d.spec, d.files).ok
    ra.client.run_job(test_set=d.spec.test_set, job_id="before-restart")
    assert ra.agent.reporter.pending == 2
    stop(ra)  # the controller never saw them; the agent goes down
    again = start_agent("jetson-01", data_dir=tmp_path / "dev", controller=f"127.0.0.1:{port}")
    server, store = _controller(port, tmp_path / "controller.db", fleet_pki, again.agent)
    try:
        _until(lambda: len(store.jobs("before-restart")) == 1 and again.agent.reporter.pending == 0)
        assert [r.spec for r in store.deployments("jetson-01")] == [d.spec]
    finally:
        server.stop(0).wait()


def test_outbox_keeps_order_caps_and_survives_reopening(tmp_path: Path) -> None:
    from jetfleet.agent.outbox import Outbox

    box = Outbox(tmp_path / "o.db", max_rows=3)
    for i in range(5):
        box.append("JobResultReport", bytes([i]))
    assert len(box) == 3
    box.close()
    box = Outbox(tmp_path / "o.db", max_rows=3)
    row_id, kind, payload = box.peek()
    assert (kind, payload) == ("JobResultReport", b"\x02")  # the two oldest were dropped
    box.remove(row_id)
    assert box.peek()[2] == b"\x03" and len(box) == 2
